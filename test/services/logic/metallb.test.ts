import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { candidatePools, parseMetallb, selectorMatches, withoutBuggyIps, type IPAddressPoolLike } from '../../../src/services/logic/metallb.js';
import { formatRange, parseAddr, rangeContains } from '../../../src/services/logic/addr.js';

const pool = (name: string, spec: IPAddressPoolLike['spec'], labels?: Record<string, string>): IPAddressPoolLike => ({ metadata: { name, ...(labels ? { labels } : {}) }, spec });
const facts = (namespace: string, namespaceLabels: Record<string, string> = {}, serviceLabels: Record<string, string> = {}) => ({ namespace, namespaceLabels, serviceLabels });

describe('parseMetallb', () => {
  it('reads CIDRs and ranges of both families', () => {
    const cfg = parseMetallb([pool('a', { addresses: ['198.18.10.0/30', '198.18.20.5-198.18.20.6', '2001:db8::10-2001:db8::11'] })], [{ metadata: { name: 'l2' } }]);
    expect(cfg.problems).toEqual([]);
    expect(cfg.pools[0]?.key).toBe('metallb:a');
    expect(cfg.pools[0]?.ranges.map(formatRange)).toEqual(['198.18.10.0-198.18.10.3', '198.18.20.5-198.18.20.6', '2001:db8::10-2001:db8::11']);
    expect(cfg.pools[0]?.autoAssign).toBe(true);
  });
  it('names the object and entry of a bad address and keeps the rest', () => {
    const cfg = parseMetallb([pool('a', { addresses: ['nope', '198.18.1.1-198.18.1.2'] })], [{}]);
    expect(cfg.pools[0]?.ranges.length).toBe(1);
    expect(cfg.problems).toHaveLength(1);
    expect(cfg.problems[0]).toMatchObject({ key: 'IPAddressPool a', entry: 'nope', severity: 'error' });
  });
  it('warns about a pool no L2Advertisement selects, and about names that match no pool', () => {
    const cfg = parseMetallb([pool('a', { addresses: ['198.18.1.0/24'] }), pool('b', { addresses: ['198.18.2.0/24'] }, { tier: 'x' })], [
      { metadata: { name: 'only-b' }, spec: { ipAddressPoolSelectors: [{ matchLabels: { tier: 'x' } }], interfaces: ['eth1'] } },
      { metadata: { name: 'ghost' }, spec: { ipAddressPools: ['missing'] } },
    ]);
    expect(cfg.pools.find((p) => p.name === 'a')?.announcements).toEqual([]);
    expect(cfg.pools.find((p) => p.name === 'b')?.announcements).toEqual([{ advertisement: 'only-b', nodeSelectors: [], interfaces: ['eth1'] }]);
    expect(cfg.problems.map((p) => p.key)).toEqual(['IPAddressPool a', 'L2Advertisement ghost']);
  });
  it('orders by priority (unset last), then name', () => {
    const cfg = parseMetallb([
      pool('z', { addresses: ['198.18.3.0/24'] }),
      pool('b', { addresses: ['198.18.2.0/24'], serviceAllocation: { priority: 20 } }),
      pool('a', { addresses: ['198.18.1.0/24'], serviceAllocation: { priority: 10 } }),
      pool('c', { addresses: ['198.18.4.0/24'] }),
    ], [{}]);
    expect(cfg.pools.map((p) => p.name)).toEqual(['a', 'b', 'c', 'z']);
  });
  it('serviceAllocation and autoAssign decide the candidate pools; address-pool names one', () => {
    const cfg = parseMetallb([
      pool('team', { addresses: ['198.18.1.0/24'], serviceAllocation: { namespaces: ['team-a'], namespaceSelectors: [{ matchLabels: { team: 'b' } }] } }),
      pool('web', { addresses: ['198.18.2.0/24'], serviceAllocation: { serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] }] } }),
      pool('manual', { addresses: ['198.18.3.0/24'], autoAssign: false }),
    ], [{}]);
    const names = (f: ReturnType<typeof facts>, asked?: string) => candidatePools(cfg, f, asked).map((p) => p.name);
    expect(names(facts('team-a'))).toEqual(['team']);
    expect(names(facts('other', { team: 'b' }))).toEqual(['team']);
    expect(names(facts('other', {}, { app: 'web' }))).toEqual(['web']);
    expect(names(facts('other'))).toEqual([]);
    expect(names(facts('other'), 'manual')).toEqual(['manual']);
    expect(names(facts('other'), 'team')).toEqual([]);
  });
});

describe('selectorMatches', () => {
  it('follows the label selector operators', () => {
    const l = { a: '1', b: '2' };
    expect(selectorMatches({}, l)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: '1' } }, l)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: '2' } }, l)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['1'] }] }, l)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Exists' }, { key: 'c', operator: 'DoesNotExist' }] }, l)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, l)).toBe(false);
  });
});

describe('withoutBuggyIps', () => {
  it('never keeps a .0 or .255 address and keeps every other one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 2000 }), (start, len) => {
        const base = parseAddr('198.18.0.0')!.value;
        const r = { family: 4 as const, first: base + BigInt(start), last: base + BigInt(start + len) };
        const out = withoutBuggyIps([r]);
        for (let v = r.first; v <= r.last; v++) {
          const kept = out.some((o) => rangeContains(o, { family: 4, value: v }));
          const octet = Number(v & 0xffn);
          expect(kept).toBe(octet !== 0 && octet !== 255);
        }
      }),
      { numRuns: 50 },
    );
  });
  it('leaves IPv6 alone', () => {
    const r = { family: 6 as const, first: parseAddr('2001:db8::')!.value, last: parseAddr('2001:db8::ff')!.value };
    expect(withoutBuggyIps([r])).toEqual([r]);
  });
});
