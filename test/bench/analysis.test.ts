import { describe, expect, it } from 'vitest';
import { analyzeRun, episodes, stableHolder, takeoverSettled, tcpInterleaves, type ArpRecord, type TcpRecord } from '../../bench/lib/analysis.js';

// One TCP attempt every 10 ms from `start`; one character each: a node digit answered, '.' failed.
function tcp(pattern: string, start = 0): TcpRecord[] {
  return [...pattern].map((c, i) => (c === '.' ? { t: start + i * 10, ok: false, node: null, ms: 100, err: 'ETIMEDOUT' } : { t: start + i * 10, ok: true, node: `n${c}`, ms: 1 }));
}

const MAC = (d: string): string => `02:00:00:00:00:1${d}`;

// One ARP request every 10 ms; each character lists who answered: '1', '12' (both), '.' nobody.
function arp(pattern: string[], start = 0): ArpRecord[] {
  return pattern.map((p, i) => ({
    seq: i,
    family: 4,
    sentAt: start + i * 10,
    answers: p === '.' ? [] : [...p].map((d) => ({ mac: MAC(d), at: start + i * 10 + 1 })),
  }));
}

describe('tcpInterleaves', () => {
  it('a clean handover or a chain of them is no event', () => {
    expect(tcpInterleaves(tcp('111..222'))).toEqual([]);
    expect(tcpInterleaves(tcp('11223333'))).toEqual([]);
  });

  it('a node answering again after another took over is one event per return', () => {
    const ev = tcpInterleaves(tcp('1122112'));
    expect(ev).toEqual([
      { kind: 'tcp-interleave', at: 40, node: 'n1', displacedBy: 'n2' },
      { kind: 'tcp-interleave', at: 60, node: 'n2', displacedBy: 'n1' },
    ]);
  });

  it('ignores failures between runs of the same node', () => {
    expect(tcpInterleaves(tcp('11...11'))).toEqual([]);
  });
});

describe('episodes', () => {
  it('merges events closer than the gap and counts kinds', () => {
    const eps = episodes(
      [
        { kind: 'double-answer', at: 0, seq: 0, family: 4, macs: ['a', 'b'] },
        { kind: 'double-answer', at: 10, seq: 1, family: 4, macs: ['a', 'b'] },
        { kind: 'tcp-interleave', at: 900, node: 'n1', displacedBy: 'n2' },
        { kind: 'double-answer', at: 5000, seq: 2, family: 4, macs: ['a', 'b'] },
      ],
      1000,
    );
    expect(eps).toEqual([
      { from: 0, to: 900, kinds: { 'double-answer': 2, 'tcp-interleave': 1 } },
      { from: 5000, to: 5000, kinds: { 'double-answer': 1 } },
    ]);
    expect(episodes([])).toEqual([]);
  });
});

describe('analyzeRun', () => {
  it('crash with a clean takeover: outage is the longest gap, takeover counts from the event', () => {
    // n1 serves until 200 ms, nothing until 500 ms, then n2. Event at 150 ms.
    const t = tcp('1'.repeat(21) + '.'.repeat(29) + '2'.repeat(20));
    const a = arp([...Array(21).fill('1'), ...Array(29).fill('.'), ...Array(20).fill('2')]);
    const r = analyzeRun({ vip: '198.18.0.100', eventAt: 150, oldHolder: 'n1', from: 0, to: 10_000, tcp: t, arp: a, claims: [] });
    expect(r.outageMs).toBe(300);
    expect(r.takeoverMs).toBe(350);
    expect(r.newHolder).toBe('n2');
    expect(r.failed).toBe(29);
    expect(r.episodes).toEqual([]);
    expect(r.arpBy[MAC('1')]).toEqual({ firstMs: -149, lastMs: 51, answers: 21 });
  });

  it('two MACs answering the same requests is one episode of two-holder events', () => {
    const a = arp([...Array(10).fill('1'), ...Array(50).fill('12'), ...Array(10).fill('2')]);
    const r = analyzeRun({ vip: '198.18.0.100', eventAt: 50, oldHolder: 'n1', from: 0, to: 10_000, tcp: tcp('1'.repeat(30) + '2'.repeat(40)), arp: a, claims: [] });
    expect(r.episodes).toHaveLength(1);
    expect(r.episodes[0]!.kinds['double-answer']).toBe(50);
    expect(r.outageMs).toBe(10);
  });

  it('records outside the window are ignored', () => {
    const t = [...tcp('....', -1000), ...tcp('1111')];
    const r = analyzeRun({ vip: '198.18.0.100', eventAt: 0, oldHolder: 'n1', from: 0, to: 100, tcp: t, arp: [], claims: [] });
    expect(r.attempts).toBe(4);
    expect(r.takeoverMs).toBeNull();
    expect(r.outageMs).toBe(10);
  });

  it('interleaved claims on the bridge count as two holders too', () => {
    const claims = [
      { at: 0, mac: MAC('1'), kind: 'garp' as const },
      { at: 100, mac: MAC('2'), kind: 'garp' as const },
      { at: 200, mac: MAC('1'), kind: 'garp' as const },
    ];
    const r = analyzeRun({ vip: '198.18.0.100', eventAt: 0, oldHolder: 'n1', from: 0, to: 1000, tcp: [], arp: [], claims });
    expect(r.events.map((e) => e.kind)).toContain('interleaved-claims');
    expect(r.outageMs).toBeNull();
  });
});

describe('takeoverSettled', () => {
  const t = tcp('111....2222222222');
  it('waits for another node to serve settleMs without a failure', () => {
    expect(takeoverSettled(t, 25, 'n1', 100, 50)).toBe(false);
    expect(takeoverSettled(t, 25, 'n1', 120, 50)).toBe(true);
    expect(takeoverSettled(tcp('1111111'), 0, 'n1', 10_000, 50)).toBe(false);
  });
  it('a failure after the new node started restarts the clock', () => {
    const u = tcp('11..22.2222');
    expect(takeoverSettled(u, 0, 'n1', 100, 50)).toBe(false);
    expect(takeoverSettled(u, 0, 'n1', 110, 50)).toBe(true);
  });
});

describe('stableHolder', () => {
  const macs = new Map([
    [MAC('1'), 'n1'],
    [MAC('2'), 'n2'],
  ]);
  it('one MAC answering everything and the same node serving: that node', () => {
    expect(stableHolder(arp(Array(200).fill('2')), tcp('2'.repeat(200)), macs, 2000, 1500)).toBe('n2');
  });
  it('two MACs, a gap, a failure, or a mismatch: nobody', () => {
    expect(stableHolder(arp([...Array(100).fill('2'), '12', ...Array(99).fill('2')]), tcp('2'.repeat(200)), macs, 2000, 1500)).toBeNull();
    expect(stableHolder(arp([...Array(100).fill('2'), '.', ...Array(99).fill('2')]), tcp('2'.repeat(200)), macs, 2000, 1500)).toBeNull();
    expect(stableHolder(arp(Array(200).fill('2')), tcp('2'.repeat(100) + '.' + '2'.repeat(99)), macs, 2000, 1500)).toBeNull();
    expect(stableHolder(arp(Array(200).fill('2')), tcp('1'.repeat(200)), macs, 2000, 1500)).toBeNull();
  });
  it('too few records to judge: nobody', () => {
    expect(stableHolder(arp(Array(10).fill('2'), 1900), tcp('2'.repeat(10), 1900), macs, 2000, 1500)).toBeNull();
  });
});
