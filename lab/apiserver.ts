/**
 * A real Kubernetes control plane for tests and the lab: one etcd and one or more kube-apiservers
 * sharing it, on loopback or inside given network namespaces. Lab-only code (no vitest imports:
 * the lab demo uses it too).
 *
 * Invariants:
 * - Every process runs in its own process group (spawned detached); stop/destroy signal the whole
 *   group and wait for the exit, so nothing is left running or listening. A frozen (SIGSTOPped)
 *   server is resumed after SIGTERM so it can act on it; SIGKILL follows after a grace period.
 * - All files live in one temp folder, `<tmpdir>/vipd-cp-<owner pid>-<random>`, removed by destroy().
 *   If the owning process dies without destroy() (SIGKILL, crash), the next startControlPlane()
 *   on this machine finds the folder name in the orphans' command lines, ends those processes by
 *   pid and removes the folder. A normal process exit also ends them (an 'exit' hook).
 * - The API servers share one CA, one serving certificate (all names and IPs of all servers) and
 *   one service-account signing key, so a token or kubeconfig for one works against any of them
 *   (and against a VIP in front of them, if the VIP is among `certIps`).
 * - Each server advertises the address it binds, so the `kubernetes` EndpointSlice lists every
 *   live API server, except on loopback, where kube-apiserver refuses to publish endpoints (there
 *   the endpoint reconciler is off). On loopback, server i binds 127.0.0.(i+1), all on one port,
 *   so servers are still told apart by address.
 * - Talking to a server inside a namespace (readiness, setup calls) goes through
 *   `ip netns exec <ns> node`, so the caller's namespace need not reach the lab network.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAllYaml } from '@kubernetes/client-node';
import { familyBits, familyOf, hostPort } from '../src/net/ip.js';
import { formatAddr, parseAddr } from '../src/services/logic/addr.js';
import { projectRoot, requireApiAssets } from './k8s-assets.js';
import { writeKubeconfig } from './kubeconfig.js';
import { createPki, type Pki } from './pki.js';

export { apiAssets, requireApiAssets, API_ASSETS_HINT, type ApiAssets } from './k8s-assets.js';

export interface EtcdHandle {
  /** http://address:port, as the API servers reach it. */
  url: string;
  readonly pid: number;
  netns: string | undefined;
  stop(): Promise<void>;
}

export type ServerState = 'running' | 'frozen' | 'stopped';

export interface ApiServerHandle {
  /** "apiserver-0", "apiserver-1", ... */
  name: string;
  /** https://address:port (IPv6 in brackets). */
  url: string;
  address: string;
  port: number;
  netns: string | undefined;
  caFile: string;
  caPem: string;
  /** Kubeconfig file: cluster admin (client certificate in system:masters) against this server. */
  adminKubeconfig: string;
  /** stdout+stderr of the process, appended across restarts. */
  logFile: string;
  /** Pid of the running process (changes on restart); also its process group id. */
  readonly pid: number;
  readonly state: ServerState;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  stop(): Promise<void>;
  /** Start again after stop(), same address and flags; resolves when /readyz says ok. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but answers nothing. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** One GET /readyz as admin: true on 200. */
  ready(): Promise<boolean>;
}

export interface ServerSpec {
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Address to bind and advertise. Default: 127.0.0.(i+1) without netns; required with netns. */
  bindAddress?: string;
  /** Default: 6443 inside a namespace; a free port (the same for all loopback servers) otherwise. */
  port?: number;
  /** Extra kube-apiserver flags for this server. */
  extraArgs?: string[];
}

export interface ControlPlaneOptions {
  /** Default: one server on loopback. */
  servers?: ServerSpec[];
  etcdNetns?: string;
  /** Default 127.0.0.1 (without etcdNetns); required with etcdNetns. */
  etcdAddress?: string;
  /** Client port; default 2379 in a namespace, else free. The peer port is the next free one (2380). */
  etcdPort?: number;
  /** Extra names and IPs for the serving certificate (the VIP goes here). */
  certNames?: string[];
  certIps?: string[];
  /** Folder with kube-apiserver and etcd; default: KUBEBUILDER_ASSETS or the .cache/k8s build. */
  assetsDir?: string;
  /**
   * Service ClusterIP range; default 198.19.240.0/20, or 2001:db8:ffff:ffff::/112 when every server
   * binds an IPv6 address. Never routed: there is no kube-proxy.
   */
  serviceCidr?: string;
  /** RBAC manifest applied as admin once the API is ready; default manifests/rbac.yaml; false: none. */
  rbacManifest?: string | false;
  /** Per process, for /readyz (etcd: /health). Default 120 s: two busy cores can be slow. */
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags for every server. */
  apiServerArgs?: string[];
}

export interface ServiceAccountOptions {
  /** Default "vipd". */
  name?: string;
  /** Default "kube-system". */
  namespace?: string;
  /** Default 86400. */
  expirationSeconds?: number;
  /** Which server issues the token (any will accept it); default the first running one. */
  via?: ApiServerHandle;
}

export interface ControlPlane {
  dir: string;
  caFile: string;
  caPem: string;
  etcd: EtcdHandle;
  servers: ApiServerHandle[];
  /** Admin kubeconfig against servers[0]. */
  adminKubeconfig: string;
  /** A TokenRequest token for a ServiceAccount (default kube-system/vipd, bound by manifests/rbac.yaml). */
  serviceAccountToken(opts?: ServiceAccountOptions): Promise<string>;
  /**
   * Kubeconfig file for a ServiceAccount (default kube-system/vipd) against `server` (a handle or an
   * https URL such as the VIP's; default servers[0]).
   */
  serviceAccountKubeconfig(server?: ApiServerHandle | string, opts?: ServiceAccountOptions): Promise<string>;
  /** Kubeconfig file against `server` as admin, or with the given bearer token. */
  kubeconfigFor(server: ApiServerHandle | string, auth?: 'admin' | { token: string }): Promise<string>;
  /** Server-side apply of a YAML manifest (one or more documents) as admin. */
  apply(yaml: string, via?: ApiServerHandle): Promise<void>;
  /**
   * A raw admin request (path like /api/v1/namespaces), made inside the server's namespace if it has
   * one. Bodies are sent as JSON, except PATCH, which is a server-side apply (apply-patch+yaml).
   */
  request(method: string, path: string, body?: unknown, via?: ApiServerHandle): Promise<HttpResult>;
  /** Stop every process and remove the folder. Safe to call twice. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface HttpResult {
  status: number;
  body: string;
}

const DEFAULT_SERVICE_CIDR = '198.19.240.0/20';
const DEFAULT_SERVICE_CIDR_V6 = '2001:db8:ffff:ffff::/112';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const ALWAYS_DNS = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];
const STOP_GRACE_MS = 15_000;

// ---------------------------------------------------------------------------------------------
// Processes

/** Live children of this process, ended by the 'exit' hook if nobody stopped them. */
const liveProcesses = new Set<ManagedProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of liveProcesses) p.signal('SIGKILL');
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

/**
 * A server process of the lab (etcd, kube-apiserver, kube-controller-manager): its own process
 * group, output appended to a log file, SIGTERM then SIGKILL on stop, and killed by this process's
 * exit hook if nobody stopped it.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  private running = false;
  frozen = false;

  constructor(
    readonly name: string,
    private readonly argv: string[],
    private readonly netns: string | undefined,
    readonly logFile: string,
  ) {}

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get alive(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    // `ip netns exec` execs the program in place, so the pid we get is the server's own.
    const full = this.netns ? ['ip', 'netns', 'exec', this.netns, ...this.argv] : this.argv;
    const out = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(full[0]!, full.slice(1), { detached: true, stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    this.child = child;
    this.running = true;
    this.frozen = false;
    liveProcesses.add(this);
    this.exitPromise = new Promise((resolve) => {
      const done = (): void => {
        this.running = false;
        this.frozen = false;
        liveProcesses.delete(this);
        resolve();
      };
      child.once('exit', done);
      child.once('error', done); // e.g. the binary cannot be executed: no 'exit' follows
    });
  }

  /** Signal the whole process group; a group that is already gone is not an error. */
  signal(sig: NodeJS.Signals): void {
    if (!this.running || this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  freeze(): void {
    this.signal('SIGSTOP');
    if (this.running) this.frozen = true;
  }

  thaw(): void {
    this.signal('SIGCONT');
    this.frozen = false;
  }

  exited(): Promise<void> {
    return this.exitPromise;
  }

  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (!this.running) return;
    this.signal('SIGTERM');
    this.signal('SIGCONT'); // a stopped process only acts on SIGTERM once continued
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  logTail(lines = 25): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/**
 * Ends processes and removes folders left by control planes whose owner process died without
 * destroy(). Matches only our own folder names and only when the owner pid is gone.
 */
export function sweepOrphanedControlPlanes(): void {
  const base = tmpdir();
  const ownerAlive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const pattern = new RegExp(`${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/vipd-cp-(\\d+)-`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const owner = pattern.exec(cmdline)?.[1];
    if (owner && !ownerAlive(Number(owner))) {
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  for (const name of readdirSync(base)) {
    const owner = /^vipd-cp-(\d+)-/.exec(name)?.[1];
    if (owner && !ownerAlive(Number(owner))) rmSync(join(base, name), { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP, in this namespace or another

interface HttpRequest {
  url: string;
  method: string;
  headers?: Record<string, string>;
  body?: string;
  ca?: string;
  cert?: string;
  key?: string;
  timeoutMs: number;
}

function requestHere(req: HttpRequest): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const mod = req.url.startsWith('https:') ? https : http;
    const r = mod.request(
      req.url,
      { method: req.method, headers: req.headers, ca: req.ca, cert: req.cert, key: req.key, agent: false, timeout: req.timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`timeout after ${req.timeoutMs} ms: ${req.method} ${req.url}`)));
    r.on('error', reject);
    r.end(req.body);
  });
}

// The same request, made by a short-lived node inside the namespace: request JSON on stdin,
// result JSON on stdout. Plain CommonJS so it runs as `node -e` without the project.
const NETNS_REQUEST_SCRIPT = `
let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const mod = require(req.url.startsWith('https:') ? 'https' : 'http');
  const r = mod.request(req.url, { method: req.method, headers: req.headers, ca: req.ca, cert: req.cert, key: req.key, agent: false, timeout: req.timeoutMs }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') })));
  });
  r.on('timeout', () => r.destroy(new Error('timeout after ' + req.timeoutMs + ' ms')));
  r.on('error', (e) => process.stdout.write(JSON.stringify({ error: String(e && e.message) })));
  r.end(req.body);
});`;

function requestInNetns(netns: string, req: HttpRequest): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', NETNS_REQUEST_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), req.timeoutMs + 5_000);
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', (e) => {
      clearTimeout(killer);
      reject(e);
    });
    child.on('close', () => {
      clearTimeout(killer);
      try {
        const parsed = JSON.parse(out) as HttpResult | { error: string };
        if ('error' in parsed) reject(new Error(`${parsed.error} (in netns ${netns})`));
        else resolve(parsed);
      } catch {
        reject(new Error(`request in netns ${netns} failed: ${err.trim() || out.trim() || 'no output'}`));
      }
    });
    child.stdin.end(JSON.stringify(req));
  });
}

function httpRequest(netns: string | undefined, req: HttpRequest): Promise<HttpResult> {
  return netns ? requestInNetns(netns, req) : requestHere(req);
}

// ---------------------------------------------------------------------------------------------
// Ports and addresses

function canBind(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: address, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: address, port: 0, exclusive: true }, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A port free on every given address right now (a later bind can still race; callers retry). */
async function commonFreePort(addresses: string[], avoid: number[] = []): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort(addresses[0]!);
    if (avoid.includes(port)) continue;
    const ok = await Promise.all(addresses.slice(1).map((a) => canBind(a, port)));
    if (ok.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${addresses.join(', ')}`);
}

/** The first address of a Service CIDR: the `kubernetes` Service's ClusterIP. */
export function firstServiceIp(cidr: string): string | undefined {
  const [base, bitsText] = cidr.split('/');
  const a = base === undefined ? undefined : parseAddr(base);
  const bits = Number(bitsText);
  if (!a || !Number.isInteger(bits) || bits < 0 || bits > familyBits(a.family)) return undefined;
  const hostBits = BigInt(familyBits(a.family) - bits);
  return formatAddr({ family: a.family, value: ((a.value >> hostBits) << hostBits) + 1n });
}

function isLoopback(address: string): boolean {
  return address === '::1' || /^127\./.test(address);
}

function looksLikeBindConflict(log: string): boolean {
  return /address already in use/i.test(log);
}

// ---------------------------------------------------------------------------------------------
// Waiting

async function waitFor(
  proc: ManagedProcess,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    if (!proc.alive) throw new StartError(`${what} exited before it was ready`, proc.logTail());
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new StartError(`${what} not ready after ${timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ''}`, proc.logTail());
    }
    await sleep(250);
  }
}

export class StartError extends Error {
  override name = 'StartError';
  constructor(
    message: string,
    readonly logTail: string,
  ) {
    super(`${message}\n--- last log lines ---\n${logTail}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Manifests

interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
}

/** The kinds the lab applies; server-side apply needs the resource path, which a kind alone lacks. */
const RESOURCE_PATHS: Record<string, { prefix: string; plural: string; namespaced: boolean }> = {
  'v1/Namespace': { prefix: '/api/v1', plural: 'namespaces', namespaced: false },
  'v1/ServiceAccount': { prefix: '/api/v1', plural: 'serviceaccounts', namespaced: true },
  'v1/ConfigMap': { prefix: '/api/v1', plural: 'configmaps', namespaced: true },
  'v1/Secret': { prefix: '/api/v1', plural: 'secrets', namespaced: true },
  'v1/Service': { prefix: '/api/v1', plural: 'services', namespaced: true },
  'v1/Node': { prefix: '/api/v1', plural: 'nodes', namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRole': { prefix: '/apis/rbac.authorization.k8s.io/v1', plural: 'clusterroles', namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { prefix: '/apis/rbac.authorization.k8s.io/v1', plural: 'clusterrolebindings', namespaced: false },
  'rbac.authorization.k8s.io/v1/Role': { prefix: '/apis/rbac.authorization.k8s.io/v1', plural: 'roles', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { prefix: '/apis/rbac.authorization.k8s.io/v1', plural: 'rolebindings', namespaced: true },
  'coordination.k8s.io/v1/Lease': { prefix: '/apis/coordination.k8s.io/v1', plural: 'leases', namespaced: true },
};

function applyPath(obj: KubeObject): string {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const res = RESOURCE_PATHS[key];
  const name = obj.metadata?.name;
  if (!res) throw new Error(`cannot apply ${key}: add it to RESOURCE_PATHS in lab/apiserver.ts`);
  if (!name) throw new Error(`cannot apply ${key} without metadata.name`);
  const ns = res.namespaced ? `/namespaces/${encodeURIComponent(obj.metadata?.namespace ?? 'default')}` : '';
  return `${res.prefix}${ns}/${res.plural}/${encodeURIComponent(name)}?fieldManager=vipd-lab&force=true`;
}

// ---------------------------------------------------------------------------------------------
// The control plane

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  installExitHook();
  sweepOrphanedControlPlanes();
  const assets = opts.assetsDir ?? requireApiAssets();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const specs = opts.servers?.length ? opts.servers : [{}];
  // The Service range must be of the advertised addresses' family.
  const allV6 = specs.every((s) => s.bindAddress !== undefined && familyOf(s.bindAddress) === 6);
  const serviceCidr = opts.serviceCidr ?? (allV6 ? DEFAULT_SERVICE_CIDR_V6 : DEFAULT_SERVICE_CIDR);

  const dir = await mkdtemp(join(tmpdir(), `vipd-cp-${process.pid}-`));
  liveDirs.add(dir);
  const processes: ManagedProcess[] = [];
  let destroyed = false;

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    const errors: unknown[] = [];
    // API servers first: stopping etcd under them only makes their shutdown noisier.
    const servers = processes.filter((p) => p.name !== 'etcd');
    for (const r of await Promise.allSettled(servers.map((p) => p.stop()))) if (r.status === 'rejected') errors.push(r.reason);
    for (const r of await Promise.allSettled(processes.map((p) => p.stop()))) if (r.status === 'rejected') errors.push(r.reason);
    await rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
    if (errors.length) throw new AggregateError(errors, 'control plane teardown had errors');
  };

  try {
    // Addresses and ports.
    const loopbackAddresses = specs.map((s, i) => (s.netns ? undefined : s.bindAddress ?? `127.0.0.${i + 1}`));
    const addresses = specs.map((s, i) => {
      const a = s.bindAddress ?? loopbackAddresses[i];
      if (!a) throw new Error(`server ${i}: bindAddress is required with netns ${s.netns}`);
      if (!net.isIP(a)) throw new Error(`server ${i}: bindAddress ${JSON.stringify(a)} is not an IP address`);
      return a;
    });
    const hostAddrs = loopbackAddresses.filter((a): a is string => a !== undefined);
    const sharedPort = hostAddrs.length > 0 && specs.some((s) => !s.netns && s.port === undefined) ? await commonFreePort(hostAddrs) : undefined;
    const ports = specs.map((s) => s.port ?? (s.netns ? 6443 : sharedPort!));

    const etcdAddress = opts.etcdAddress ?? (opts.etcdNetns ? undefined : '127.0.0.1');
    if (!etcdAddress) throw new Error(`etcdAddress is required with etcdNetns ${opts.etcdNetns}`);

    // Certificates.
    const serviceIp = firstServiceIp(serviceCidr);
    const pki: Pki = await createPki(dir, {
      dnsNames: [...ALWAYS_DNS, ...(opts.certNames ?? [])],
      ips: ['127.0.0.1', ...addresses, ...(serviceIp ? [serviceIp] : []), ...(opts.certIps ?? [])],
    });

    // etcd.
    const etcd = await startEtcd({ assets, dir, netns: opts.etcdNetns, address: etcdAddress, port: opts.etcdPort, readyTimeoutMs, processes });

    // API servers.
    const servers: ApiServerHandle[] = [];
    for (let i = 0; i < specs.length; i++) {
      servers.push(
        await createApiServer({
          index: i,
          spec: specs[i]!,
          address: addresses[i]!,
          port: ports[i]!,
          portIsAuto: specs[i]!.port === undefined && !specs[i]!.netns,
          assets,
          dir,
          pki,
          etcdUrl: etcd.url,
          serviceCidr,
          extraArgs: opts.apiServerArgs ?? [],
          readyTimeoutMs,
          processes,
        }),
      );
    }
    // Start them together: each takes seconds of CPU, and readiness is awaited for all below.
    await Promise.all(servers.map((s) => s.start()));

    const firstRunning = (): ApiServerHandle => {
      const s = servers.find((x) => x.state === 'running');
      if (!s) throw new Error('no API server is running');
      return s;
    };

    const request = async (method: string, path: string, body?: unknown, via?: ApiServerHandle): Promise<HttpResult> => {
      const s = via ?? firstRunning();
      const isPatch = method === 'PATCH';
      return httpRequest(s.netns, {
        url: s.url + path,
        method,
        headers: {
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': isPatch ? 'application/apply-patch+yaml' : 'application/json' } : {}),
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        ca: pki.caPem,
        cert: pki.adminCertPem,
        key: pki.adminKeyPem,
        timeoutMs: 15_000,
      });
    };

    const apply = async (yaml: string, via?: ApiServerHandle): Promise<void> => {
      const objects = (loadAllYaml(yaml) as unknown[]).filter((o): o is KubeObject => typeof o === 'object' && o !== null);
      for (const obj of objects) {
        const path = applyPath(obj);
        // kube-system exists only once the apiserver's namespace controller has run; allow for it.
        const deadline = Date.now() + 30_000;
        for (;;) {
          const res = await request('PATCH', path, obj, via);
          if (res.status >= 200 && res.status < 300) break;
          if (res.status === 404 && Date.now() < deadline) {
            await sleep(200);
            continue;
          }
          throw new Error(`apply ${obj.kind} ${obj.metadata?.name}: HTTP ${res.status}: ${res.body.slice(0, 500)}`);
        }
      }
    };

    if (opts.rbacManifest !== false) {
      await apply(await readFile(opts.rbacManifest ?? join(projectRoot(), 'manifests', 'rbac.yaml'), 'utf8'));
    }

    const serviceAccountToken = async (o: ServiceAccountOptions = {}): Promise<string> => {
      const name = o.name ?? 'vipd';
      const namespace = o.namespace ?? 'kube-system';
      const res = await request(
        'POST',
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`,
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: o.expirationSeconds ?? 86_400 } },
        o.via,
      );
      if (res.status !== 201 && res.status !== 200) throw new Error(`TokenRequest for ${namespace}/${name}: HTTP ${res.status}: ${res.body.slice(0, 500)}`);
      const token = (JSON.parse(res.body) as { status?: { token?: string } }).status?.token;
      if (!token) throw new Error(`TokenRequest for ${namespace}/${name}: no token in the answer`);
      return token;
    };

    let kubeconfigCount = 0;
    const kubeconfigFor = async (server: ApiServerHandle | string, auth: 'admin' | { token: string } = 'admin'): Promise<string> => {
      const url = typeof server === 'string' ? server : server.url;
      const kind = auth === 'admin' ? 'admin' : 'token';
      return writeKubeconfig(join(dir, `kubeconfig-${kind}-${++kubeconfigCount}`), {
        server: url,
        caPem: pki.caPem,
        user: auth === 'admin' ? { certPem: pki.adminCertPem, keyPem: pki.adminKeyPem } : { token: auth.token },
      });
    };

    return {
      dir,
      caFile: pki.caCert,
      caPem: pki.caPem,
      etcd,
      servers,
      adminKubeconfig: servers[0]!.adminKubeconfig,
      serviceAccountToken,
      serviceAccountKubeconfig: async (server, o) => kubeconfigFor(server ?? servers[0]!, { token: await serviceAccountToken(o) }),
      kubeconfigFor,
      apply,
      request,
      destroy,
      [Symbol.asyncDispose]: destroy,
    };
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
}

interface EtcdArgs {
  assets: string;
  dir: string;
  netns: string | undefined;
  address: string;
  port: number | undefined;
  readyTimeoutMs: number;
  processes: ManagedProcess[];
}

async function startEtcd(a: EtcdArgs): Promise<EtcdHandle> {
  const dataDir = join(a.dir, 'etcd-data');
  for (let attempt = 0; ; attempt++) {
    const auto = a.port === undefined && !a.netns;
    const clientPort = a.port ?? (a.netns ? 2379 : await freePort(a.address));
    const peerPort = a.netns ? clientPort + 1 : auto ? await commonFreePort([a.address], [clientPort]) : clientPort + 1;
    const clientUrl = `http://${hostPort(a.address, clientPort)}`;
    const peerUrl = `http://${hostPort(a.address, peerPort)}`;
    const proc = new ManagedProcess(
      'etcd',
      [
        join(a.assets, 'etcd'),
        '--name=vipd-lab',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=vipd-lab=${peerUrl}`,
        '--initial-cluster-state=new',
        // Test data is disposable: skipping fsync makes every API write much cheaper.
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      a.netns,
      join(a.dir, 'etcd.log'),
    );
    a.processes.push(proc);
    proc.start();
    try {
      await waitFor(
        proc,
        `etcd at ${clientUrl}`,
        async () => {
          const res = await httpRequest(a.netns, { url: `${clientUrl}/health`, method: 'GET', timeoutMs: 2_000 });
          return res.status === 200 && /"health":\s*"true"/.test(res.body);
        },
        a.readyTimeoutMs,
      );
    } catch (err) {
      await proc.stop();
      if (auto && attempt < 3 && looksLikeBindConflict(proc.logTail())) {
        await rm(dataDir, { recursive: true, force: true });
        continue;
      }
      throw err;
    }
    return {
      url: clientUrl,
      get pid() {
        return proc.pid;
      },
      netns: a.netns,
      stop: () => proc.stop(),
    };
  }
}

interface ApiServerArgs {
  index: number;
  spec: ServerSpec;
  address: string;
  port: number;
  portIsAuto: boolean;
  assets: string;
  dir: string;
  pki: Pki;
  etcdUrl: string;
  serviceCidr: string;
  extraArgs: string[];
  readyTimeoutMs: number;
  processes: ManagedProcess[];
}

async function createApiServer(a: ApiServerArgs): Promise<ApiServerHandle> {
  const name = `apiserver-${a.index}`;
  const serverDir = join(a.dir, name);
  await mkdir(serverDir);
  let port = a.port;
  const url = (): string => `https://${hostPort(a.address, port)}`;
  const logFile = join(a.dir, `${name}.log`);
  const kubeconfigFile = join(serverDir, 'admin.kubeconfig');

  const argv = (): string[] => [
    join(a.assets, 'kube-apiserver'),
    `--etcd-servers=${a.etcdUrl}`,
    `--bind-address=${a.address}`,
    `--advertise-address=${a.address}`,
    `--secure-port=${port}`,
    `--cert-dir=${serverDir}`,
    `--tls-cert-file=${a.pki.serverCert}`,
    `--tls-private-key-file=${a.pki.serverKey}`,
    `--client-ca-file=${a.pki.caCert}`,
    '--authorization-mode=RBAC',
    `--service-account-issuer=${SA_ISSUER}`,
    `--service-account-key-file=${a.pki.saPub}`,
    `--service-account-signing-key-file=${a.pki.saKey}`,
    `--service-cluster-ip-range=${a.serviceCidr}`,
    '--allow-privileged=true',
    // No controller-manager runs, so nothing would mint the token a Pod's ServiceAccount admission wants.
    '--disable-admission-plugins=ServiceAccount',
    // Fewer moving parts and less memory; the lab does not test API fairness.
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    // Stop promptly: tests stop and restart servers on purpose.
    '--shutdown-delay-duration=0s',
    // The `kubernetes` Service's endpoints come from each server's advertise address, which the
    // API server refuses to publish when it is a loopback address: no endpoints on loopback.
    `--endpoint-reconciler-type=${isLoopback(a.address) ? 'none' : 'lease'}`,
    ...a.extraArgs,
    ...(a.spec.extraArgs ?? []),
  ];

  const proc = new ManagedProcess(name, argv(), a.spec.netns, logFile);
  a.processes.push(proc);
  // argv is fixed at construction; a port change on retry needs a fresh process object.
  let current = proc;

  const ready = async (): Promise<boolean> => {
    const res = await httpRequest(a.spec.netns, {
      url: `${url()}/readyz`,
      method: 'GET',
      ca: a.pki.caPem,
      cert: a.pki.adminCertPem,
      key: a.pki.adminKeyPem,
      timeoutMs: 3_000,
    });
    return res.status === 200;
  };

  const start = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      current.start();
      try {
        await waitFor(current, `${name} at ${url()}`, ready, a.readyTimeoutMs);
        return;
      } catch (err) {
        await current.stop();
        if (a.portIsAuto && attempt < 3 && looksLikeBindConflict(current.logTail())) {
          port = await commonFreePort([a.address]);
          handle.url = url();
          current = new ManagedProcess(name, argv(), a.spec.netns, logFile);
          a.processes.push(current);
          await writeAdminKubeconfig();
          continue;
        }
        throw err;
      }
    }
  };

  const writeAdminKubeconfig = (): Promise<string> =>
    writeKubeconfig(kubeconfigFile, { server: url(), caPem: a.pki.caPem, user: { certPem: a.pki.adminCertPem, keyPem: a.pki.adminKeyPem } });
  await writeAdminKubeconfig();

  const handle: ApiServerHandle = {
    name,
    url: url(),
    address: a.address,
    get port() {
      return port;
    },
    netns: a.spec.netns,
    caFile: a.pki.caCert,
    caPem: a.pki.caPem,
    adminKubeconfig: kubeconfigFile,
    logFile,
    get pid() {
      return current.pid;
    },
    get state(): ServerState {
      return !current.alive ? 'stopped' : current.frozen ? 'frozen' : 'running';
    },
    stop: () => current.stop(),
    start,
    restart: async () => {
      await current.stop();
      await start();
    },
    freeze: () => current.freeze(),
    thaw: () => current.thaw(),
    ready,
  };
  return handle;
}
