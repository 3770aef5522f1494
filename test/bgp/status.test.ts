import { describe, expect, it } from 'vitest';
import { hasPaths, parseBfdPeers, parseSummary } from '../../src/bgp/status.js';

// Shapes as FRR 8.4 prints them (trimmed).
const summary = {
  ipv4Unicast: { as: 65001, peers: { '198.18.0.1': { remoteAs: 65000, state: 'Established', outq: 0, pfxSnt: 1 }, '198.18.0.2': { state: 'Active', outq: 0 } } },
  ipv6Unicast: { as: 65001, peers: { '2001:db8::1': { state: 'Established', outq: 2 } } },
};

describe('FRR status', () => {
  it('reads the sessions of every address family', () => {
    const p = parseSummary(summary);
    expect([...p.keys()]).toEqual(['198.18.0.1', '198.18.0.2', '2001:db8::1']);
    expect(p.get('198.18.0.1')?.established).toBe(true);
    expect(p.get('198.18.0.2')?.established).toBe(false);
    expect(p.get('2001:db8::1')?.outq).toBe(2);
    expect(parseSummary({}).size).toBe(0);
    expect(parseSummary(null).size).toBe(0);
  });

  it('reads BFD sessions and whether bgpd still has a path', () => {
    expect(parseBfdPeers([{ peer: '198.18.0.1', status: 'up' }, { peer: '198.18.0.2' }])).toEqual(new Map([['198.18.0.1', 'up']]));
    expect(hasPaths({ prefix: '198.18.0.100/32', paths: [{}] })).toBe(true);
    expect(hasPaths({})).toBe(false);
  });
});
