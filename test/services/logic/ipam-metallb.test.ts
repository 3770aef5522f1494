/**
 * Allocation from MetalLB IPAddressPools next to the kubevip ConfigMap's pools (ipam.ts poolsFor):
 * autoAssign, avoidBuggyIPs, priority, namespaces/selectors (pinned pools first), how the two
 * sources combine, metallb.io/address-pool, and metallb.io/allow-shared-ip sharing.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocate, type AllocationInput, type Outcome, type ServiceClaim } from '../../../src/services/logic/ipam.js';
import { parsePools } from '../../../src/services/logic/pools.js';
import { parseMetallb, type IPAddressPoolLike, type MetallbConfig } from '../../../src/services/logic/metallb.js';
import type { Family } from '../../../src/net/ip.js';
import { claimFrom, ips } from './claims.js';

const claim = claimFrom('annotation metallb.io/loadBalancerIPs');

const pool = (name: string, spec: IPAddressPoolLike['spec']): IPAddressPoolLike => ({ metadata: { name }, spec });
const ml = (...pools: IPAddressPoolLike[]): MetallbConfig => parseMetallb(pools, [{ metadata: { name: 'all' } }]);
const pending = (o: Outcome | undefined) => (o?.kind === 'pending' ? [o.reason, o.message] : undefined);

describe('allocate with MetalLB pools', () => {
  it('allocates from IPAddressPools alone (no kubevip ConfigMap)', () => {
    const out = allocate({ pools: undefined, metallb: ml(pool('a', { addresses: ['198.18.10.0/30'] })), claims: [claim('x/s1'), claim('x/s2')] });
    expect([ips(out.get('x/s1')), ips(out.get('x/s2'))]).toEqual([['198.18.10.0'], ['198.18.10.1']]);
  });

  it('no ConfigMap and no IPAddressPool: current addresses are kept, nothing new is given', () => {
    const out = allocate({ pools: undefined, metallb: ml(), claims: [claim('x/held', { current: ['198.18.10.1'] }), claim('x/new')] });
    expect(ips(out.get('x/held'))).toEqual(['198.18.10.1']);
    expect(pending(out.get('x/new'))?.[0]).toBe('no-pool-for-namespace');
  });

  it('autoAssign=false: only for a Service that names the pool or asks for an address in it', () => {
    const cfg = ml(pool('cheap', { addresses: ['198.18.10.0/31'] }), pool('expensive', { addresses: ['198.18.20.0/30'], autoAssign: false }));
    const out = allocate({
      pools: undefined,
      metallb: cfg,
      claims: [
        claim('x/a', { priority: '1' }),
        claim('x/b', { priority: '2' }),
        claim('x/c', { priority: '3' }),
        claim('x/named', { askedPool: 'expensive' }),
        claim('x/asks', { requested: ['198.18.20.3'] }),
      ],
    });
    expect(ips(out.get('x/a'))).toEqual(['198.18.10.0']);
    expect(ips(out.get('x/b'))).toEqual(['198.18.10.1']);
    expect(pending(out.get('x/c'))?.[0]).toBe('exhausted'); // never spills into the autoAssign=false pool
    expect(ips(out.get('x/named'))).toEqual(['198.18.20.0']);
    expect(ips(out.get('x/asks'))).toEqual(['198.18.20.3']);
  });

  it('metallb.io/address-pool: only that pool; unknown or not admitting → pending with the reason', () => {
    const cfg = ml(pool('a', { addresses: ['198.18.10.0/30'] }), pool('b', { addresses: ['198.18.11.0/30'] }), pool('team', { addresses: ['198.18.12.0/30'], serviceAllocation: { namespaces: ['team'] } }));
    const out = allocate({
      pools: parsePools({ 'cidr-x': '198.18.0.0/30' }),
      metallb: cfg,
      claims: [claim('x/b', { askedPool: 'b' }), claim('x/ghost', { askedPool: 'ghost' }), claim('x/team', { askedPool: 'team' }), claim('x/b-out', { askedPool: 'b', requested: ['198.18.10.1'] })],
    });
    // The namespace's own kubevip pool does not override a named IPAddressPool.
    expect(ips(out.get('x/b'))).toEqual(['198.18.11.0']);
    expect(pending(out.get('x/ghost'))).toEqual(['no-pool-for-namespace', 'annotation metallb.io/address-pool names IPAddressPool ghost, which vipd does not know']);
    expect(pending(out.get('x/team'))?.[1]).toMatch(/IPAddressPool team, whose serviceAllocation does not admit x\/team/);
    expect(pending(out.get('x/b-out'))?.[0]).toBe('requested-ip-out-of-pool');
  });

  it('avoidBuggyIPs: never .0 or .255', () => {
    const out = allocate({ pools: undefined, metallb: ml(pool('a', { addresses: ['198.18.10.255-198.18.11.1'], avoidBuggyIPs: true })), claims: [claim('x/s1'), claim('x/s2'), claim('x/asks0', { requested: ['198.18.11.0'] })] });
    expect(ips(out.get('x/s1'))).toEqual(['198.18.11.1']);
    expect(pending(out.get('x/s2'))?.[0]).toBe('exhausted');
    expect(pending(out.get('x/asks0'))?.[0]).toBe('requested-ip-out-of-pool');
  });

  it('priority: lowest number first, unset or 0 last, the next pool when one is full', () => {
    const cfg = ml(
      pool('zero', { addresses: ['198.18.30.0/32'], serviceAllocation: { priority: 0 } }),
      pool('second', { addresses: ['198.18.20.0/32'], serviceAllocation: { priority: 20 } }),
      pool('first', { addresses: ['198.18.10.0/32'], serviceAllocation: { priority: 10 } }),
      pool('unset', { addresses: ['198.18.40.0/32'] }),
    );
    const claims = ['1', '2', '3', '4', '5'].map((p) => claim(`x/s${p}`, { priority: p }));
    const out = allocate({ pools: undefined, metallb: cfg, claims });
    expect(claims.map((c) => ips(out.get(c.key))?.[0] ?? 'none')).toEqual(['198.18.10.0', '198.18.20.0', '198.18.40.0', '198.18.30.0', 'none']);
    expect(pending(out.get('x/s5'))?.[1]).toMatch(/^the pools for x\/s5 \(IPAddressPool first .*; IPAddressPool unset .*; IPAddressPool zero .*\) have no free IPv4 address$/);
  });

  it('namespaces, namespaceSelectors, serviceSelectors: a pinned pool admits only its Services and is tried before unpinned ones', () => {
    const cfg = ml(
      pool('shared', { addresses: ['198.18.10.0/30'], serviceAllocation: { priority: 1 } }),
      pool('team', { addresses: ['198.18.20.0/30'], serviceAllocation: { priority: 50, namespaces: ['team-a'], namespaceSelectors: [{ matchLabels: { team: 'b' } }] } }),
      pool('web', { addresses: ['198.18.30.0/30'], serviceAllocation: { priority: 50, serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] }] } }),
    );
    const out = allocate({
      pools: undefined,
      metallb: cfg,
      namespaceLabels: new Map([['team-b', { team: 'b' }]]),
      claims: [claim('team-a/s'), claim('team-b/s'), claim('other/web', { labels: { app: 'web' } }), claim('other/plain', { labels: { app: 'db' } }), claim('team-a/web', { labels: { app: 'web' } })],
    });
    expect(ips(out.get('team-a/s'))).toEqual(['198.18.20.0']);
    expect(ips(out.get('team-b/s'))).toEqual(['198.18.20.2']);
    expect(ips(out.get('other/web'))).toEqual(['198.18.30.0']);
    expect(ips(out.get('other/plain'))).toEqual(['198.18.10.0']);
    // Pinned by both pools at one priority: by name, team before web (and team-a/web comes before team-b/s by key).
    expect(ips(out.get('team-a/web'))).toEqual(['198.18.20.1']);
  });

  it('combines with the ConfigMap: a namespace kubevip pool wins; otherwise MetalLB pools, then the global pool', () => {
    const kv = parsePools({ 'cidr-team': '198.18.1.0/30', 'cidr-global': '198.18.2.0/30' });
    const cfg = ml(pool('m', { addresses: ['198.18.10.0/32'] }), pool('manual', { addresses: ['198.18.11.0/32'], autoAssign: false }));
    const out = allocate({ pools: kv, metallb: cfg, claims: [claim('team/s', { priority: '1' }), claim('x/s1', { priority: '2' }), claim('x/s2', { priority: '3' }), claim('team/asks', { requested: ['198.18.11.0'] })] });
    expect(ips(out.get('team/s'))).toEqual(['198.18.1.0']);
    expect(ips(out.get('x/s1'))).toEqual(['198.18.10.0']);
    expect(ips(out.get('x/s2'))).toEqual(['198.18.2.0']);
    // A namespace with its own kubevip pool does not reach even an autoAssign=false IPAddressPool by request.
    expect(pending(out.get('team/asks'))).toEqual(['requested-ip-out-of-pool', 'annotation metallb.io/loadBalancerIPs 198.18.11.0: 198.18.11.0 is not in cidr-team (198.18.1.0-198.18.1.3), the pool for namespace team']);
  });

  it('an IPAddressPool that goes away: its Services move to the next pool (MetalLB would keep a stale config)', () => {
    const both = ml(pool('a', { addresses: ['198.18.10.0/30'] }), pool('b', { addresses: ['198.18.20.0/30'] }));
    const first = allocate({ pools: undefined, metallb: both, claims: [claim('x/s')] });
    expect(ips(first.get('x/s'))).toEqual(['198.18.10.0']);
    const later = allocate({ pools: undefined, metallb: ml(pool('b', { addresses: ['198.18.20.0/30'] })), claims: [claim('x/s', { current: ['198.18.10.0'] })] });
    expect(ips(later.get('x/s'))).toEqual(['198.18.20.0']);
  });

  describe('metallb.io/allow-shared-ip', () => {
    const cfg = ml(pool('a', { addresses: ['198.18.10.0/30', '2001:db8::/126'] }));
    const run = (claims: ServiceClaim[]) => allocate({ pools: undefined, metallb: cfg, claims });

    it('same key, other ports, same externalTrafficPolicy: one address, across namespaces, IPv6 too', () => {
      const out = run([
        claim('x/http', { sharingKey: 'k', priority: '1', families: [4, 6], policy: 'PreferDualStack' }),
        claim('y/dns', { sharingKey: 'k', priority: '2', ports: [{ port: 53, protocol: 'UDP' }], families: [4, 6], policy: 'PreferDualStack' }),
      ]);
      expect(ips(out.get('x/http'))).toEqual(['198.18.10.0', '2001:db8::']);
      expect(ips(out.get('y/dns'))).toEqual(['198.18.10.0', '2001:db8::']);
    });

    it('a clashing port, another key, no key, or another externalTrafficPolicy: an address of its own', () => {
      const out = run([
        claim('x/owner', { sharingKey: 'k', priority: '1' }),
        claim('x/same-port', { sharingKey: 'k', priority: '2' }),
        claim('x/other-key', { sharingKey: 'j', priority: '3', ports: [{ port: 81, protocol: 'TCP' }] }),
        claim('x/local', { sharingKey: 'k', priority: '4', ports: [{ port: 82, protocol: 'TCP' }], externalTrafficPolicy: 'Local' }),
      ]);
      expect(ips(out.get('x/owner'))).toEqual(['198.18.10.0']);
      expect(ips(out.get('x/same-port'))).toEqual(['198.18.10.1']);
      expect(ips(out.get('x/other-key'))).toEqual(['198.18.10.2']);
      expect(ips(out.get('x/local'))).toEqual(['198.18.10.3']);
    });

    it('asking for a partner\'s address works with the key and waits without it', () => {
      const out = run([
        claim('x/owner', { sharingKey: 'k', priority: '1', current: ['198.18.10.2'] }),
        claim('y/partner', { sharingKey: 'k', priority: '2', requested: ['198.18.10.2'], ports: [{ port: 443, protocol: 'TCP' }] }),
        claim('y/stranger', { priority: '3', requested: ['198.18.10.2'], ports: [{ port: 444, protocol: 'TCP' }] }),
      ]);
      expect(ips(out.get('y/partner'))).toEqual(['198.18.10.2']);
      expect(pending(out.get('y/stranger'))?.[0]).toBe('requested-ip-in-use');
    });
  });
});

const pinnedSpecs: Array<IPAddressPoolLike['spec']> = [
  { addresses: ['198.18.10.0/31'] },
  { addresses: ['198.18.11.0/31', '2001:db8:11::/127'], serviceAllocation: { priority: 5 } },
  { addresses: ['198.18.12.0/32'], autoAssign: false },
  { addresses: ['198.18.13.255-198.18.14.0', '198.18.14.1/32'], avoidBuggyIPs: true, serviceAllocation: { namespaces: ['a'] } },
  { addresses: ['198.18.15.0/31'], serviceAllocation: { serviceSelectors: [{ matchLabels: { app: 'web' } }], priority: 9 } },
];
const UNIVERSE = ['198.18.10.0', '198.18.10.1', '198.18.11.1', '198.18.12.0', '198.18.14.1', '198.18.15.0', '198.18.0.1', '2001:db8:11::1'];

const inputArb = fc
  .record({
    pools: fc.subarray([0, 1, 2, 3, 4]),
    kv: fc.constantFrom<Record<string, string> | undefined>(undefined, { 'cidr-global': '198.18.0.0/31' }, { 'cidr-b': '198.18.0.0/31', 'allow-share-b': 'true' }),
    claims: fc.array(
      fc.record({
        ns: fc.constantFrom('a', 'b'),
        priority: fc.constantFrom('1', '2', '3'),
        dual: fc.boolean(),
        web: fc.boolean(),
        asked: fc.constantFrom<string | undefined>(undefined, undefined, 'p2', 'p4'),
        key: fc.constantFrom<string | undefined>(undefined, 'k', 'j'),
        requested: fc.oneof({ weight: 3, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: fc.subarray(UNIVERSE, { maxLength: 1 }) }),
        port: fc.constantFrom(80, 53),
        etp: fc.constantFrom<'Cluster' | 'Local'>('Cluster', 'Local'),
        current: fc.oneof({ weight: 2, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: fc.subarray(UNIVERSE, { maxLength: 2 }) }),
      }),
      { maxLength: 8 },
    ),
  })
  .map((r): AllocationInput => ({
    pools: r.kv && parsePools(r.kv),
    metallb: parseMetallb(r.pools.map((i) => pool(`p${i}`, pinnedSpecs[i])), []),
    claims: r.claims.map((c, i): ServiceClaim => ({
      key: `${c.ns}/s${i}`,
      namespace: c.ns,
      priority: c.priority,
      families: (c.dual ? [4, 6] : [4]) as Family[],
      policy: c.dual ? 'PreferDualStack' : 'SingleStack',
      requested: c.requested,
      ports: [{ port: c.port, protocol: 'TCP' }],
      externalTrafficPolicy: c.etp,
      current: c.current,
      labels: (c.web ? { app: 'web' } : {}) as Record<string, string>,
      ...(c.asked !== undefined ? { askedPool: c.asked } : {}),
      ...(c.key !== undefined ? { sharingKey: c.key } : {}),
    })),
  }));

describe('allocate with MetalLB pools: properties', () => {
  it('idempotent on its own output and independent of input order; sharing only as allowed', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const out = allocate(input);
        const strip = (m: Map<string, Outcome>) => new Map([...m].map(([k, o]) => [k, o.kind === 'assigned' ? o.ips : o.reason]));
        const fed = { ...input, claims: input.claims.map((c) => ({ ...c, current: ips(out.get(c.key)) ?? [] })) };
        expect(strip(allocate(fed))).toEqual(strip(out));
        expect(allocate({ ...input, claims: [...input.claims].reverse() })).toEqual(out);
        const holders = new Map<string, ServiceClaim[]>();
        for (const c of input.claims) for (const ip of ips(out.get(c.key)) ?? []) holders.set(ip, [...(holders.get(ip) ?? []), c]);
        for (const [ip, cs] of holders) {
          if (cs.length < 2) continue;
          const byKey = cs.every((c) => c.sharingKey !== undefined && c.sharingKey === cs[0]!.sharingKey);
          const byNamespace = cs.every((c) => c.namespace === 'b') && input.pools?.allowShare.get('b') === true;
          expect(byKey || byNamespace, ip).toBe(true);
          expect(new Set(cs.map((c) => c.externalTrafficPolicy)).size, ip).toBe(1);
          expect(new Set(cs.map((c) => c.ports[0]!.port)).size, ip).toBe(cs.length);
        }
        // Never from an autoAssign=false pool unless named or asked for; never a .0/.255 of an avoidBuggyIPs pool.
        // (Without any pool configuration current addresses are kept as they are.)
        const configured = input.pools !== undefined || (input.metallb?.pools.length ?? 0) > 0;
        for (const c of configured ? input.claims : []) {
          for (const ip of ips(out.get(c.key)) ?? []) {
            if (ip === '198.18.12.0') expect(c.askedPool === 'p2' || c.requested.includes(ip), c.key).toBe(true);
            expect(['198.18.13.255', '198.18.14.0']).not.toContain(ip);
            if (c.askedPool !== undefined) expect(ip.startsWith(c.askedPool === 'p2' ? '198.18.12.' : '198.18.15.'), `${c.key} ${ip}`).toBe(true);
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
});
