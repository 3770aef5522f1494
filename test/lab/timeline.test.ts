import { describe, expect, it } from 'vitest';
import { holderChanges, renderTimeline } from '../../lab/timeline.js';
import type { ProbeRecord } from '../../lab/tcpprobe.js';

/** One connection every 100 ms from t = 0: `who` per slot, '-' for a failed one. */
function records(...who: string[]): ProbeRecord[] {
  return who.map((w, i) => (w === '-' ? { t: i * 100, ok: false, node: null, ms: 100, err: 'ETIMEDOUT' } : { t: i * 100, ok: true, node: w, ms: 1 }));
}

describe('the demo timeline of who answered for the VIP (lab/timeline.ts)', () => {
  it('a change of node, with the wait between their answers and the failed connections in it', () => {
    expect(holderChanges(records('n1', 'n1', '-', '-', 'n2', 'n2', 'n3'))).toEqual([
      { at: 400, from: 'n1', to: 'n2', gapMs: 300, failed: 2 },
      { at: 600, from: 'n2', to: 'n3', gapMs: 100, failed: 0 },
    ]);
    // Failures before anyone answered are not a change.
    expect(holderChanges(records('-', '-', 'n1', 'n1'))).toEqual([]);
  });

  it('draws a row per node, one for failed connections, the marks and the changes', () => {
    const text = renderTimeline(records('n1', 'n1', 'n1', 'n1', '-', '-', 'n2', 'n2', 'n2', 'n2', 'n2'), {
      nodes: ['n1', 'n2', 'n3'],
      width: 10,
      target: '198.18.0.100:7000',
      marks: [{ at: 350, label: 'kill -9 n1' }],
    });
    expect(text.split('\n')).toEqual([
      "who answered 198.18.0.100:7000 (the client's connections), over 1.00 s:",
      '             0 s       1 s',
      '  n1         ████',
      '  n2               ████',
      '  n3',
      '  no answer      ▒▒',
      '                a',
      '  a  +0.35 s  kill -9 n1',
      '  changes:',
      '  +0.60 s  n1 → n2: 300 ms between their answers, 2 connections failed',
    ]);
  });

  it('says so when nothing was recorded or nothing changed', () => {
    expect(renderTimeline([], { nodes: ['n1'] })).toMatch(/no connection recorded/);
    expect(renderTimeline(records('n1', 'n1'), { nodes: ['n1'] })).toMatch(/the same node answered throughout/);
  });
});
