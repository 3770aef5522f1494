/**
 * Health gate for control-plane mode (docs/design.md, rule 5): this node may hold the VIP only while
 * its OWN API server answers /livez. Probes only the local URL, never fails over.
 *
 * Invariants:
 * - Unknown is unhealthy: before the first successful probe the gate is closed.
 * - `failureThreshold` consecutive failures close the gate, `successThreshold` consecutive
 *   successes open it (keepalived track_script fall/rise). A probe that does not answer
 *   within `timeoutMs` (a frozen or wedged server) is a failure.
 * - Listeners are called synchronously on every open/close, so an elector can emit standby
 *   in the same tick.
 */
import https from 'node:https';
import http from 'node:http';
import { monotonicClock, type Clock } from '../util/clock.js';
import { sleep } from '../util/signals.js';
import { createLogger, type Logger } from '../observe/log.js';
import { metrics } from '../observe/metrics.js';

/** What the elector consults: may this node lead now, and tell me when that changes. */
export interface HealthGate {
  healthy(): boolean;
  onChange(listener: (healthy: boolean, reason: string) => void): () => void;
}

/** For modes without a local API server (and tests): always open. */
export const alwaysHealthy: HealthGate = {
  healthy: () => true,
  onChange: () => () => {},
};

export interface HealthCounters {
  healthy: boolean;
  /** Consecutive results contradicting `healthy`. */
  streak: number;
}

/** Pure fall/rise counting; returns the new counters and whether the gate flipped. */
export function stepHealth(
  s: HealthCounters,
  ok: boolean,
  thresholds: { failureThreshold: number; successThreshold: number },
): { next: HealthCounters; flipped: boolean } {
  if (ok === s.healthy) return { next: { healthy: s.healthy, streak: 0 }, flipped: false };
  const streak = s.streak + 1;
  const needed = ok ? thresholds.successThreshold : thresholds.failureThreshold;
  if (streak >= needed) return { next: { healthy: ok, streak: 0 }, flipped: true };
  return { next: { healthy: s.healthy, streak }, flipped: false };
}

export const LIVEZ_DEFAULTS = {
  url: 'https://127.0.0.1:6443/livez',
  intervalMs: 1_000,
  timeoutMs: 1_000,
  failureThreshold: 3,
  successThreshold: 1,
} as const;

export interface LivezOptions {
  url?: string;
  intervalMs?: number;
  timeoutMs?: number;
  failureThreshold?: number;
  successThreshold?: number;
  /** TLS material and credentials for the probe (e.g. `() => apiClient.httpsOptions(local)`). */
  requestOptions?: () => Promise<https.RequestOptions> | https.RequestOptions;
  clock?: Clock;
  log?: Logger;
}

export type ProbeResult = { ok: true; status: number; ms: number } | { ok: false; detail: string; ms: number };

export class LivezProbe implements HealthGate {
  private state: HealthCounters = { healthy: false, streak: 0 };
  private readonly listeners = new Set<(healthy: boolean, reason: string) => void>();
  private readonly o: Required<Omit<LivezOptions, 'requestOptions' | 'clock' | 'log'>>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private last: ProbeResult | undefined;

  constructor(private readonly options: LivezOptions = {}) {
    this.o = {
      url: options.url ?? LIVEZ_DEFAULTS.url,
      intervalMs: options.intervalMs ?? LIVEZ_DEFAULTS.intervalMs,
      timeoutMs: options.timeoutMs ?? LIVEZ_DEFAULTS.timeoutMs,
      failureThreshold: options.failureThreshold ?? LIVEZ_DEFAULTS.failureThreshold,
      successThreshold: options.successThreshold ?? LIVEZ_DEFAULTS.successThreshold,
    };
    for (const k of ['intervalMs', 'timeoutMs', 'failureThreshold', 'successThreshold'] as const) {
      const v = this.o[k];
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`livez ${k} (${v}) must be a positive number`);
    }
    this.clock = options.clock ?? monotonicClock;
    this.log = options.log ?? createLogger(undefined, { mod: 'livez' });
    metrics.localApiHealthy.set(0); // unknown is unhealthy
  }

  healthy(): boolean {
    return this.state.healthy;
  }

  lastResult(): ProbeResult | undefined {
    return this.last;
  }

  onChange(listener: (healthy: boolean, reason: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Probes every intervalMs until `signal` aborts (the first probe at once). */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.clock.now();
      const r = await this.probeOnce(signal);
      if (signal.aborted) break;
      this.apply(r);
      const wait = this.o.intervalMs - (this.clock.now() - started);
      if (wait > 0) await sleep(wait, signal);
    }
  }

  /** Feeds one result through the thresholds (exposed for tests and for callers with their own loop). */
  apply(r: ProbeResult): void {
    this.last = r;
    const { next, flipped } = stepHealth(this.state, r.ok, this.o);
    this.state = next;
    if (!flipped) return;
    metrics.localApiHealthy.set(next.healthy ? 1 : 0);
    const reason = r.ok
      ? `local API server ${this.o.url} answered (HTTP ${r.status})`
      : `local API server ${this.o.url} failed ${this.o.failureThreshold} probe(s): ${r.detail}`;
    if (next.healthy) this.log.info({ url: this.o.url, reason }, 'local API server healthy');
    else this.log.warn({ url: this.o.url, reason }, 'local API server unhealthy');
    for (const l of [...this.listeners]) {
      try {
        l(next.healthy, reason);
      } catch (err) {
        this.log.error({ err }, 'health listener threw');
      }
    }
  }

  async probeOnce(signal?: AbortSignal): Promise<ProbeResult> {
    const started = this.clock.now();
    const ms = () => Math.round(this.clock.now() - started);
    let base: https.RequestOptions = {};
    try {
      base = (await this.options.requestOptions?.()) ?? {};
    } catch (err) {
      return { ok: false, detail: `credentials: ${(err as Error).message}`, ms: ms() };
    }
    const url = new URL(this.o.url);
    const mod = url.protocol === 'http:' ? http : https;
    return new Promise<ProbeResult>((resolve) => {
      let settled = false;
      /** `answered`: the response was read to its end, so a pooled socket may serve the next probe. */
      const done = (r: ProbeResult, answered = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (!answered) req.destroy();
        resolve(r);
      };
      const onAbort = () => done({ ok: false, detail: 'aborted', ms: ms() });
      const timer = setTimeout(() => done({ ok: false, detail: `no answer within ${this.o.timeoutMs} ms`, ms: ms() }), this.o.timeoutMs);
      // No agent unless the caller pools connections; a probe that got no full answer destroys its
      // socket, so a frozen server's connection is never reused.
      const req = mod.request(url, { ...base, method: 'GET', agent: base.agent ?? false, headers: { ...(base.headers ?? {}), Accept: 'text/plain' } }, (res) => {
        const status = res.statusCode ?? 0;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 2000) body += d;
        });
        res.on('end', () => {
          if (status === 200) done({ ok: true, status, ms: ms() }, true);
          else done({ ok: false, detail: `HTTP ${status}: ${body.trim().split('\n').filter((l) => l.includes('failed')).join('; ').slice(0, 300) || body.slice(0, 120)}`, ms: ms() }, true);
        });
        res.on('error', (e) => done({ ok: false, detail: e.message, ms: ms() }));
      });
      req.on('error', (e) => done({ ok: false, detail: (e as NodeJS.ErrnoException).code ?? e.message, ms: ms() }));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end();
    });
  }
}
