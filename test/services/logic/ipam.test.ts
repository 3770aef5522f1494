import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocate, type AllocationInput, type IpFamilyPolicy, type Outcome, type ServiceClaim } from '../../../src/services/logic/ipam.js';
import { allowShareFor, parsePools, poolContains, poolFor, type PoolConfig } from '../../../src/services/logic/pools.js';
import { canonicalAddr, parseAddr } from '../../../src/services/logic/addr.js';
import type { Family } from '../../../src/net/ip.js';
import { claimFrom, ips } from './claims.js';

const claim = claimFrom('annotation kube-vip.io/loadbalancerIPs');

const pending = (o: Outcome | undefined) => (o?.kind === 'pending' ? o.reason : undefined);

describe('allocate: examples', () => {
  const pools = parsePools({ 'cidr-global': '198.18.0.0/30,2001:db8::/126', 'range-team-a': '198.18.1.10-198.18.1.11' });

  it('hands out lowest free per namespace pool, keeps current, reuses released', () => {
    const out = allocate({ pools, claims: [claim('x/s1'), claim('x/s2'), claim('team-a/s3')] });
    expect(ips(out.get('x/s1'))).toEqual(['198.18.0.0']);
    expect(ips(out.get('x/s2'))).toEqual(['198.18.0.1']);
    expect(ips(out.get('team-a/s3'))).toEqual(['198.18.1.10']);
    // s1 deleted, s2 keeps its address, a new Service reuses s1's.
    const out2 = allocate({ pools, claims: [claim('x/s2', { current: ['198.18.0.1'] }), claim('x/s4', { priority: '2020-01-01T00:00:00Z' })] });
    expect(ips(out2.get('x/s2'))).toEqual(['198.18.0.1']);
    expect(ips(out2.get('x/s4'))).toEqual(['198.18.0.0']);
  });

  it('search-order=desc hands out from the top', () => {
    const p = parsePools({ 'cidr-global': '198.18.0.0/30', 'search-order': 'desc' });
    const out = allocate({ pools: p, claims: [claim('x/a'), claim('x/b')] });
    expect([ips(out.get('x/a')), ips(out.get('x/b'))]).toEqual([['198.18.0.3'], ['198.18.0.2']]);
  });

  it('requests are honoured exactly inside the pool; out of pool or taken → pending, never a substitute', () => {
    const out = allocate({
      pools,
      claims: [
        claim('x/holder', { current: ['198.18.0.2'] }),
        claim('x/asks', { requested: ['198.18.0.3'] }),
        claim('x/outside', { requested: ['198.18.9.9'] }),
        claim('x/taken', { requested: ['198.18.0.2'] }),
        claim('team-a/other-ns-pool', { requested: ['198.18.0.1'] }),
        claim('x/garbage', { requested: ['lb.example.com'] }),
        claim('x/dhcp', { requested: ['0.0.0.0'] }),
      ],
    });
    expect(ips(out.get('x/asks'))).toEqual(['198.18.0.3']);
    expect(ips(out.get('x/holder'))).toEqual(['198.18.0.2']);
    const o = out.get('x/outside');
    expect(pending(o)).toBe('requested-ip-out-of-pool');
    expect(o?.kind === 'pending' && o.message).toMatch(/198\.18\.9\.9.*cidr-global/);
    const t = out.get('x/taken');
    expect(pending(t)).toBe('requested-ip-in-use');
    expect(t?.kind === 'pending' && t.message).toMatch(/used by x\/holder/);
    expect(pending(out.get('team-a/other-ns-pool'))).toBe('requested-ip-out-of-pool');
    expect(pending(out.get('x/garbage'))).toBe('invalid-request');
    expect(pending(out.get('x/dhcp'))).toBe('invalid-request');
  });

  it('two fresh requests for one address: the earlier Service wins', () => {
    const out = allocate({
      pools,
      claims: [claim('x/late', { requested: ['198.18.0.1'], priority: '2026-02-01T00:00:00Z' }), claim('x/early', { requested: ['198.18.0.1'], priority: '2026-01-01T00:00:00Z' })],
    });
    expect(ips(out.get('x/early'))).toEqual(['198.18.0.1']);
    expect(pending(out.get('x/late'))).toBe('requested-ip-in-use');
  });

  it('a requested address is never handed out automatically, even while its asker waits', () => {
    const out = allocate({
      pools,
      claims: [claim('x/asker', { requested: ['198.18.0.0', '2001:db8::9'], families: [4, 6], policy: 'PreferDualStack' }), claim('x/auto')],
    });
    expect(pending(out.get('x/asker'))).toBe('requested-ip-out-of-pool');
    expect(ips(out.get('x/auto'))).toEqual(['198.18.0.1']);
  });

  it('changing the request moves the Service to the new address', () => {
    const out = allocate({ pools, claims: [claim('x/s', { current: ['198.18.0.0'], requested: ['198.18.0.3'] })] });
    expect(ips(out.get('x/s'))).toEqual(['198.18.0.3']);
  });

  it('dual-stack: Require needs both, Prefer takes what there is, Single follows ipFamilies[0]', () => {
    const v4only = parsePools({ 'cidr-global': '198.18.0.0/30' });
    const out = allocate({
      pools: v4only,
      claims: [
        claim('x/req', { families: [4, 6], policy: 'RequireDualStack' }),
        claim('x/pref', { families: [6, 4], policy: 'PreferDualStack' }),
        claim('x/v6', { families: [6] }),
      ],
    });
    expect(pending(out.get('x/req'))).toBe('family-unavailable');
    const pref = out.get('x/pref');
    expect(ips(pref)).toEqual(['198.18.0.0']);
    expect(pref?.kind === 'assigned' && pref.missing.map((m) => m.reason)).toEqual(['family-unavailable']);
    expect(pending(out.get('x/v6'))).toBe('family-unavailable');
    const both = allocate({ pools, claims: [claim('x/req', { families: [6, 4], policy: 'RequireDualStack' })] });
    expect(ips(both.get('x/req'))).toEqual(['2001:db8::', '198.18.0.0']);
  });

  it('RequireDualStack gives back the half it got when the other family is exhausted', () => {
    const p = parsePools({ 'cidr-global': '198.18.0.0/31,2001:db8::/128' });
    const out = allocate({
      pools: p,
      claims: [claim('x/v6', { families: [6], priority: '1' }), claim('x/req', { families: [4, 6], policy: 'RequireDualStack', priority: '2' }), claim('x/v4', { priority: '3' })],
    });
    expect(pending(out.get('x/req'))).toBe('exhausted');
    expect(ips(out.get('x/v4'))).toEqual(['198.18.0.0']);
  });

  it('exhaustion is reported per Service', () => {
    const p = parsePools({ 'range-global': '198.18.0.1-198.18.0.2' });
    const out = allocate({ pools: p, claims: ['a', 'b', 'c', 'd'].map((n) => claim(`x/${n}`)) });
    expect([...out.values()].map((o) => o.kind)).toEqual(['assigned', 'assigned', 'pending', 'pending']);
    const d = out.get('x/d');
    expect(d?.kind === 'pending' && d.message).toMatch(/range-global.*no free IPv4/);
  });

  it('no pool for the namespace, and a present but broken namespace key does not fall back to global', () => {
    const p = parsePools({ 'cidr-a': 'bad' });
    expect(pending(allocate({ pools: p, claims: [claim('b/s')] }).get('b/s'))).toBe('no-pool-for-namespace');
    const q = parsePools({ 'cidr-a': 'bad', 'cidr-global': '198.18.0.0/24' });
    expect(pending(allocate({ pools: q, claims: [claim('a/s')] }).get('a/s'))).toBe('no-pool-for-namespace');
  });

  it('ConfigMap missing: current addresses stay, new Services wait', () => {
    const out = allocate({ pools: undefined, claims: [claim('x/old', { current: ['198.18.7.7'] }), claim('x/new'), claim('x/asks', { requested: ['198.18.7.8'] })] });
    expect(ips(out.get('x/old'))).toEqual(['198.18.7.7']);
    expect(pending(out.get('x/new'))).toBe('no-pool-for-namespace');
    expect(pending(out.get('x/asks'))).toBe('no-pool-for-namespace');
  });

  it('a pool shrink moves Services whose address left the pool', () => {
    const out = allocate({ pools, claims: [claim('team-a/s', { current: ['198.18.0.3'] })] });
    expect(ips(out.get('team-a/s'))).toEqual(['198.18.1.10']);
  });

  it('allow-share: same namespace, disjoint ports, same traffic policy', () => {
    const p = parsePools({ 'cidr-global': '198.18.0.0/30', 'allow-share-x': 'true' });
    const out = allocate({
      pools: p,
      claims: [
        claim('x/web', { priority: '1', ports: [{ port: 80, protocol: 'TCP' }] }),
        claim('x/dns-udp', { priority: '2', ports: [{ port: 53, protocol: 'UDP' }] }),
        claim('x/dns-tcp', { priority: '3', ports: [{ port: 53, protocol: 'TCP' }] }),
        claim('x/web2', { priority: '4', ports: [{ port: 80, protocol: 'TCP' }] }),
        claim('x/local', { priority: '5', externalTrafficPolicy: 'Local', ports: [{ port: 81, protocol: 'TCP' }] }),
        claim('x/noports', { priority: '6', ports: [] }),
        claim('y/other', { priority: '7', ports: [{ port: 9, protocol: 'TCP' }] }),
      ],
    });
    expect(ips(out.get('x/web'))).toEqual(['198.18.0.0']);
    expect(ips(out.get('x/dns-udp'))).toEqual(['198.18.0.0']);
    expect(ips(out.get('x/dns-tcp'))).toEqual(['198.18.0.0']);
    expect(ips(out.get('x/web2'))).toEqual(['198.18.0.1']);
    expect(ips(out.get('x/local'))).toEqual(['198.18.0.2']);
    expect(ips(out.get('x/noports'))).toEqual(['198.18.0.3']);
    expect(pending(out.get('y/other'))).toBe('exhausted');
    // Without allow-share, a request for a shared address is refused with the reason.
    const q = parsePools({ 'cidr-global': '198.18.0.0/30' });
    const r = allocate({ pools: q, claims: [claim('x/a', { current: ['198.18.0.0'] }), claim('x/b', { requested: ['198.18.0.0'], ports: [{ port: 1, protocol: 'TCP' }] })] });
    const b = r.get('x/b');
    expect(b?.kind === 'pending' && b.message).toMatch(/allow-share is off/);
  });

  it('control-plane VIP: only when asked for by name; reserved addresses are never handed out', () => {
    const p = parsePools({ 'cidr-global': '198.18.0.0/30' });
    const out = allocate({
      pools: p,
      controlPlaneVips: ['198.18.0.0', '198.18.50.1'],
      reserved: ['198.18.0.1'],
      claims: [claim('x/auto'), claim('x/cp', { requested: ['198.18.50.1'] }), claim('x/res', { requested: ['198.18.0.1'] })],
    });
    expect(ips(out.get('x/auto'))).toEqual(['198.18.0.2']);
    expect(ips(out.get('x/cp'))).toEqual(['198.18.50.1']);
    expect(pending(out.get('x/res'))).toBe('requested-ip-in-use');
  });

  it('duplicate current holders (two allocators overlapped): the earlier Service keeps it, the other moves', () => {
    const out = allocate({ pools, claims: [claim('x/b', { priority: '2', current: ['198.18.0.0'] }), claim('x/a', { priority: '1', current: ['198.18.0.0'] })] });
    expect(ips(out.get('x/a'))).toEqual(['198.18.0.0']);
    expect(ips(out.get('x/b'))).toEqual(['198.18.0.1']);
  });

  it('a /32 of IPv6 is not enumerated', () => {
    const p = parsePools({ 'cidr-global': '2001:db8::/32' });
    const claims = Array.from({ length: 50 }, (_, i) => claim(`x/s${i}`, { families: [6], priority: String(i).padStart(3, '0') }));
    const out = allocate({ pools: p, claims });
    expect(ips(out.get('x/s049'.replace('049', '49')))).toEqual(['2001:db8::31']);
  });
});

// ---- properties ----

const UNIVERSE = ['198.18.0.0', '198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.1.1', '198.18.1.2', '198.18.9.9', '2001:db8::', '2001:db8::1', '2001:db8:1::1', '198.18.50.1'];
const CP = ['198.18.50.1'];
const NAMESPACES = ['a', 'b', 'c'];

const poolsArb: fc.Arbitrary<PoolConfig> = fc
  .record({
    global: fc.constantFrom('198.18.0.0/31,2001:db8::/127', '198.18.0.0/30', '2001:db8::/126', ''),
    a: fc.constantFrom(undefined, 'range:198.18.1.1-198.18.1.2', 'cidr:198.18.0.2/31,2001:db8:1::/127'),
    shareA: fc.boolean(),
    shareGlobal: fc.boolean(),
    desc: fc.boolean(),
  })
  .map((r) => {
    const d: Record<string, string> = {};
    if (r.global) d['cidr-global'] = r.global;
    if (r.a) {
      const [kind, v] = r.a.split(':', 2) as [string, string];
      d[`${kind}-a`] = v;
    }
    if (r.shareA) d['allow-share-a'] = 'true';
    if (r.shareGlobal) d['allow-share-global'] = 'true';
    if (r.desc) d['search-order'] = 'desc';
    return parsePools(d);
  });

const familiesArb = fc.constantFrom<Family[]>([], [4], [6], [4, 6], [6, 4]);
const policyArb = fc.constantFrom<IpFamilyPolicy>('SingleStack', 'PreferDualStack', 'RequireDualStack');
const portsArb = fc.subarray([
  { port: 80, protocol: 'TCP' },
  { port: 53, protocol: 'UDP' },
  { port: 53, protocol: 'TCP' },
]);

const claimsArb = fc
  .array(
    fc.record({
      ns: fc.constantFrom(...NAMESPACES),
      priority: fc.constantFrom('1', '2', '3'),
      families: familiesArb,
      policy: policyArb,
      requested: fc.oneof({ weight: 3, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: fc.subarray(UNIVERSE, { maxLength: 2 }) }),
      ports: portsArb,
      etp: fc.constantFrom<'Cluster' | 'Local'>('Cluster', 'Local'),
      current: fc.oneof({ weight: 2, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: fc.subarray(UNIVERSE, { maxLength: 2 }) }),
    }),
    { maxLength: 9 },
  )
  .map((rs) =>
    rs.map(
      (r, i): ServiceClaim => ({
        key: `${r.ns}/s${i}`,
        namespace: r.ns,
        priority: r.priority,
        families: r.families,
        policy: r.policy,
        requested: r.requested,
        ports: r.ports,
        externalTrafficPolicy: r.etp,
        current: r.current,
      }),
    ),
  );

const inputArb = fc.record({ pools: poolsArb, claims: claimsArb }).map((r): AllocationInput => ({ ...r, controlPlaneVips: CP }));

function holdersByIp(out: Map<string, Outcome>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [k, o] of out) if (o.kind === 'assigned') for (const ip of o.ips) m.set(ip, [...(m.get(ip) ?? []), k]);
  return m;
}

function feedBack(input: AllocationInput, out: Map<string, Outcome>): AllocationInput {
  return { ...input, claims: input.claims.map((c) => ({ ...c, current: ips(out.get(c.key)) ?? [] })) };
}

/**
 * Shrunk counterexample of "idempotent on its own output" (fast-check seed 2136186960). s1 asks
 * for 198.18.0.1 and an IPv6 address the IPv4-only pool lacks; s0 asks for 198.18.0.1 too. s1 is
 * earlier: it waits (out of pool) and s0 gets 198.18.0.1. Fed back, s0 holds 198.18.0.1 before
 * s1's request is looked at, and s1 used to say "in use" instead.
 */
const requestReasonCase: AllocationInput = {
  pools: parsePools({ 'cidr-global': '198.18.0.0/30' }),
  controlPlaneVips: CP,
  claims: [
    { key: 'a/s0', namespace: 'a', priority: '3', families: [], policy: 'SingleStack', requested: ['198.18.0.1'], ports: [], externalTrafficPolicy: 'Cluster', current: [] },
    { key: 'a/s1', namespace: 'a', priority: '1', families: [], policy: 'RequireDualStack', requested: ['198.18.0.1', '2001:db8::1'], ports: [], externalTrafficPolicy: 'Cluster', current: [] },
  ],
};

describe('allocate: properties', () => {
  it('no address twice except allowed sharing', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const out = allocate(input);
        const byKey = new Map(input.claims.map((c) => [c.key, c]));
        for (const [ip, keys] of holdersByIp(out)) {
          if (keys.length < 2) continue;
          const cs = keys.map((k) => byKey.get(k) as ServiceClaim);
          const ns = cs[0]!.namespace;
          expect(cs.every((c) => c.namespace === ns), ip).toBe(true);
          expect(allowShareFor(input.pools as PoolConfig, ns)).toBe(true);
          expect(new Set(cs.map((c) => c.externalTrafficPolicy)).size).toBe(1);
          const ports = cs.flatMap((c) => c.ports.map((p) => `${p.protocol}/${p.port}`));
          expect(cs.every((c) => c.ports.length > 0)).toBe(true);
          expect(new Set(ports).size).toBe(ports.length);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('every assigned address is in the namespace pool (or a control-plane VIP the Service asked for), of an allowed family', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const out = allocate(input);
        for (const c of input.claims) {
          const o = out.get(c.key);
          expect(o).toBeDefined();
          if (o?.kind !== 'assigned') continue;
          expect(o.ips.length).toBeGreaterThan(0);
          const fams = o.ips.map((ip) => parseAddr(ip)!.family);
          expect(new Set(fams).size).toBe(fams.length);
          if (c.policy === 'SingleStack') expect(o.ips.length).toBe(1);
          if (c.policy === 'RequireDualStack') expect(o.ips.length).toBe(2);
          if (c.families.length > 0 && c.policy !== 'RequireDualStack') for (const f of fams) expect(c.policy === 'SingleStack' ? [c.families[0]] : c.families).toContain(f);
          for (const ip of o.ips) {
            const asked = c.requested.map(canonicalAddr).includes(ip);
            if (CP.includes(ip)) {
              expect(asked).toBe(true);
              continue;
            }
            const pool = poolFor(input.pools as PoolConfig, c.namespace);
            expect(pool && poolContains(pool, parseAddr(ip)!), `${c.key} ${ip}`).toBe(true);
          }
          if (c.requested.length > 0) expect(new Set(o.ips)).toEqual(new Set(c.requested.map(canonicalAddr)));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('idempotent on its own output, and independent of input order', () => {
    fc.assert(
      fc.property(inputArb, fc.integer(), (input, seed) => {
        const out = allocate(input);
        // Messages may name a different family on the second run; kind, addresses and reason may not change.
        const strip = (m: Map<string, Outcome>) => new Map([...m].map(([k, o]) => [k, o.kind === 'assigned' ? { ips: o.ips, missing: o.missing.map((x) => x.reason) } : o.reason]));
        expect(strip(allocate(feedBack(input, out)))).toEqual(strip(out));
        const shuffled = [...input.claims].sort((a, b) => ((a.key.length * 31 + seed) % 7) - ((b.key.length * 17 + seed) % 5));
        expect(allocate({ ...input, claims: shuffled })).toEqual(out);
      }),
      { numRuns: 2000, examples: [[requestReasonCase, 0]] },
    );
  });

  it('a waiting request gives the reason that does not depend on other Services, also when fed back (seed 2136186960)', () => {
    const out = allocate(requestReasonCase);
    expect(ips(out.get('a/s0'))).toEqual(['198.18.0.1']);
    expect(pending(out.get('a/s1'))).toBe('requested-ip-out-of-pool');
    expect(allocate(feedBack(requestReasonCase, out))).toEqual(out);
  });

  it('adding a Service never moves anyone else', () => {
    fc.assert(
      fc.property(inputArb, fc.constantFrom(...NAMESPACES), familiesArb, policyArb, fc.constantFrom('0', '9'), (input, ns, families, policy, priority) => {
        const stable = feedBack(input, allocate(input));
        const before = allocate(stable);
        const extra: ServiceClaim = { key: `${ns}/new`, namespace: ns, priority, families, policy, requested: [], ports: [{ port: 80, protocol: 'TCP' }], externalTrafficPolicy: 'Cluster', current: [] };
        const after = allocate({ ...stable, claims: [...stable.claims, extra] });
        for (const [k, o] of before) if (o.kind === 'assigned') expect(ips(after.get(k)), k).toEqual(o.ips);
      }),
      { numRuns: 1000 },
    );
  });

  it('exhaustion: n addresses, n+k single-stack Services → n assigned, k exhausted; a release is reused', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 5 }), fc.boolean(), (n, k, v6) => {
        const pool = v6 ? `2001:db8::1-2001:db8::${n.toString(16)}` : `198.18.0.1-198.18.0.${n}`;
        const pools = parsePools({ 'range-global': pool });
        const claims = Array.from({ length: n + k }, (_, i) => claim(`x/s${i}`, { families: [v6 ? 6 : 4], priority: String(i).padStart(3, '0') }));
        const out = allocate({ pools, claims });
        const kinds = [...out.values()].map((o) => (o.kind === 'assigned' ? 'a' : o.reason));
        expect(kinds.filter((x) => x === 'a').length).toBe(n);
        expect(kinds.filter((x) => x === 'exhausted').length).toBe(k);
        // Delete the first Service: the first waiting one gets exactly its address.
        const gone = ips(out.get('x/s0'))!;
        const next = allocate(feedBack({ pools, claims: claims.slice(1) }, out));
        if (k > 0) expect(ips(next.get(`x/s${n}`))).toEqual(gone);
      }),
    );
  });
});
