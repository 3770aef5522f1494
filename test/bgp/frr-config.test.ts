import { describe, expect, it } from 'vitest';
import { hostPrefix, renderFrr } from '../../src/bgp/frr-config.js';

const base = { asn: 65001, routerId: '198.18.0.11', bfd: { intervalMs: 100, multiplier: 3 } as const };

describe('FRR configuration', () => {
  it('announces only the VIPs, each family to its own peers, with BFD and the timers', () => {
    const c = renderFrr({
      ...base,
      peers: [
        { address: '198.18.0.1', asn: 65000, password: 'pw' },
        { address: '2001:db8::1', asn: 65000, multihop: true },
      ],
      timers: { keepaliveSec: 3, holdSec: 9 },
      prefixes: ['198.18.0.100', '2001:DB8::0100'],
    });
    expect(c.bfdd).toEqual(['bfd', ' profile vipd', '  receive-interval 100', '  transmit-interval 100', '  detect-multiplier 3', ' exit', 'exit']);
    expect(c.bgpd).toContain('ip prefix-list VIPD-V4 seq 5 permit 198.18.0.100/32');
    expect(c.bgpd).toContain('ipv6 prefix-list VIPD-V6 seq 5 permit 2001:db8::100/128');
    expect(c.bgpd).toContain(' timers bgp 3 9');
    expect(c.bgpd).toContain(' neighbor 198.18.0.1 password pw');
    expect(c.bgpd).toContain(' neighbor 2001:db8::1 ebgp-multihop');
    expect(c.bgpd).toContain(' neighbor 198.18.0.1 bfd profile vipd');
    const v4 = c.bgpd.indexOf(' address-family ipv4 unicast');
    const v6 = c.bgpd.indexOf(' address-family ipv6 unicast');
    expect(c.bgpd.slice(v4, v6)).toContain('  neighbor 198.18.0.1 activate');
    expect(c.bgpd.slice(v4, v6)).not.toContain('  neighbor 2001:db8::1 activate');
    expect(c.bgpd.slice(v6)).toContain('  neighbor 2001:db8::1 route-map VIPD-ANNOUNCE out');
    expect(c.bgpd).toContain(' no bgp default ipv4-unicast');
    expect(c.text).toContain('router bgp 65001');
    // A fresh bgpd gets every neighbour shut until its families are active, then opened.
    const f = c.bgpdFresh;
    expect(f.indexOf(' neighbor 198.18.0.1 shutdown')).toBe(f.indexOf(' neighbor 198.18.0.1 remote-as 65000') + 1);
    expect(f.slice(-4)).toEqual(['router bgp 65001', ' no neighbor 198.18.0.1 shutdown', ' no neighbor 2001:db8::1 shutdown', 'exit']);
    expect(f.indexOf(' no neighbor 198.18.0.1 shutdown')).toBeGreaterThan(f.indexOf('  neighbor 198.18.0.1 activate'));
  });

  it('a family without VIPs gets a list that matches nothing; no BFD lines when BFD is off', () => {
    const c = renderFrr({ ...base, bfd: false, peers: [{ address: '198.18.0.1', asn: 65000 }], prefixes: ['198.18.0.100'] });
    expect(c.bgpd).toContain('ipv6 prefix-list VIPD-V6 seq 5 deny any');
    expect(c.bfdd).toEqual([]);
    expect(c.bgpd.some((l) => l.includes('bfd'))).toBe(false);
    expect(c.bgpd.some((l) => l.includes('address-family ipv6'))).toBe(false);
  });

  it('refuses a password FRR would split into words', () => {
    expect(() => renderFrr({ ...base, peers: [{ address: '198.18.0.1', asn: 65000, password: 'two words' }], prefixes: [] })).toThrow(/bgp_peerpass/);
  });

  it('host prefixes are canonical', () => {
    expect(hostPrefix('2001:0db8:0:0::0100')).toBe('2001:db8::100/128');
    expect(hostPrefix('198.18.0.100')).toBe('198.18.0.100/32');
  });
});
