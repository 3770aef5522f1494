import { describe, expect, it } from 'vitest';
import { holderTimeline } from '../../bench/lib/holder-changes.js';

const macs = new Map([
  ['02:00:00:00:00:01', 'n1'],
  ['02:00:00:00:00:02', 'n2'],
]);
const rec = (sentAt: number, mac?: string) => ({ seq: sentAt, family: 4 as const, sentAt, answers: mac ? [{ mac, at: sentAt + 1 }] : [] });

describe('holderTimeline (bench:soak)', () => {
  it('counts changes of the answering node and the longest unanswered stretch', () => {
    const t = holderTimeline(
      [rec(0, '02:00:00:00:00:01'), rec(10, '02:00:00:00:00:01'), rec(20), rec(30), rec(40), rec(50, '02:00:00:00:00:02'), rec(60, '02:00:00:00:00:01')],
      macs,
    );
    expect(t.changes).toEqual([
      { at: 50, from: 'n1', to: 'n2' },
      { at: 60, from: 'n2', to: 'n1' },
    ]);
    expect(t.longestGapMs).toBe(20);
    expect([t.requests, t.unanswered]).toEqual([7, 3]);
  });

  it('a steady holder is no change, whatever the gaps', () => {
    const t = holderTimeline([rec(0, '02:00:00:00:00:01'), rec(10), rec(20, '02:00:00:00:00:01')], macs);
    expect(t.changes).toEqual([]);
  });
});
