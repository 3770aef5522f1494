import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { announceInterfaces, announcingNodes, interfacesByAddress, interfacesNeedLabels, candidatePools, nodeLimits, parseMetallb, selectorMatches, withoutBuggyIps, type IPAddressPoolLike, type L2AdvertisementLike, type LabelSelector } from '../../../src/services/logic/metallb.js';
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

describe('announcingNodes (L2Advertisement nodeSelectors)', () => {
  const nodes = new Map<string, Record<string, string>>([
    ['a1', { zone: 'a', role: 'edge' }],
    ['a2', { zone: 'a' }],
    ['b1', { zone: 'b', role: 'edge' }],
    ['c1', {}],
  ]);
  const ad = (name: string, spec: L2AdvertisementLike['spec']): L2AdvertisementLike => ({ metadata: { name }, spec });
  const gold = pool('gold', { addresses: ['198.18.30.0/29'] }, { tier: 'gold' });
  const eligible = (ads: L2AdvertisementLike[], p: IPAddressPoolLike = gold) => {
    const s = announcingNodes(parseMetallb([p], ads).pools[0]!, nodes);
    return s === undefined ? 'any' : [...s].sort();
  };

  it('a selecting advertisement with nodeSelectors: only matching nodes; several selectors or advertisements: the union', () => {
    expect(eligible([ad('za', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'a' } }] })])).toEqual(['a1', 'a2']);
    expect(eligible([ad('x', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'b' } }, { matchExpressions: [{ key: 'role', operator: 'DoesNotExist' }] }] })])).toEqual(['a2', 'b1', 'c1']);
    expect(eligible([
      ad('za', { ipAddressPoolSelectors: [{ matchLabels: { tier: 'gold' } }], nodeSelectors: [{ matchLabels: { zone: 'a', role: 'edge' } }] }),
      ad('zb', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'b' } }] }),
    ])).toEqual(['a1', 'b1']);
    expect(eligible([ad('none', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'z' } }] })])).toEqual([]);
  });

  it('an advertisement without nodeSelectors, or no advertisement at all: any node', () => {
    expect(eligible([ad('za', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'a' } }] }), ad('all', { ipAddressPools: ['gold'] })])).toBe('any');
    expect(eligible([])).toBe('any');
    // An advertisement for another pool neither limits nor widens this one.
    expect(eligible([ad('other', { ipAddressPools: ['silver'], nodeSelectors: [{ matchLabels: { zone: 'a' } }] })])).toBe('any');
    expect(eligible([ad('za', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'a' } }] }), ad('other', { ipAddressPools: ['silver'] })])).toEqual(['a1', 'a2']);
  });

  it('nodeLimits: each address of a limiting pool names its pool, advertisements and nodes; other addresses are absent', () => {
    const cfg = parseMetallb([gold, pool('open', { addresses: ['198.18.31.0/30'] })], [
      ad('zb', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'b' } }] }),
      ad('za', { ipAddressPools: ['gold'], nodeSelectors: [{ matchLabels: { zone: 'a', role: 'edge' } }] }),
      ad('open', { ipAddressPools: ['open'] }),
    ]);
    const limits = nodeLimits(cfg, ['198.18.30.1', '198.18.30.2', '198.18.31.1', '198.18.99.1'], nodes);
    expect([...limits.keys()]).toEqual(['198.18.30.1', '198.18.30.2']);
    expect(limits.get('198.18.30.1')).toEqual({ pool: 'gold', advertisements: ['za', 'zb'], nodes: new Set(['a1', 'b1']) });
  });

  // Small label and selector spaces, so that matches, misses and overlaps all happen.
  const labelsArb = fc.dictionary(fc.constantFrom('zone', 'role', 'rack'), fc.constantFrom('a', 'b'), { maxKeys: 3 });
  const selectorArb: fc.Arbitrary<LabelSelector> = fc.oneof(
    fc.record({ matchLabels: labelsArb }),
    fc.record({ matchExpressions: fc.array(fc.record({ key: fc.constantFrom('zone', 'role', 'rack'), operator: fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist'), values: fc.subarray(['a', 'b']) }), { maxLength: 2 }) }),
  );
  const adArb = (i: number) =>
    fc.record({ pools: fc.constantFrom<string[]>(['gold'], ['silver'], []), nodeSelectors: fc.array(selectorArb, { maxLength: 2 }) }).map((r) => ad(`ad${i}`, { ipAddressPools: r.pools, nodeSelectors: r.nodeSelectors }));
  const adsArb = fc.integer({ min: 0, max: 4 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => adArb(i))));
  const nodesArb = fc.array(labelsArb, { maxLength: 6 }).map((ls) => new Map<string, Record<string, string>>(ls.map((l, i) => [`n${i}`, l])));

  it('property: a node is eligible iff some selecting advertisement has a selector it matches; any node when one has none', () => {
    fc.assert(
      fc.property(adsArb, nodesArb, (ads, nodeMap) => {
        const p = parseMetallb([pool('gold', { addresses: ['198.18.30.0/29'] })], ads).pools[0]!;
        const got = announcingNodes(p, nodeMap);
        const selecting = ads.filter((a) => (a.spec?.ipAddressPools ?? []).length === 0 || a.spec!.ipAddressPools!.includes('gold'));
        if (selecting.length === 0 || selecting.some((a) => (a.spec?.nodeSelectors ?? []).length === 0)) {
          expect(got).toBeUndefined();
          return;
        }
        for (const [n, labels] of nodeMap) expect(got!.has(n)).toBe(selecting.some((a) => a.spec!.nodeSelectors!.some((s) => selectorMatches(s, labels))));
        for (const n of got!) expect(nodeMap.has(n)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('property: the union over advertisements, whatever their order; adding one never takes a node away', () => {
    fc.assert(
      fc.property(adsArb, adArb(9), nodesArb, (ads, extra, nodeMap) => {
        const of = (list: L2AdvertisementLike[]) => announcingNodes(parseMetallb([pool('gold', { addresses: ['198.18.30.0/29'] })], list).pools[0]!, nodeMap);
        const before = of(ads);
        expect(of([...ads].reverse())).toEqual(before);
        const after = of([...ads, extra]);
        if (after === undefined) return;
        // Undefined before with a set after: the pool was unadvertised (any node) and now has its first
        // advertisement, which may narrow it; MetalLB announced it nowhere before.
        if (before !== undefined) for (const n of before) expect(after.has(n)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('announceInterfaces (L2Advertisement interfaces)', () => {
  const ad = (name: string, spec: L2AdvertisementLike['spec']): L2AdvertisementLike => ({ metadata: { name }, spec });
  const gold = pool('gold', { addresses: ['198.18.30.0/29'] });
  const ifaces = (ads: L2AdvertisementLike[], labels?: Record<string, string>) => announceInterfaces(parseMetallb([gold], ads).pools[0]!, labels);

  it('the union over the advertisements that apply to the node, in name order; one without interfaces, or none at all: vipd\'s interface', () => {
    expect(ifaces([ad('b', { interfaces: ['eth2', 'eth1'] }), ad('a', { interfaces: ['eth1', 'bond0'] })])).toEqual(['eth1', 'bond0', 'eth2']);
    expect(ifaces([ad('a', { interfaces: ['eth1'] }), ad('all', {})])).toBeUndefined();
    expect(ifaces([])).toBeUndefined();
    expect(ifaces([ad('other', { ipAddressPools: ['silver'], interfaces: ['eth9'] })])).toBeUndefined();
  });

  it('an advertisement with nodeSelectors counts only for a node whose labels match (unknown labels: it does not)', () => {
    const ads = [ad('edge', { nodeSelectors: [{ matchLabels: { role: 'edge' } }], interfaces: ['eth1'] }), ad('core', { nodeSelectors: [{ matchLabels: { role: 'core' } }], interfaces: ['eth2'] })];
    expect(ifaces(ads, { role: 'edge' })).toEqual(['eth1']);
    expect(ifaces(ads, { role: 'core' })).toEqual(['eth2']);
    expect(ifaces(ads, {})).toBeUndefined();
    expect(ifaces(ads, undefined)).toBeUndefined();
    expect(interfacesNeedLabels(parseMetallb([gold], ads))).toBe(true);
    expect(interfacesNeedLabels(parseMetallb([gold], [ad('x', { interfaces: ['eth1'] })]))).toBe(false);
  });

  it('interfacesByAddress: only addresses of pools that name interfaces for this node', () => {
    const cfg = parseMetallb([gold, pool('open', { addresses: ['198.18.31.0/30'] })], [ad('g', { ipAddressPools: ['gold'], interfaces: ['eth1'] }), ad('o', { ipAddressPools: ['open'] })]);
    expect([...interfacesByAddress(cfg, ['198.18.30.1', '198.18.31.1', '198.18.99.1'], {})]).toEqual([['198.18.30.1', ['eth1']]]);
  });
});
