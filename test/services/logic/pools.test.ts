import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allowShareFor, describePool, formatProblem, parsePools, poolFor, poolRanges } from '../../../src/services/logic/pools.js';
import { canonicalAddr, formatRange, parseAddr, rangeSize } from '../../../src/services/logic/addr.js';

const ranges = (data: Record<string, string>, ns: string) => {
  const p = poolFor(parsePools(data), ns);
  return p ? p.ranges.map(formatRange) : undefined;
};

describe('addr', () => {
  it('canonicalises both families and rejects odd spellings', () => {
    expect(canonicalAddr('2001:DB8:0:0:0::1')).toBe('2001:db8::1');
    expect(canonicalAddr(' 198.18.0.1 ')).toBe('198.18.0.1');
    for (const bad of ['010.1.1.1', '1.2.3', '2001:db8::1%eth0', '::ffff:198.18.0.1', 'x', '']) expect(canonicalAddr(bad)).toBeUndefined();
  });
  it('round-trips any address through bigint', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const c = canonicalAddr(ip);
        if (c === undefined) return; // mapped v6 or similar forms we refuse
        expect(canonicalAddr(c)).toBe(c);
        expect(parseAddr(c)?.value).toBe(parseAddr(ip)?.value);
      }),
    );
  });
});

describe('parsePools', () => {
  it('reads cidr and range lists with mixed families', () => {
    const cfg = parsePools({ 'cidr-global': '198.18.10.0/30, 2001:db8:10::/126', 'range-team-a': '198.18.20.10-198.18.20.12,2001:db8:20::1-2001:db8:20::2' });
    expect(cfg.problems).toEqual([]);
    expect(ranges({ 'cidr-global': '198.18.10.0/30,2001:db8:10::/126' }, 'x')).toEqual(['198.18.10.0-198.18.10.3', '2001:db8:10::-2001:db8:10::3']);
    const a = poolFor(cfg, 'team-a');
    expect(a?.key).toBe('range-team-a');
    expect(a && poolRanges(a, 6).map(formatRange)).toEqual(['2001:db8:20::1-2001:db8:20::2']);
    expect(poolFor(cfg, 'other')?.key).toBe('cidr-global');
  });

  it('namespace beats global, cidr beats range within a scope', () => {
    const data = { 'cidr-global': '198.18.1.0/24', 'range-global': '198.18.2.1-198.18.2.9', 'range-a': '198.18.3.1-198.18.3.2', 'cidr-b': '198.18.4.0/24', 'range-b': '198.18.5.1-198.18.5.2' };
    const cfg = parsePools(data);
    expect(poolFor(cfg, 'a')?.key).toBe('range-a'); // kube-vip-cloud-provider would take cidr-global here
    expect(poolFor(cfg, 'b')?.key).toBe('cidr-b');
    expect(poolFor(cfg, 'c')?.key).toBe('cidr-global');
    expect(poolFor(parsePools({ 'range-global': '198.18.2.1-198.18.2.9' }), 'c')?.key).toBe('range-global');
    expect(cfg.problems.map((p) => p.key).sort()).toEqual(['range-b', 'range-global']);
    expect(poolFor(parsePools({ 'cidr-a': '198.18.3.0/24' }), 'b')).toBeUndefined();
    expect(poolFor(parsePools(undefined), 'b')).toBeUndefined();
  });

  it('reports bad entries by key and keeps the rest', () => {
    const cfg = parsePools({
      'cidr-global': '198.18.10.0/24,198.18.0.0/33,bogus,0.0.0.0/32',
      'range-a': '198.18.20.9-198.18.20.1,198.18.20.1-2001:db8::1,198.18.21.1-198.18.21.3,1-2-3',
      'allow-share-a': 'yes',
      'search-order': 'up',
      'skip-end-ips-in-cidr': 'maybe',
      'interface-global': 'eth1',
      'frobnicate': '1',
      'cidr-Bad_NS': '198.18.0.0/24',
    });
    const msgs = cfg.problems.map(formatProblem);
    expect(poolFor(cfg, 'x')?.ranges.map(formatRange)).toEqual(['198.18.10.0-198.18.10.255']);
    expect(poolFor(cfg, 'a')?.ranges.map(formatRange)).toEqual(['198.18.21.1-198.18.21.3']);
    const find = (s: string) => msgs.find((m) => m.includes(s));
    expect(find('198.18.0.0/33')).toMatch(/cidr-global.*prefix length must be 0 to 32.*comma list of CIDRs/);
    expect(find('"bogus"')).toMatch(/cidr-global.*not a CIDR/);
    expect(find('0.0.0.0/32')).toMatch(/DHCP/);
    expect(find('starts after it ends')).toMatch(/range-a/);
    expect(find('mixes IPv4 and IPv6')).toMatch(/range-a/);
    expect(find('"1-2-3"') ?? find('"1"')).toBeDefined();
    expect(find('allow-share-a')).toMatch(/not true or false/);
    expect(find('search-order')).toMatch(/asc \(default\) or desc/);
    expect(find('skip-end-ips-in-cidr')).toMatch(/not true or false/);
    expect(find('interface-global')).toMatch(/not supported/);
    expect(find('frobnicate')).toMatch(/unknown key/);
    expect(find('Bad_NS')).toMatch(/not a valid namespace/);
    expect(cfg.searchOrder).toBe('asc');
    expect(cfg.allowShare.has('a')).toBe(false);
  });

  it('a present key with no valid entry still claims its namespace (no fall-through to global)', () => {
    const cfg = parsePools({ 'cidr-a': 'nonsense', 'cidr-global': '198.18.0.0/24' });
    const p = poolFor(cfg, 'a');
    expect(p?.key).toBe('cidr-a');
    expect(p?.ranges).toEqual([]);
    expect(p && describePool(p)).toMatch(/no valid entries/);
    expect(parsePools({ 'cidr-a': ' ' }).problems[0]?.message).toMatch(/is empty/);
  });

  it('masks host bits with a warning, merges overlaps', () => {
    const cfg = parsePools({ 'cidr-global': '198.18.0.201/29,198.18.0.196/30' });
    expect(cfg.problems.map((p) => p.severity)).toEqual(['warning']);
    expect(poolFor(cfg, 'x')?.ranges.map(formatRange)).toEqual(['198.18.0.196-198.18.0.207']);
  });

  it('skip-end-ips-in-cidr drops IPv4 network and broadcast except /31 /32; never IPv6', () => {
    const d = { 'skip-end-ips-in-cidr': 'true', 'cidr-global': '198.18.0.0/30,198.18.1.0/31,198.18.2.7/32,2001:db8::/126' };
    expect(ranges(d, 'x')).toEqual(['198.18.0.1-198.18.0.2', '198.18.1.0-198.18.1.1', '198.18.2.7', '2001:db8::-2001:db8::3']);
  });

  it('allow-share and search-order', () => {
    const cfg = parsePools({ 'allow-share-global': 'true', 'allow-share-b': 'False', 'search-order': 'desc' });
    expect(allowShareFor(cfg, 'a')).toBe(true);
    expect(allowShareFor(cfg, 'b')).toBe(false);
    expect(allowShareFor(parsePools({}), 'a')).toBe(false);
    expect(cfg.searchOrder).toBe('desc');
  });

  it('huge IPv6 pools stay two numbers', () => {
    const p = poolFor(parsePools({ 'cidr-global': '2001:db8::/32' }), 'x');
    expect(p?.ranges.length).toBe(1);
    expect(p && rangeSize(p.ranges[0]!)).toBe(1n << 96n);
  });

  it('never throws on arbitrary data', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.string()), (data) => {
        parsePools(data);
      }),
    );
  });
});
