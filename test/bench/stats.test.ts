import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { maxOf, median, percentile, ratio, roundMs } from '../../bench/lib/stats.js';
import { failoverRow, type RunDetail } from '../../bench/lib/rows.js';

describe('percentile (nearest rank)', () => {
  it('reports a measured value, never an interpolated one', () => {
    expect(percentile([30, 10, 20], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 95)).toBe(40);
    expect(percentile([10, 20, 30, 40], 25)).toBe(10);
    expect(percentile([7], 95)).toBe(7);
    expect(median([5, 1, 3, 2, 4])).toBe(3);
  });

  it('empty or non-finite samples have no percentile', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([Number.NaN, Infinity], 50)).toBeNull();
    expect(percentile([Number.NaN, 4], 50)).toBe(4);
    expect(maxOf([])).toBeNull();
  });

  it('rejects p outside (0, 100]', () => {
    expect(() => percentile([1], 0)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it('is a sample member, monotone in p, between min and max', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }), fc.integer({ min: 1, max: 99 }), (xs, p) => {
        const a = percentile(xs, p)!;
        const b = percentile(xs, p + 1)!;
        expect(xs).toContain(a);
        expect(a).toBeLessThanOrEqual(b);
        expect(a).toBeGreaterThanOrEqual(Math.min(...xs));
        expect(percentile(xs, 100)).toBe(Math.max(...xs));
      }),
    );
  });

  it('rounding and ratios', () => {
    expect(roundMs(12.345)).toBe(12.3);
    expect(roundMs(null)).toBeNull();
    expect(ratio(3610, 1000)).toBe(3.61);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
  });
});

describe('failoverRow', () => {
  const run = (n: number, outageMs: number | null, takeoverMs: number | null, episodes: RunDetail['episodes'] = []): RunDetail => ({
    system: 's',
    scenario: 'crash',
    config: 'c',
    run: n,
    oldHolder: 'n1',
    newHolder: takeoverMs === null ? null : 'n2',
    outageMs,
    takeoverMs,
    episodes,
  });

  it('percentiles over completed runs; skipped runs counted apart; episodes summed', () => {
    const row = failoverRow(
      'keepalived-default',
      'crash',
      'VRRP',
      [
        run(1, 100, 3600),
        run(2, 300, 3500, [{ from: 0, to: 1500, kinds: { 'double-answer': 150 } }]),
        run(3, 200, null),
        { system: 's', scenario: 'crash', config: 'c', run: 4, skipped: 'no single steady holder within the wait' },
      ],
      'a note',
    );
    expect(row).toEqual({
      system: 'keepalived-default',
      scenario: 'crash',
      runs: 3,
      p50_ms: 200,
      p95_ms: 300,
      max_ms: 300,
      two_holder_events: 1,
      two_holder_runs: 1,
      two_holder_max_ms: 1500,
      takeover_p50_ms: 3500,
      takeover_max_ms: 3600,
      no_takeover_runs: 1,
      skipped_runs: 1,
      unexpected_exits: 0,
      config: 'VRRP',
      note: 'a note',
    });
  });

  it('cold-start rows count the runs with a hand-on and the holder changes', () => {
    const cold = (n: number, holderChanges: number): RunDetail => ({ ...run(n, 2500, 2500), scenario: 'cold-start', holderChanges });
    const row = failoverRow('vipd', 'cold-start', 'c', [cold(1, 0), cold(2, 2), cold(3, 0)]);
    expect(row).toMatchObject({ runs: 3, p50_ms: 2500, hand_on_runs: 1, holder_changes: 2 });
    expect(failoverRow('vipd', 'crash', 'c', [run(1, 30, 25)])).not.toHaveProperty('hand_on_runs');
  });

  it('has the fields the issue asks for, and no note key without a note', () => {
    const row = failoverRow('vipd', 'graceful', 'Lease', [run(1, 30, 25)]);
    for (const k of ['system', 'scenario', 'runs', 'p50_ms', 'p95_ms', 'max_ms', 'two_holder_events']) expect(row).toHaveProperty(k);
    expect(row).not.toHaveProperty('note');
  });
});
