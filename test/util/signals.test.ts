import { getEventListeners } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep, untilAborted, withSignal } from '../../src/util/signals.js';

/** Tracks whether `p` has settled, and how. */
function watch(p: Promise<void>): { state: () => 'pending' | 'resolved' | 'rejected' } {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  return { state: () => state };
}

/** Lets pending promise reactions run. */
const ticks = () => new Promise<void>((r) => setImmediate(r));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('sleep', () => {
  it('resolves after the delay', async () => {
    const started = performance.now();
    await sleep(30, new AbortController().signal);
    // Timers may fire up to a millisecond early on the monotonic clock.
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
  });

  it('resolves (does not reject) as soon as the signal aborts, and detaches from it', async () => {
    const ac = new AbortController();
    const p = watch(sleep(60_000, ac.signal));
    await ticks();
    expect(p.state()).toBe('pending');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    ac.abort(new Error('stop'));
    await ticks();
    expect(p.state()).toBe('resolved');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('resolves at once, without a timer, when the signal has already aborted', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const p = watch(sleep(60_000, AbortSignal.abort()));
    await ticks();
    expect(p.state()).toBe('resolved');
    expect(spy).not.toHaveBeenCalled();
  });

  it('removes its abort listener when the timer fires', async () => {
    const ac = new AbortController();
    await sleep(1, ac.signal);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('works without a signal, and takes a negative delay as 0', async () => {
    await sleep(5);
    await sleep(-100);
  });

  it('keeps the process alive by default and not with { unref: true }', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const ac = new AbortController();
    const ref = sleep(60_000, ac.signal);
    const unref = sleep(60_000, ac.signal, { unref: true });
    const timers = spy.mock.results.map((r) => r.value as NodeJS.Timeout);
    expect(timers.map((t) => t.hasRef())).toEqual([true, false]);
    ac.abort();
    await Promise.all([ref, unref]);
  });

  it('sets no timer for Infinity and waits for the signal alone', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const ac = new AbortController();
    const p = watch(sleep(Infinity, ac.signal));
    expect(spy).not.toHaveBeenCalled();
    await delay(20);
    expect(p.state()).toBe('pending');
    ac.abort();
    await ticks();
    expect(p.state()).toBe('resolved');
  });

  it('can be woken early through a linked signal, leaving the parent clean', async () => {
    const run = new AbortController();
    const woken = new AbortController();
    const p = watch(withSignal([run.signal, woken.signal], undefined, (s) => sleep(60_000, s)));
    await ticks();
    expect(p.state()).toBe('pending');
    woken.abort();
    await ticks();
    expect(p.state()).toBe('resolved');
    expect(run.signal.aborted).toBe(false);
    expect(getEventListeners(run.signal, 'abort')).toHaveLength(0);
  });
});

describe('untilAborted', () => {
  it('stays pending until the signal aborts, then resolves (does not reject)', async () => {
    const ac = new AbortController();
    const p = watch(untilAborted(ac.signal));
    await delay(20);
    expect(p.state()).toBe('pending');
    ac.abort(new Error('stop'));
    await ticks();
    expect(p.state()).toBe('resolved');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('resolves at once when the signal has already aborted', async () => {
    const p = watch(untilAborted(AbortSignal.abort()));
    await ticks();
    expect(p.state()).toBe('resolved');
  });

  it('does not keep the process alive', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const ac = new AbortController();
    const p = untilAborted(ac.signal);
    expect(spy).not.toHaveBeenCalled();
    ac.abort();
    await p;
  });
});
