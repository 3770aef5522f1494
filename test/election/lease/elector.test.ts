/**
 * Elector logic against an in-memory Lease with CAS semantics and real (short) timers.
 * The same scenarios run against a real kube-apiserver in lease-api.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { LeaseElector, type LeaseElectorOptions } from '../../../src/election/lease/elector.js';
import type { Verdict } from '../../../src/election/types.js';
import type { HealthGate } from '../../../src/health/livez.js';
import type { EventInput } from '../../../src/k8s/events.js';
import { MemoryLease, type MemoryView } from './memory.js';

const now = () => performance.now();

class Gate implements HealthGate {
  private ls = new Set<(h: boolean, r: string) => void>();
  constructor(private h = true) {}
  healthy() {
    return this.h;
  }
  onChange(l: (h: boolean, r: string) => void) {
    this.ls.add(l);
    return () => this.ls.delete(l);
  }
  set(h: boolean) {
    this.h = h;
    for (const l of this.ls) l(h, h ? 'test: healthy' : 'test: unhealthy');
  }
}

interface Node {
  name: string;
  view: MemoryView;
  elector: LeaseElector;
  verdicts: Array<{ at: number; v: Verdict }>;
  events: EventInput[];
  logs: string[];
  ac: AbortController;
  done: Promise<void>;
  holding(): boolean;
  acquiredAt(): number | undefined;
  standbyAfter(t: number): number | undefined;
}

const running: Node[] = [];

function start(m: MemoryLease, name: string, extra: Partial<LeaseElectorOptions> = {}): Node {
  const view = m.view(name);
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }));
  const events: EventInput[] = [];
  const elector = new LeaseElector({
    store: view,
    identity: name,
    leaseDurationMs: 800,
    renewDeadlineMs: 400,
    retryPeriodMs: 100,
    log,
    events: { record: (e) => events.push(e) },
    ...extra,
  });
  const verdicts: Node['verdicts'] = [];
  elector.onVerdict((v) => {
    verdicts.push({ at: now(), v });
  });
  const ac = new AbortController();
  const n: Node = {
    name,
    view,
    elector,
    verdicts,
    events,
    logs,
    ac,
    done: elector.run(ac.signal),
    holding: () => verdicts.at(-1)?.v.kind === 'hold',
    acquiredAt: () => verdicts.find((x) => x.v.kind === 'hold')?.at,
    standbyAfter: (t) => verdicts.find((x) => x.at >= t && x.v.kind === 'standby')?.at,
  };
  running.push(n);
  return n;
}

async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = now() + timeoutMs;
  while (!cond()) {
    if (now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

afterEach(async () => {
  for (const n of running.splice(0)) {
    n.view.unfreeze();
    n.view.wedged = false;
    n.ac.abort();
    await n.done;
  }
});

describe('LeaseElector (in-memory Lease)', () => {
  it('rejects unsafe timing at construction', () => {
    const m = new MemoryLease();
    expect(() => new LeaseElector({ store: m.view('a'), identity: 'a', leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500, lingerMs: 1000 })).toThrow(
      /leaseDuration \(3000 ms\) must be greater than renewDeadline \+ retryPeriod \+ linger \+ skewMargin/,
    );
  });

  it('exactly one of three holds; the Lease names it; the others know the leader', async () => {
    const m = new MemoryLease();
    const ns = ['a', 'b', 'c'].map((x) => start(m, x));
    await waitFor(() => ns.some((n) => n.holding()), 2000, 'a holder');
    await new Promise((r) => setTimeout(r, 500));
    const holders = ns.filter((n) => n.holding());
    expect(holders).toHaveLength(1);
    expect(m.record?.holderIdentity).toBe(holders[0]!.name);
    for (const n of ns.filter((x) => !x.holding())) {
      expect(n.verdicts.at(-1)?.v).toMatchObject({ kind: 'standby', leader: holders[0]!.name });
    }
    expect(m.record?.transitions).toBe(0);
    // Renewals extend the deadline, counted from the request's send time.
    const holds = holders[0]!.verdicts.filter((x) => x.v.kind === 'hold');
    expect(holds.length).toBeGreaterThan(3);
    for (const h of holds) if (h.v.kind === 'hold') expect(h.v.until).toBeLessThanOrEqual(h.at + 400);
  });

  it('frozen holder: standby at its deadline, before the other can acquire; the other acquires leaseDuration after its last observation', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a');
    await waitFor(() => a.holding(), 2000, 'a holds');
    const b = start(m, 'b');
    await new Promise((r) => setTimeout(r, 300));
    a.view.frozen = true;
    const frozenAt = now();
    await waitFor(() => b.holding(), 3000, 'b acquires');
    const lastAWrite = m.writes.filter((w) => w.by === 'a').at(-1)!.at;
    const aStandby = a.standbyAfter(frozenAt)!;
    const bAcquire = b.acquiredAt()!;
    expect(aStandby).toBeLessThan(bAcquire);
    // a's grant ran from the send of its last successful renew (before the write) + 400 ms.
    expect(aStandby - lastAWrite).toBeLessThan(400 + 100);
    // b waited the whole lease after it saw a's last write (and acted on time, not at a later poll).
    // The record advertises whole seconds rounded up (1 s for 800 ms), and b honours the longer one.
    const bWrite = m.writes.find((w) => w.by === 'b')!.at;
    expect(bWrite - lastAWrite).toBeGreaterThanOrEqual(1000);
    expect(bWrite - lastAWrite).toBeLessThan(1000 + 150);
    expect(m.record).toMatchObject({ holderIdentity: 'b', transitions: 1 });
    expect(a.events.map((e) => e.reason)).toContain('LeaseLost');
    expect(b.events.map((e) => e.reason)).toContain('LeaseHandover');
    expect(b.events.find((e) => e.reason === 'LeaseHandover')?.note).toMatch(/previous holder a/);
  });

  it('shutdown: standby first, the async listener (unbind) finishes, then the release; a watching candidate takes over at once', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a', { retryPeriodMs: 300, leaseDurationMs: 1200 });
    await waitFor(() => a.holding(), 2000, 'a holds');
    const b = start(m, 'b', { retryPeriodMs: 300, leaseDurationMs: 1200 });
    await waitFor(() => b.verdicts.some((x) => x.v.kind === 'standby' && x.v.leader === 'a'), 2000, 'b sees a');
    let unbound = -1;
    a.elector.onVerdict((v) =>
      v.kind === 'standby' ? new Promise<void>((r) => setTimeout(() => ((unbound = now()), r()), 50)) : undefined,
    );
    const t0 = now();
    a.ac.abort();
    await a.done;
    const release = m.writes.find((w) => w.by === 'a' && w.spec.holderIdentity === '')!;
    expect(release.spec.leaseDurationSeconds).toBe(1);
    expect(a.standbyAfter(t0)).toBeLessThan(unbound);
    expect(unbound).toBeLessThanOrEqual(release.at);
    await waitFor(() => b.holding(), 1000, 'b takes over');
    const handover = b.acquiredAt()! - release.at;
    expect(handover).toBeLessThan(300); // < retryPeriod: the watch, not the poll
    expect(m.record).toMatchObject({ holderIdentity: 'b', transitions: 1 }); // '' → b counts, as in client-go
  });

  it('health gate: closing emits standby at once and releases; another node acquires; reopening does not preempt', async () => {
    const m = new MemoryLease();
    const gate = new Gate(true);
    const a = start(m, 'a', { gate });
    await waitFor(() => a.holding(), 2000, 'a holds');
    const b = start(m, 'b');
    await new Promise((r) => setTimeout(r, 200));
    const t0 = now();
    gate.set(false);
    expect(a.verdicts.at(-1)?.v.kind).toBe('standby'); // synchronously
    expect(a.verdicts.at(-1)!.at - t0).toBeLessThan(20);
    await waitFor(() => b.holding(), 1000, 'b acquires');
    expect(b.acquiredAt()! - t0).toBeLessThan(250);
    gate.set(true);
    await new Promise((r) => setTimeout(r, 1000));
    expect(a.holding()).toBe(false);
    expect(b.holding()).toBe(true);
  });

  it('a closed gate keeps a node from acquiring even a free Lease', async () => {
    const m = new MemoryLease();
    const gate = new Gate(false);
    const a = start(m, 'a', { gate });
    await new Promise((r) => setTimeout(r, 400));
    expect(a.holding()).toBe(false);
    expect(m.record).toBeUndefined();
    gate.set(true);
    await waitFor(() => a.holding(), 1000, 'a acquires once healthy');
  });

  it('stale resourceVersion: a conflicting write makes the holder re-read, and it keeps the Lease if it still names it', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a');
    await waitFor(() => a.holding(), 2000, 'a holds');
    // Someone else bumps the resourceVersion without changing the holder (e.g. a label edit).
    const r = m.record!;
    m.write('admin', { holderIdentity: r.holderIdentity, acquireTime: r.acquireTime!, renewTime: r.renewTime!, leaseDurationSeconds: 1, transitions: r.transitions });
    await new Promise((res) => setTimeout(res, 500));
    expect(a.holding()).toBe(true);
    expect(a.verdicts.filter((x) => x.v.kind === 'standby' && x.at > 0 && a.acquiredAt()! < x.at)).toHaveLength(0);
    expect(m.writes.at(-1)?.by).toBe('a');
  });

  it('someone else overwriting the holder: the holder steps down at once and campaigns again', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a');
    await waitFor(() => a.holding(), 2000, 'a holds');
    const r = m.record!;
    const t0 = now();
    m.write('intruder', { holderIdentity: 'x', acquireTime: r.acquireTime!, renewTime: r.renewTime!, leaseDurationSeconds: 1, transitions: r.transitions + 1 });
    await waitFor(() => !a.holding(), 1000, 'a steps down');
    expect(a.standbyAfter(t0)! - t0).toBeLessThan(150);
    expect(a.verdicts.at(-1)?.v).toMatchObject({ kind: 'standby', leader: 'x' });
    // x never renews: a takes it back after leaseDuration.
    await waitFor(() => a.holding(), 2000, 'a re-acquires');
    expect(m.record?.holderIdentity).toBe('a');
  });

  it('a wedged API client (requests ignore aborts): the deadline timer still emits standby, the watchdog restarts the loop', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a', { watchdogMs: 600 });
    await waitFor(() => a.holding(), 2000, 'a holds');
    const lastAWrite = m.writes.filter((w) => w.by === 'a').at(-1)!.at;
    a.view.wedged = true;
    const t0 = now();
    await waitFor(() => !a.holding(), 2000, 'a stands by');
    expect(a.standbyAfter(t0)! - lastAWrite).toBeLessThan(400 + 100);
    await waitFor(() => a.logs.some((l) => l.includes('no progress')), 3000, 'watchdog log');
    a.view.wedged = false;
    await waitFor(() => a.holding(), 3000, 'a holds again after the restart');
  });

  it('a hung watch (connected, silent) is detected from the polls and restarted', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a');
    await waitFor(() => a.holding(), 2000, 'a holds');
    const b = start(m, 'b');
    await waitFor(() => b.view.watchStarts === 1, 1000, 'b watching');
    b.view.watchMuted = true;
    await waitFor(() => b.logs.some((l) => l.includes('not delivering changes')), 3000, 'hung watch detected');
    await waitFor(() => b.view.watchStarts >= 2, 2000, 'watch restarted');
    expect(b.holding()).toBe(false);
  });

  it('transient errors never end run(); the node keeps campaigning', async () => {
    const m = new MemoryLease();
    const a = start(m, 'a');
    a.view.failNext = new Error('boom');
    await waitFor(() => a.holding(), 3000, 'a holds despite an error');
    a.view.failNext = new TypeError('fetch failed');
    await new Promise((r) => setTimeout(r, 300));
    expect(a.holding()).toBe(true);
  });
});
