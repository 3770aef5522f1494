import { describe, expect, it } from 'vitest';
import { defaultTimeoutMs, outageWindows, summarizeProbe, type ProbeRecord } from '../../lab/tcpprobe.js';

// Records every 10 ms from t=0; `pattern` is one character per attempt: a node letter answered, '.' failed.
function recs(pattern: string, start = 0): ProbeRecord[] {
  return [...pattern].map((c, i) => (c === '.' ? { t: start + i * 10, ok: false, node: null, ms: 5, err: 'ETIMEDOUT' } : { t: start + i * 10, ok: true, node: `n${c}`, ms: 1 }));
}

describe('outageWindows', () => {
  it('is the interval when nothing failed', () => {
    expect(outageWindows(recs('1111'))).toEqual({ longestGapMs: 10, windows: [], longestIdleGapMs: 10 });
  });

  it('measures the longest gap between successes and lists the windows with failures', () => {
    const o = outageWindows(recs('11...22..2'));
    expect(o.longestGapMs).toBe(40);
    expect(o.windows).toEqual([
      { start: 10, end: 50, ms: 40, failed: 3, before: 'n1', after: 'n2', leading: false, open: false },
      { start: 60, end: 90, ms: 30, failed: 2, before: 'n2', after: 'n2', leading: false, open: false },
    ]);
  });

  it('leading failures are reported but are not the outage; trailing ones are an open window that counts', () => {
    const o = outageWindows(recs('...11....'));
    expect(o.windows[0]).toMatchObject({ start: 0, end: 30, leading: true, before: null, after: 'n1' });
    expect(o.windows[1]).toMatchObject({ start: 40, end: 80, ms: 40, open: true, after: null });
    expect(o.longestGapMs).toBe(40);
  });

  it('no success at all: no outage figure', () => {
    expect(outageWindows(recs('....')).longestGapMs).toBeNull();
    expect(outageWindows([]).longestGapMs).toBeNull();
  });

  it('a gap without failures is the prober stalling, reported apart', () => {
    const r = [...recs('11'), ...recs('1', 300)];
    const o = outageWindows(r);
    expect(o.longestGapMs).toBe(290);
    expect(o.longestIdleGapMs).toBe(290);
    expect(o.windows).toEqual([]);
  });

  it('accepts records out of order (they complete out of order)', () => {
    expect(outageWindows(recs('1..1').reverse()).longestGapMs).toBe(30);
  });
});

describe('summarizeProbe', () => {
  it('counts per node, errors and every switch of the answering node', () => {
    const s = summarizeProbe(recs('11..2212'), { target: '198.18.0.100:8080', intervalMs: 10, timeoutMs: 100 });
    expect(s).toMatchObject({ attempts: 8, ok: 6, failed: 2, perNode: { n1: 3, n2: 3 }, errors: { ETIMEDOUT: 2 }, longestGapMs: 30 });
    expect(s.switches).toEqual([
      { t: 40, from: 'n1', to: 'n2' },
      { t: 60, from: 'n2', to: 'n1' },
      { t: 70, from: 'n1', to: 'n2' },
    ]);
  });

  it('default timeout stays below the 1 s initial SYN retransmission', () => {
    expect(defaultTimeoutMs(10)).toBe(100);
    expect(defaultTimeoutMs(1)).toBe(50);
    expect(defaultTimeoutMs(1000)).toBe(900);
  });
});
