/**
 * Kubernetes API access that does not depend on the VIP it is electing.
 *
 * Assumptions and invariants:
 * - kubeadm's admin.conf / super-admin.conf name the VIP as server. We never dial it: the
 *   first endpoint is this node's own API server (default https://127.0.0.1:6443), then every
 *   other control-plane endpoint learned from the `kubernetes` Service's EndpointSlices
 *   (cached on disk so a restart while the local API server is down still knows them).
 * - TLS verification stays on. Dialing an IP, we verify the certificate against a server
 *   name: the kubeconfig's tls-server-name, else the kubeconfig server's host name, else
 *   `kubernetes` (in every kube-apiserver serving certificate kubeadm makes).
 * - Every attempt has its own timeout and AbortSignal; a dead or frozen endpoint costs one
 *   attempt timeout, then the next endpoint is tried. An endpoint that failed cools down and
 *   is tried after the others until it answers again. An HTTP answer other than 429/5xx is
 *   an answer, not an endpoint failure (404, 409, 403 are returned to the caller).
 * - Credentials come from a kubeconfig file that is watched; a changed file is swapped in
 *   without restart. An optional fallback kubeconfig (kubeadm's super-admin.conf) is used
 *   while the primary is missing or refused (401/403), and the primary is retried
 *   periodically, so the kubeadm ≥1.29 bootstrap switches back by itself.
 * - Requests are JSON over node:https with one keep-alive agent per credentials, not the
 *   generated typed API: that costs ~78 MB of RSS to load (bench/imports.ts) and vipd calls
 *   eight endpoints. Paths are in resources.ts; types stay client-node's (type-only imports).
 */
import { promises as fsp, watchFile, unwatchFile, type Stats } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import net from 'node:net';
// The generated client's error class, from its own module (no other imports): answers keep the
// shape callers and tests already read (code, body), and httpStatus() knows them.
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';
import { Kubeconfig, type Cluster, type RequestCredentials } from './kubeconfig.js';
import { monotonicClock, type Clock } from '../util/clock.js';
import { sleep, withSignal } from '../util/signals.js';
import { createLogger, type Logger } from '../observe/log.js';
import { metrics } from '../observe/metrics.js';
import { hostPort } from '../net/ip.js';
import { paths, type List } from './resources.js';

export const DEFAULT_LOCAL_ENDPOINT = 'https://127.0.0.1:6443';
export const FALLBACK_TLS_SERVER_NAME = 'kubernetes';

export interface ApiClientOptions {
  /** Kubeconfig file (credentials, CA). Watched for changes. */
  kubeconfigPath: string;
  /** Used while the primary is missing or answers 401/403 (kubeadm's super-admin.conf on the first node). */
  fallbackKubeconfigPath?: string;
  /** This node's API server. 'kubeconfig' = the server named in the kubeconfig (only when that is not the VIP). */
  localEndpoint?: string;
  /** Server name for certificate verification; default: see module comment. */
  tlsServerName?: string;
  /** Endpoints always known besides the local and the learned ones (tried after them). */
  extraEndpoints?: string[];
  /** State file where learned endpoints are kept across restarts. */
  endpointsCachePath?: string;
  /** Learn endpoints from the `kubernetes` Service's EndpointSlices (default true). */
  discoverEndpoints?: boolean;
  /** Addresses never used from the EndpointSlice (e.g. this node's own IP: it is the local endpoint). */
  excludeAddresses?: string[];
  /** Per attempt (per endpoint) timeout. */
  requestTimeoutMs?: number;
  /** After a failure an endpoint is tried after the others for this long. */
  endpointCooldownMs?: number;
  /** How often the EndpointSlices are re-read while running. */
  endpointRefreshMs?: number;
  /** How often the kubeconfig files are stat'ed for changes. */
  credentialPollMs?: number;
  /** While on the fallback credentials, how often the primary is tried again. */
  credentialRecheckMs?: number;
  clock?: Clock;
  log?: Logger;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Per attempt; default the client's requestTimeoutMs. */
  timeoutMs?: number;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions extends CallOptions {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** Default application/json; e.g. application/merge-patch+json for a PATCH. */
  contentType?: string;
}

const USER_AGENT = 'vipd';

/** Every endpoint failed (network, timeout, 429/5xx). `causes` is per endpoint. */
export class AllEndpointsFailedError extends Error {
  override readonly name = 'AllEndpointsFailedError';
  constructor(
    readonly op: string,
    readonly causes: ReadonlyArray<{ endpoint: string; error: string }>,
  ) {
    super(`${op}: no API endpoint answered (${causes.map((c) => `${c.endpoint}: ${c.error}`).join('; ') || 'no endpoints'})`);
  }
}

/** HTTP status of an API error (a request's ApiException or our watch's), if it was an HTTP answer. */
export function httpStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  // Not `code`: DOMException (AbortError 20, TimeoutError 23) and Node errors use it for other things.
  if (typeof err === 'object' && err !== null && !(err instanceof DOMException)) {
    const o = err as { statusCode?: unknown };
    if (typeof o.statusCode === 'number') return o.statusCode;
  }
  return undefined;
}

/** True when trying another endpoint may help: no HTTP answer, or an overloaded/unavailable server. */
export function isEndpointFailure(err: unknown): boolean {
  const status = httpStatus(err);
  if (status === undefined) return true;
  return status === 429 || status >= 500;
}

export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as { message?: unknown } | undefined;
    const msg = typeof body === 'object' && body !== null && typeof body.message === 'string' ? body.message : '';
    return `HTTP ${err.code}${msg ? `: ${msg}` : ''}`;
  }
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const c = cause instanceof Error ? `: ${(cause as { code?: string }).code ?? cause.message}` : '';
    return `${err.name === 'Error' || err.name === 'TypeError' ? '' : `${err.name}: `}${err.message}${c}`;
  }
  return String(err);
}

/** Canonical `https://host:port` (brackets for IPv6, default port 443 made explicit). */
export function normalizeEndpoint(raw: string): string {
  const u = new URL(raw);
  const port = u.port || (u.protocol === 'http:' ? '80' : '443');
  return `${u.protocol}//${u.hostname}:${port}`;
}

export function endpointFor(address: string, port: number): string {
  return `https://${hostPort(address, port)}`;
}

/** The name to verify the server certificate against when dialing `endpoint`. */
export function chooseTlsServerName(cluster: Pick<Cluster, 'server' | 'tlsServerName'> | null, override?: string): string {
  if (override) return override;
  if (cluster?.tlsServerName) return cluster.tlsServerName;
  if (cluster?.server) {
    const host = new URL(cluster.server).hostname.replace(/^\[|\]$/g, '');
    if (host && net.isIP(host) === 0) return host;
  }
  return FALLBACK_TLS_SERVER_NAME;
}

interface EndpointSliceLike {
  ports?: Array<{ name?: string; port?: number }>;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean } }>;
  addressType?: string;
}

/** Endpoints of the `kubernetes` Service from its EndpointSlices (pure; ready or unknown-readiness addresses). */
export function endpointsFromSlices(slices: readonly EndpointSliceLike[], exclude: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const s of slices) {
    if (s.addressType === 'FQDN') continue;
    const port = s.ports?.find((p) => p.name === 'https')?.port ?? s.ports?.[0]?.port;
    if (port === undefined) continue;
    for (const e of s.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      for (const a of e.addresses ?? []) {
        if (exclude.includes(a)) continue;
        const ep = endpointFor(a, port);
        if (!out.includes(ep)) out.push(ep);
      }
    }
  }
  return out;
}

/** Orders endpoints: the ones not cooling down first (in configured order), then the cooling ones (earliest failure first). */
export function orderEndpoints(all: readonly string[], downUntil: ReadonlyMap<string, number>, now: number): string[] {
  const up = all.filter((e) => (downUntil.get(e) ?? -Infinity) <= now);
  const down = all.filter((e) => (downUntil.get(e) ?? -Infinity) > now).sort((a, b) => (downUntil.get(a) ?? 0) - (downUntil.get(b) ?? 0));
  return [...up, ...down];
}

interface Credentials {
  path: string;
  kc: Kubeconfig;
  generation: number;
  /**
   * Kept-alive connections for every request with these credentials (the agent keys its pools by
   * host, port and TLS options, so one serves every endpoint): a release on shutdown must not
   * wait for a TLS handshake under load. Watches and probes use their own sockets.
   */
  agent: https.Agent;
}

/** Stops handing out `agent`'s idle sockets; the ones in use close when their request ends. */
function retire(agent: https.Agent): void {
  agent.on('free', (socket) => socket.destroy());
  for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy();
}

export class ApiClient {
  private readonly opts: Required<
    Omit<ApiClientOptions, 'fallbackKubeconfigPath' | 'tlsServerName' | 'endpointsCachePath' | 'clock' | 'log' | 'localEndpoint'>
  > & { localEndpoint: string };
  private readonly clock: Clock;
  private readonly log: Logger;
  private primary: Credentials | undefined;
  private fallback: Credentials | undefined;
  private usingFallback = false;
  private lastPrimaryTry = -Infinity;
  private generation = 0;
  private learned: string[] = [];
  private readonly downUntil = new Map<string, number>();
  private readonly watched: string[] = [];
  private closed = false;

  private constructor(private readonly options: ApiClientOptions) {
    this.clock = options.clock ?? monotonicClock;
    this.log = options.log ?? createLogger(undefined, { mod: 'k8s' });
    this.opts = {
      kubeconfigPath: options.kubeconfigPath,
      localEndpoint: options.localEndpoint ?? DEFAULT_LOCAL_ENDPOINT,
      extraEndpoints: options.extraEndpoints ?? [],
      discoverEndpoints: options.discoverEndpoints ?? true,
      excludeAddresses: options.excludeAddresses ?? [],
      requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
      endpointCooldownMs: options.endpointCooldownMs ?? 5_000,
      endpointRefreshMs: options.endpointRefreshMs ?? 60_000,
      credentialPollMs: options.credentialPollMs ?? 1_000,
      credentialRecheckMs: options.credentialRecheckMs ?? 10_000,
    };
  }

  /** Loads credentials and the endpoint cache; throws only if no kubeconfig at all can be loaded. */
  static async create(options: ApiClientOptions): Promise<ApiClient> {
    const c = new ApiClient(options);
    await c.init();
    return c;
  }

  private async init(): Promise<void> {
    this.primary = await this.tryLoad(this.options.kubeconfigPath);
    if (this.options.fallbackKubeconfigPath) this.fallback = await this.tryLoad(this.options.fallbackKubeconfigPath);
    if (!this.primary && !this.fallback) {
      throw new Error(`kubeconfig: cannot load ${this.options.kubeconfigPath}${this.options.fallbackKubeconfigPath ? ` nor ${this.options.fallbackKubeconfigPath}` : ''}`);
    }
    this.usingFallback = !this.primary;
    if (this.opts.localEndpoint === 'kubeconfig') {
      const server = this.current().kc.cluster.server;
      if (!server) throw new Error(`kubeconfig ${this.current().path}: no current cluster server`);
      this.opts.localEndpoint = server;
    }
    this.opts.localEndpoint = normalizeEndpoint(this.opts.localEndpoint);
    await this.loadCache();
    for (const p of [this.options.kubeconfigPath, this.options.fallbackKubeconfigPath]) {
      if (!p) continue;
      // stat polling survives atomic renames and files that do not exist yet, unlike fs.watch.
      watchFile(p, { interval: this.opts.credentialPollMs, persistent: false }, (curr: Stats, prev: Stats) => {
        if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
        void this.reload(p);
      });
      this.watched.push(p);
    }
  }

  private async tryLoad(file: string): Promise<Credentials | undefined> {
    try {
      const kc = Kubeconfig.parse(await fsp.readFile(file, 'utf8'), file);
      if (kc.cluster.proxyUrl) this.log.warn({ file, proxyUrl: kc.cluster.proxyUrl }, 'kubeconfig proxy-url ignored: vipd dials the API servers directly');
      // Idle sockets close after a minute; a Lease renewed every few seconds keeps its one open.
      return { path: file, kc, generation: ++this.generation, agent: new https.Agent({ keepAlive: true, timeout: 60_000 }) };
    } catch (err) {
      this.log.warn({ file, err: describeError(err) }, 'kubeconfig not usable');
      return undefined;
    }
  }

  private async reload(file: string): Promise<void> {
    if (this.closed) return;
    const loaded = await this.tryLoad(file);
    if (!loaded) return;
    const replaced = file === this.options.kubeconfigPath ? this.primary : this.fallback;
    if (replaced) retire(replaced.agent);
    if (file === this.options.kubeconfigPath) {
      this.primary = loaded;
      // A changed primary deserves an immediate try: this is the super-admin → admin switch.
      this.lastPrimaryTry = -Infinity;
    } else {
      this.fallback = loaded;
    }
    this.log.info({ file }, 'kubeconfig changed; credentials reloaded');
  }

  private current(): Credentials {
    const c = this.usingFallback ? (this.fallback ?? this.primary) : (this.primary ?? this.fallback);
    if (!c) throw new Error('no credentials loaded');
    return c;
  }

  /** Which kubeconfig file requests use now. */
  credentialsInUse(): string {
    return this.current().path;
  }

  tlsServerName(): string {
    return chooseTlsServerName(this.current().kc.cluster, this.options.tlsServerName);
  }

  /** Endpoints in the order the next request tries them. */
  endpoints(): string[] {
    const all: string[] = [];
    for (const e of [this.opts.localEndpoint, ...this.learned, ...this.opts.extraEndpoints.map(normalizeEndpoint)]) {
      if (!all.includes(e)) all.push(e);
    }
    return orderEndpoints(all, this.downUntil, this.clock.now());
  }

  localEndpoint(): string {
    return this.opts.localEndpoint;
  }

  private markDown(endpoint: string, op: string, err: unknown): void {
    this.downUntil.set(endpoint, this.clock.now() + this.opts.endpointCooldownMs);
    metrics.apiErrors.inc({ op });
    this.log.warn({ endpoint, op, err: describeError(err) }, 'API endpoint failed; trying the next one');
  }

  private markUp(endpoint: string): void {
    if (this.downUntil.delete(endpoint)) this.log.info({ endpoint }, 'API endpoint answers again');
  }

  /**
   * One API request, JSON in and out, on the endpoints in order until one answers. An HTTP
   * error answer rejects with an ApiException (its `code` is the status; 404 and 409 are the
   * caller's business), so does a 429/5xx from the last endpoint tried; no answer at all from any
   * endpoint is an AllEndpointsFailedError.
   */
  async request<T>(op: string, method: HttpMethod, apiPath: string, options: RequestOptions = {}): Promise<T> {
    const causes: Array<{ endpoint: string; error: string }> = [];
    for (const endpoint of this.endpoints()) {
      options.signal?.throwIfAborted();
      try {
        const r = await this.attempt<T>(op, endpoint, method, apiPath, options);
        this.markUp(endpoint);
        return r;
      } catch (err) {
        if (options.signal?.aborted) throw err;
        if (!isEndpointFailure(err)) {
          // The endpoint answered; what it said is the caller's business.
          if (httpStatus(err) !== 404 && httpStatus(err) !== 409) metrics.apiErrors.inc({ op });
          throw err;
        }
        causes.push({ endpoint, error: describeError(err) });
        this.markDown(endpoint, op, err);
      }
    }
    throw new AllEndpointsFailedError(op, causes);
  }

  /** One endpoint, with the credential fallback logic. */
  private async attempt<T>(op: string, endpoint: string, method: HttpMethod, apiPath: string, options: RequestOptions): Promise<T> {
    const run = (creds: Credentials): Promise<T> =>
      withSignal([options.signal], options.timeoutMs ?? this.opts.requestTimeoutMs, (signal) => this.send<T>(creds, endpoint, method, apiPath, options, signal));
    const now = this.clock.now();
    if (this.usingFallback && this.primary && this.fallback && now - this.lastPrimaryTry >= this.opts.credentialRecheckMs) {
      this.lastPrimaryTry = now;
      try {
        const r = await run(this.primary);
        this.usingFallback = false;
        this.log.info({ file: this.primary.path, op }, 'primary credentials accepted; switched back from fallback');
        return r;
      } catch (err) {
        const s = httpStatus(err);
        if (s !== 401 && s !== 403) {
          if (isEndpointFailure(err)) throw err;
          // Any other answer means the primary credentials were accepted.
          this.usingFallback = false;
          this.log.info({ file: this.primary.path, op }, 'primary credentials accepted; switched back from fallback');
          throw err;
        }
      }
      return run(this.fallback);
    }
    const creds = this.current();
    try {
      return await run(creds);
    } catch (err) {
      const s = httpStatus(err);
      if ((s === 401 || s === 403) && !this.usingFallback && this.fallback && creds === this.primary) {
        this.usingFallback = true;
        this.lastPrimaryTry = this.clock.now();
        this.log.warn({ file: creds.path, fallback: this.fallback.path, op, status: s }, 'credentials refused; using the fallback kubeconfig');
        return run(this.fallback);
      }
      throw err;
    }
  }

  /** TLS options and headers for `endpoint` with `creds`; the server name is ours, not the kubeconfig's. */
  private async tlsFor(creds: Credentials): Promise<RequestCredentials & { servername: string }> {
    const c = await creds.kc.credentials();
    return { ...c, servername: chooseTlsServerName(creds.kc.cluster, this.options.tlsServerName) };
  }

  /** One HTTP exchange. Rejects with `signal.reason` when it aborts (the attempt timeout is a TimeoutError). */
  private async send<T>(creds: Credentials, endpoint: string, method: HttpMethod, apiPath: string, o: RequestOptions, signal: AbortSignal): Promise<T> {
    const url = new URL(endpoint + apiPath);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const tls = await this.tlsFor(creds);
    signal.throwIfAborted();
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string | number> = { ...tls.headers, Accept: 'application/json', 'User-Agent': USER_AGENT };
    if (body !== undefined) {
      headers['Content-Type'] = o.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        req.destroy();
        reject(signal.reason);
      };
      const done = (fn: () => void) => {
        signal.removeEventListener('abort', onAbort);
        fn();
      };
      const req = https.request(url, { ...tls, method, headers, agent: creds.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => done(() => reject(e)));
        res.on('end', () =>
          done(() => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            const parsed = parseBody(text, res.headers);
            if (status >= 200 && status < 300) resolve(parsed as T);
            else reject(new ApiException(status, `${method} ${apiPath}`, parsed, flatHeaders(res.headers)));
          }),
        );
      });
      req.on('error', (e) => done(() => reject(e)));
      signal.addEventListener('abort', onAbort, { once: true });
      req.end(body);
    });
  }

  /**
   * HTTPS request options (CA, client certificate, bearer token, server name) for a raw
   * request to `endpoint`, e.g. the /livez probe or a watch stream. A probe that times out must
   * destroy its request, so a frozen server's socket is not pooled again.
   */
  async httpsOptions(_endpoint: string = this.opts.localEndpoint, how: { keepAlive?: boolean } = {}): Promise<https.RequestOptions> {
    const creds = this.current();
    // A watch is long-lived and holds its own socket. A probe every second reuses the pooled
    // connection (`keepAlive`): a TLS handshake per probe was most of an idle agent's CPU.
    return { ...(await this.tlsFor(creds)), agent: how.keepAlive ? creds.agent : false };
  }

  /**
   * One watch stream on the first endpoint that connects (in endpoints() order). Resolves when
   * the server ends the stream (or `idleTimeoutMs`, if set, passes without data); rejects on
   * errors, with the HTTP status (httpStatus()) for a refused watch or an ERROR event such as
   * 410 Gone. Abort `signal` to stop. `connectTimeoutMs` bounds the wait for response headers.
   */
  async watch(
    op: string,
    apiPath: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: unknown) => void,
    signal: AbortSignal,
    timeouts: { connectTimeoutMs?: number; idleTimeoutMs?: number } = {},
  ): Promise<{ endpoint: string }> {
    const causes: Array<{ endpoint: string; error: string }> = [];
    for (const endpoint of this.endpoints()) {
      signal.throwIfAborted();
      try {
        await this.watchOnce(endpoint, apiPath, query, onEvent, signal, timeouts);
        this.markUp(endpoint);
        return { endpoint };
      } catch (err) {
        if (signal.aborted) throw err;
        if (err instanceof WatchEndedError) return { endpoint };
        if (!isEndpointFailure(err)) throw err;
        causes.push({ endpoint, error: describeError(err) });
        this.markDown(endpoint, op, err);
      }
    }
    throw new AllEndpointsFailedError(op, causes);
  }

  private async watchOnce(
    endpoint: string,
    apiPath: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: unknown) => void,
    signal: AbortSignal,
    timeouts: { connectTimeoutMs?: number; idleTimeoutMs?: number },
  ): Promise<void> {
    const url = new URL(endpoint + apiPath);
    url.searchParams.set('watch', 'true');
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const base = await this.httpsOptions(endpoint);
    const connectTimeoutMs = timeouts.connectTimeoutMs ?? this.opts.requestTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      let connected = false;
      let idle: NodeJS.Timeout | undefined;
      const finish = (err?: unknown) => {
        clearTimeout(connectTimer);
        if (idle) clearTimeout(idle);
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = () => finish(signal.reason ?? new Error('aborted'));
      const connectTimer = setTimeout(() => {
        if (!connected) finish(Object.assign(new Error(`watch: no response within ${connectTimeoutMs} ms`), { name: 'TimeoutError' }));
      }, connectTimeoutMs);
      const armIdle = () => {
        if (!timeouts.idleTimeoutMs) return;
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => finish(new WatchEndedError(`watch idle for ${timeouts.idleTimeoutMs} ms`)), timeouts.idleTimeoutMs);
      };
      const req = https.request(url, { ...base, method: 'GET', headers: { ...(base.headers ?? {}), Accept: 'application/json' } }, (res) => {
        connected = true;
        clearTimeout(connectTimer);
        if (res.statusCode !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d.slice(0, 2000)));
          res.on('end', () => finish(Object.assign(new Error(`watch: HTTP ${res.statusCode}: ${body.slice(0, 300)}`), { statusCode: res.statusCode })));
          res.on('error', finish);
          return;
        }
        armIdle();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          armIdle();
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let ev: { type?: unknown; object?: unknown };
            try {
              ev = JSON.parse(line) as { type?: unknown; object?: unknown };
            } catch {
              continue;
            }
            if (typeof ev.type === 'string') {
              if (ev.type === 'ERROR') {
                // A Status object: 410 Gone (resourceVersion too old) and the like. It carries its
                // code as statusCode, so httpStatus() sees it and 410 is not taken for a dead endpoint.
                const status = ev.object as { code?: number; message?: string } | undefined;
                const msg = `watch error event: ${status?.code ?? ''} ${status?.message ?? ''}`.trim();
                finish(typeof status?.code === 'number' ? Object.assign(new Error(msg), { statusCode: status.code }) : new WatchEndedError(msg));
                return;
              }
              onEvent(ev.type, ev.object);
            }
          }
        });
        res.on('end', () => finish(new WatchEndedError('watch closed by server')));
        res.on('error', (e) => finish(connected ? new WatchEndedError(`watch stream: ${e.message}`) : e));
      });
      req.on('error', (e) => finish(e));
      // A peer that vanished without a RST (host down) would otherwise hold a silent stream forever.
      req.on('socket', (sock) => sock.setKeepAlive(true, 10_000));
      signal.addEventListener('abort', onAbort, { once: true });
      req.end();
    });
  }

  private async loadCache(): Promise<void> {
    const file = this.options.endpointsCachePath;
    if (!file) return;
    try {
      const data = JSON.parse(await fsp.readFile(file, 'utf8')) as { endpoints?: unknown };
      if (Array.isArray(data.endpoints)) {
        this.learned = data.endpoints.filter((e): e is string => typeof e === 'string').map(normalizeEndpoint);
        this.log.info({ file, endpoints: this.learned }, 'API endpoints loaded from cache');
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file, err: describeError(err) }, 'endpoint cache unreadable; ignored');
    }
  }

  private async saveCache(): Promise<void> {
    const file = this.options.endpointsCachePath;
    if (!file) return;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(tmp, JSON.stringify({ version: 1, endpoints: this.learned, learnedAt: new Date().toISOString() }) + '\n');
      await fsp.rename(tmp, file);
    } catch (err) {
      this.log.warn({ file, err: describeError(err) }, 'cannot write endpoint cache');
    }
  }

  /** Reads the `kubernetes` Service's EndpointSlices; updates (and caches) the endpoint list. */
  async refreshEndpoints(signal?: AbortSignal): Promise<string[]> {
    const list = await this.request<List<EndpointSliceLike>>('endpointslices.list', 'GET', paths.endpointSlices('default'), {
      query: { labelSelector: 'kubernetes.io/service-name=kubernetes' },
      ...(signal ? { signal } : {}),
    });
    const found = endpointsFromSlices(list.items, this.opts.excludeAddresses);
    if (found.length > 0 && found.join(',') !== this.learned.join(',')) {
      const before = this.learned;
      this.learned = found;
      await this.saveCache();
      // After the save, so whoever reads this line (an operator, the lab) finds the cache written.
      this.log.info({ endpoints: found, before }, 'API endpoints learned from EndpointSlices');
    }
    return found;
  }

  /** Background work: endpoint discovery on an interval. Resolves when `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    if (!this.opts.discoverEndpoints) return;
    while (!signal.aborted) {
      try {
        await this.refreshEndpoints(signal);
      } catch (err) {
        if (signal.aborted) break;
        this.log.warn({ err: describeError(err) }, 'endpoint discovery failed; keeping the known endpoints');
      }
      await sleep(this.opts.endpointRefreshMs, signal);
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.watched) unwatchFile(p);
    this.watched.length = 0;
    // Requests in flight (a release on shutdown) finish; nothing new is pooled.
    for (const c of [this.primary, this.fallback]) if (c) retire(c.agent);
  }
}

function flatHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** JSON when the server says so (Status objects on errors, objects on success), else the text. */
function parseBody(text: string, headers: IncomingHttpHeaders): unknown {
  if (!text) return undefined;
  if (!String(headers['content-type'] ?? '').includes('json')) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The server (or an idle timer) ended a watch normally; the caller re-watches. */
export class WatchEndedError extends Error {
  override readonly name = 'WatchEndedError';
}
