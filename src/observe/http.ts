/**
 * /metrics, /healthz and /readyz on one listener (prometheus_server, kube-vip's :2112).
 *
 * - /metrics: the process registry (src/observe/metrics.ts) in Prometheus text format.
 * - /healthz: the liveness probe. 200 while the agent says it is healthy and the event loop has
 *   not stalled recently. A loop that is stalled *now* cannot answer at all, so the probe's own
 *   timeout catches that; this endpoint adds the case of a loop that keeps stalling: after a
 *   stall longer than `stallMs` it answers 503 for `stallWindowMs`. With the generated probes
 *   (period 10 s, timeout 3 s, 3 failures) one stall costs at most two failed probes, so only a
 *   persistent or repeated stall gets the container restarted. A stall is never unsafe by itself:
 *   the holder stops answering at its grant's deadline whatever the loop does.
 * - /readyz: 200 once `ready()` says the agent has started.
 * - /status: the agent's live view as JSON (src/observe/status.ts), what `vipd status` prints.
 * `?verbose` lists each check, kube-apiserver style. Only GET and HEAD.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { monotonicClock, type Clock } from '../util/clock.js';
import type { Logger } from './log.js';
import { metrics } from './metrics.js';

export interface ObserveServerOptions {
  /** Where to listen (prometheus_server, parsed by the settings table); host undefined = every address, port 0 = a free one. */
  listen: ListenAddress;
  registry: Registry;
  ready: () => boolean;
  healthy: () => boolean;
  /** The /status object, built at each request; absent: /status is 404. */
  status?: () => unknown;
  log: Logger;
  /** Event-loop lag that counts as a stall (default 5000 ms). */
  stallMs?: number;
  /** How long /healthz fails after a stall (default 5000 ms). */
  stallWindowMs?: number;
  /** Watchdog tick (default 250 ms). */
  tickMs?: number;
  clock?: Clock;
}

export interface ObserveServer {
  close(): Promise<void>;
  port: number;
}

export interface ListenAddress {
  /** undefined: every address (IPv6 and IPv4). */
  host: string | undefined;
  /** 0 picks a free port. */
  port: number;
}

/** The listener could not be opened (port in use, address not local): the caller names the setting. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(
    readonly code: string,
    readonly hint: string,
  ) {
    super(`cannot listen: ${code}${hint}`);
  }
}

/** Measures how late a repeating timer fires; the lateness is how long the loop was blocked. */
class StallWatch {
  private timer: NodeJS.Timeout;
  private last: number;
  lastStall: { at: number; ms: number } | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly tickMs: number,
    private readonly stallMs: number,
    private readonly log: Logger,
  ) {
    this.last = clock.now();
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  private tick(): void {
    const now = this.clock.now();
    const lag = now - this.last - this.tickMs;
    this.last = now;
    metrics.eventLoopLag.observe(Math.max(0, lag) / 1000);
    if (lag > this.stallMs) {
      this.lastStall = { at: now, ms: Math.round(lag) };
      this.log.warn({ reason: 'event loop stalled', stallMs: Math.round(lag) }, `event loop was blocked for ${Math.round(lag)} ms`);
    }
  }

  /** A stall that ended within `windowMs`, if any. */
  recent(windowMs: number): { at: number; ms: number } | undefined {
    const s = this.lastStall;
    return s && this.clock.now() - s.at < windowMs ? s : undefined;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

function checkReport(res: http.ServerResponse, checks: Check[], verbose: boolean, head: boolean, what: string): void {
  const ok = checks.every((c) => c.ok);
  let body: string;
  if (verbose) {
    body = checks.map((c) => (c.ok ? `[+]${c.name} ok` : `[-]${c.name} failed${c.detail ? `: ${c.detail}` : ''}`)).join('\n') + `\n${what} check ${ok ? 'passed' : 'failed'}\n`;
  } else {
    body = ok ? 'ok\n' : `${checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail ?? 'failed'}`).join('; ')}\n`;
  }
  res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

export async function startObserveServer(opts: ObserveServerOptions): Promise<ObserveServer> {
  const clock = opts.clock ?? monotonicClock;
  const stallMs = opts.stallMs ?? 5000;
  const stallWindowMs = opts.stallWindowMs ?? 5000;
  const { host, port } = opts.listen;
  const watch = new StallWatch(clock, opts.tickMs ?? 250, stallMs, opts.log);

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://vipd');
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }
    const verbose = url.searchParams.has('verbose');
    switch (url.pathname) {
      case '/metrics':
        opts.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': opts.registry.contentType, 'content-length': Buffer.byteLength(text) });
            res.end(head ? undefined : text);
          },
          (err: unknown) => {
            opts.log.error({ err }, 'collecting metrics failed');
            res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
            res.end('collecting metrics failed\n');
          },
        );
        return;
      case '/healthz':
      case '/livez': {
        const stall = watch.recent(stallWindowMs);
        const healthy = safe(opts.healthy);
        checkReport(
          res,
          [
            { name: 'agent', ok: healthy },
            { name: 'eventloop', ok: stall === undefined, detail: stall ? `blocked for ${stall.ms} ms, ${Math.round(clock.now() - stall.at)} ms ago` : undefined },
          ],
          verbose,
          head,
          'healthz',
        );
        return;
      }
      case '/status': {
        if (!opts.status) break;
        let body: string;
        try {
          body = `${JSON.stringify(opts.status())}\n`;
        } catch (err) {
          opts.log.error({ err }, 'building /status failed');
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('building the status failed\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
        res.end(head ? undefined : body);
        return;
      }
      case '/readyz':
        checkReport(res, [{ name: 'agent', ok: safe(opts.ready), detail: 'not started' }], verbose, head, 'readyz');
        return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`not found: try /metrics, /healthz, /readyz${opts.status ? ' or /status' : ''}\n`);
  });
  // Probes and scrapes are small; a client that dribbles its request must not hold a socket.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    watch.close();
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const hint = code === 'EADDRINUSE' ? ' (another process listens there; kube-vip also uses :2112 by default)' : '';
    throw new ListenError(code, hint);
  }
  server.on('error', (err) => opts.log.error({ err }, 'metrics listener failed'));
  const bound = (server.address() as AddressInfo).port;
  opts.log.info({ host: host ?? '*', port: bound }, opts.status ? 'serving /metrics, /healthz, /readyz and /status' : 'serving /metrics, /healthz and /readyz');

  let closing: Promise<void> | undefined;
  return {
    port: bound,
    close() {
      closing ??= new Promise<void>((resolve) => {
        watch.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** A check that throws is a failed check, not a crashed server. */
function safe(f: () => boolean): boolean {
  try {
    return f();
  } catch {
    return false;
  }
}
