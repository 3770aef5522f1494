/**
 * TCP prober: connects to VIP:port every `intervalMs` and records, per attempt, when it started,
 * whether it got a tag back (see tagserver.ts) and which node sent it.
 *
 * - Attempts start on a fixed schedule (start + k·interval), independent of each other, so a
 *   hanging attempt never delays the next one; at most ceil(timeout/interval)+1 are in flight.
 * - The default per-attempt timeout is 10·interval clamped to [50, 900] ms: below Linux's initial
 *   SYN retransmission (1 s), so a success always means the first SYN got through at `t`, and an
 *   attempt started inside an outage cannot succeed late and hide it.
 * - `t` is wall-clock ms since the epoch with sub-ms resolution (lab/wallclock.ts: CLOCK_REALTIME),
 *   comparable with capture timestamps (µs since the epoch) after dividing those by 1000.
 *
 * `outageWindows` and `summarizeProbe` are pure.
 */
import { connect } from 'node:net';
import { wallNow } from './wallclock.js';

export interface ProbeRecord {
  /** Attempt start, ms since the epoch (fractional). */
  t: number;
  ok: boolean;
  /** The tag the server sent (node name), null when the attempt failed. */
  node: string | null;
  /** Attempt duration in ms. */
  ms: number;
  /** Error code of a failed attempt: ECONNREFUSED, ETIMEDOUT (ours), EHOSTUNREACH, EMPTY (closed without a tag), … */
  err?: string;
}

export interface ProbeOptions {
  host: string;
  port: number;
  intervalMs: number;
  timeoutMs?: number;
  signal: AbortSignal;
  onRecord?: (r: ProbeRecord) => void;
}

export function defaultTimeoutMs(intervalMs: number): number {
  return Math.min(900, Math.max(50, intervalMs * 10));
}


/** One connection attempt: resolves (never rejects) with the tag read until EOF. */
export function probeOnce(host: string, port: number, timeoutMs: number): Promise<ProbeRecord> {
  const t = wallNow();
  const started = performance.now();
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const sock = connect({ host, port });
    const finish = (ok: boolean, err?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const node = ok ? data.trim() : null;
      const r: ProbeRecord = { t, ok, node, ms: performance.now() - started };
      if (err !== undefined) r.err = err;
      resolve(r);
    };
    const timer = setTimeout(() => finish(false, 'ETIMEDOUT'), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      data += d;
      if (data.length > 256) finish(false, 'OVERSIZE');
    });
    sock.once('end', () => (data.trim() ? finish(true) : finish(false, 'EMPTY')));
    sock.once('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? 'ERROR'));
  });
}

/** Probes until `signal` aborts, then waits for attempts in flight and returns every record in start order. */
export async function runProbe(opts: ProbeOptions): Promise<ProbeRecord[]> {
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs(opts.intervalMs);
  const records: ProbeRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  const origin = performance.now();
  let k = 0;
  while (!opts.signal.aborted) {
    const p = probeOnce(opts.host, opts.port, timeoutMs).then((r) => {
      records.push(r);
      opts.onRecord?.(r);
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    k++;
    // Fixed schedule; if the loop fell behind (stalled event loop), skip the missed slots rather
    // than bursting, so a stall shows up as a gap instead of being papered over.
    let next = origin + k * opts.intervalMs;
    const now = performance.now();
    if (next < now) {
      k = Math.ceil((now - origin) / opts.intervalMs);
      next = origin + k * opts.intervalMs;
    }
    await sleepUntil(next, opts.signal);
  }
  await Promise.all(inFlight);
  return records.sort((a, b) => a.t - b.t);
}

function sleepUntil(monoMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, monoMs - performance.now()));
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface OutageWindow {
  /** `t` of the last success before the window (or of the first attempt, when `leading`). */
  start: number;
  /** `t` of the first success after it (or of the last attempt, when `open`). */
  end: number;
  ms: number;
  /** Failed attempts inside the window. */
  failed: number;
  /** Node that answered before / after (null at the edges). */
  before: string | null;
  after: string | null;
  /** Failures before the first success: the service was not up yet; not counted as an outage. */
  leading: boolean;
  /** Failures after the last success: the outage had not ended when probing stopped. */
  open: boolean;
}

export interface Outages {
  /**
   * The outage: longest gap between consecutive successful attempts (start times), including an
   * open window at the end; leading failures excluded. Null when there was no success at all.
   */
  longestGapMs: number | null;
  /** Windows between successes that contain failed attempts, in time order. */
  windows: OutageWindow[];
  /** Longest gap between successes with no failed attempt in it: the prober itself stalled. */
  longestIdleGapMs: number;
}

/** Pure: the outage windows of a probe run (records in any order). */
export function outageWindows(records: readonly ProbeRecord[]): Outages {
  const rs = [...records].sort((a, b) => a.t - b.t);
  const windows: OutageWindow[] = [];
  let longest: number | null = null;
  let idle = 0;
  let lastOk: ProbeRecord | undefined;
  let failedSince = 0;
  let firstFail: ProbeRecord | undefined;
  for (const r of rs) {
    if (!r.ok) {
      failedSince++;
      firstFail ??= r;
      continue;
    }
    if (lastOk === undefined) {
      if (failedSince > 0 && firstFail) windows.push({ start: firstFail.t, end: r.t, ms: r.t - firstFail.t, failed: failedSince, before: null, after: r.node, leading: true, open: false });
    } else {
      const gap = r.t - lastOk.t;
      longest = Math.max(longest ?? 0, gap);
      if (failedSince > 0) windows.push({ start: lastOk.t, end: r.t, ms: gap, failed: failedSince, before: lastOk.node, after: r.node, leading: false, open: false });
      else idle = Math.max(idle, gap);
    }
    if (lastOk === undefined && longest === null) longest = 0;
    lastOk = r;
    failedSince = 0;
    firstFail = undefined;
  }
  const last = rs[rs.length - 1];
  if (lastOk !== undefined && failedSince > 0 && last) {
    const gap = last.t - lastOk.t;
    longest = Math.max(longest ?? 0, gap);
    windows.push({ start: lastOk.t, end: last.t, ms: gap, failed: failedSince, before: lastOk.node, after: null, leading: false, open: true });
  }
  return { longestGapMs: longest, windows, longestIdleGapMs: idle };
}

export interface NodeSwitch {
  /** `t` of the first success from the new node. */
  t: number;
  from: string;
  to: string;
}

export interface ProbeSummary extends Outages {
  target: string;
  intervalMs: number;
  timeoutMs: number;
  attempts: number;
  ok: number;
  failed: number;
  firstT: number | null;
  lastT: number | null;
  /** Successful answers per node. */
  perNode: Record<string, number>;
  /** Every change of the answering node between consecutive successes. More than one per failover means flapping or two holders. */
  switches: NodeSwitch[];
  /** Failures by error code. */
  errors: Record<string, number>;
}

/** Pure: the JSON summary of a probe run. */
export function summarizeProbe(records: readonly ProbeRecord[], meta: { target: string; intervalMs: number; timeoutMs: number }): ProbeSummary {
  const rs = [...records].sort((a, b) => a.t - b.t);
  const perNode: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const switches: NodeSwitch[] = [];
  let prev: string | null = null;
  let ok = 0;
  for (const r of rs) {
    if (r.ok && r.node !== null) {
      ok++;
      perNode[r.node] = (perNode[r.node] ?? 0) + 1;
      if (prev !== null && prev !== r.node) switches.push({ t: r.t, from: prev, to: r.node });
      prev = r.node;
    } else {
      const e = r.err ?? 'ERROR';
      errors[e] = (errors[e] ?? 0) + 1;
    }
  }
  return {
    ...meta,
    attempts: rs.length,
    ok,
    failed: rs.length - ok,
    firstT: rs[0]?.t ?? null,
    lastT: rs[rs.length - 1]?.t ?? null,
    perNode,
    switches,
    errors,
    ...outageWindows(rs),
  };
}
