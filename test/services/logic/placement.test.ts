import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ipsForNode, plan, type ServiceView } from '../../../src/services/logic/placement.js';
import { DEFAULT_CLASS_FILTER, isManaged, readyEndpointNodes, recordedIps, toClaim, type ServiceLike } from '../../../src/services/logic/model.js';

const svc = (key: string, ips: string[], etp: 'Cluster' | 'Local' = 'Cluster'): ServiceView => ({ key, ips, externalTrafficPolicy: etp });
const nodes = ['n1', 'n2', 'n3'];

describe('announce plan', () => {
  it('one unit per address; sharing Services are one unit; every node agrees', () => {
    const p = plan({
      services: [svc('a/web', ['198.18.0.1']), svc('a/dns', ['198.18.0.1']), svc('a/dual', ['2001:db8::1', '198.18.0.2'])],
      readyEndpointNodes: new Map(),
      members: nodes,
    });
    expect(p.units.map((u) => [u.ip, u.services])).toEqual([
      ['198.18.0.1', ['a/dns', 'a/web']],
      ['198.18.0.2', ['a/dual']],
      ['2001:db8::1', ['a/dual']],
    ]);
    const all = nodes.flatMap((n) => ipsForNode(p, n));
    expect(all.sort()).toEqual(['198.18.0.1', '198.18.0.2', '2001:db8::1']);
    // Another node with members listed in another order computes the same plan.
    expect(plan({ services: [svc('a/dual', ['2001:db8::1', '198.18.0.2']), svc('a/dns', ['198.18.0.1']), svc('a/web', ['198.18.0.1'])], readyEndpointNodes: new Map(), members: ['n3', 'n1', 'n2'] })).toEqual(p);
  });

  it('a control-plane VIP is never a service unit', () => {
    const p = plan({ services: [svc('a/api', ['198.18.0.100']), svc('a/x', ['198.18.0.5'])], readyEndpointNodes: new Map(), members: nodes, controlPlaneVips: ['198.18.0.100'] });
    expect(p.units.map((u) => u.ip)).toEqual(['198.18.0.5']);
    expect(p.onControlPlaneVip.get('198.18.0.100')).toEqual(['a/api']);
  });

  it('externalTrafficPolicy Local: only nodes with a ready local endpoint; none → nowhere', () => {
    const eps = new Map([['a/l', new Set(['n2'])]]);
    const p = plan({ services: [svc('a/l', ['198.18.0.9'], 'Local'), svc('a/none', ['198.18.0.8'], 'Local')], readyEndpointNodes: eps, members: nodes });
    const l = p.units.find((u) => u.ip === '198.18.0.9');
    expect(l?.owner).toBe('n2');
    const none = p.units.find((u) => u.ip === '198.18.0.8');
    expect(none?.owner).toBeUndefined();
    expect(none?.note).toMatch(/no live member has a ready local endpoint/);
    // The endpoint moves: so does the announcer.
    const q = plan({ services: [svc('a/l', ['198.18.0.9'], 'Local')], readyEndpointNodes: new Map([['a/l', new Set(['n3', 'gone'])]]), members: nodes });
    expect(ipsForNode(q, 'n3')).toEqual(['198.18.0.9']);
  });

  it('shared Local address: nodes with endpoints of all Services, else of any', () => {
    const eps = new Map([
      ['a/x', new Set(['n1', 'n2'])],
      ['a/y', new Set(['n2', 'n3'])],
    ]);
    const p = plan({ services: [svc('a/x', ['198.18.0.1'], 'Local'), svc('a/y', ['198.18.0.1'], 'Local')], readyEndpointNodes: eps, members: nodes });
    expect(p.units[0]?.candidates).toEqual(['n2']);
    const q = plan({ services: [svc('a/x', ['198.18.0.1'], 'Local'), svc('a/y', ['198.18.0.1'], 'Local')], readyEndpointNodes: new Map([['a/x', new Set(['n1'])], ['a/y', new Set(['n3'])]]), members: nodes });
    expect([...(q.units[0]?.candidates ?? [])].sort()).toEqual(['n1', 'n3']);
  });

  it('each address has exactly one owner among members; a lost member moves only its addresses', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.ipV4(), { minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 2 }), (ips, drop) => {
        const services = ips.map((ip, i) => svc(`ns/s${i}`, [ip]));
        const p = plan({ services, readyEndpointNodes: new Map(), members: nodes });
        const owners = new Map(p.units.map((u) => [u.ip, u.owner]));
        for (const o of owners.values()) expect(nodes).toContain(o);
        const gone = nodes[drop] as string;
        const q = plan({ services, readyEndpointNodes: new Map(), members: nodes.filter((n) => n !== gone) });
        for (const u of q.units) if (owners.get(u.ip) !== gone) expect(u.owner).toBe(owners.get(u.ip));
      }),
    );
  });
});

describe('announce plan with eligible nodes (L2Advertisement nodeSelectors)', () => {
  it('only eligible members are candidates; none eligible → nowhere, with a note; Local endpoints only among the eligible', () => {
    const eligibleNodes = new Map([
      ['198.18.0.1', new Set(['n2', 'n3', 'not-a-member'])],
      ['198.18.0.2', new Set(['not-a-member'])],
      ['198.18.0.3', new Set(['n1'])],
    ]);
    const eps = new Map([['a/l', new Set(['n2', 'n3'])]]);
    const p = plan({ services: [svc('a/x', ['198.18.0.1']), svc('a/y', ['198.18.0.2']), svc('a/l', ['198.18.0.3'], 'Local'), svc('a/free', ['198.18.0.4'])], readyEndpointNodes: eps, members: nodes, eligibleNodes });
    const unit = (ip: string) => p.units.find((u) => u.ip === ip)!;
    expect([...unit('198.18.0.1').candidates].sort()).toEqual(['n2', 'n3']);
    expect(unit('198.18.0.2')).toMatchObject({ owner: undefined, candidates: [], note: 'no live member is eligible for this address (L2Advertisement nodeSelectors)' });
    expect(unit('198.18.0.3')).toMatchObject({ owner: undefined, note: 'no live member has a ready local endpoint (externalTrafficPolicy: Local)' });
    expect([...unit('198.18.0.4').candidates].sort()).toEqual(nodes);
  });

  it('property: owners are eligible members; addresses without a limit are placed as if there were none; a node leaving an address\'s set moves only addresses it owned', () => {
    const ipArb = fc.integer({ min: 0, max: 511 }).map((i) => `198.18.${i >> 8}.${i & 255}`);
    const members = ['n1', 'n2', 'n3', 'n4'];
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(ipArb, fc.option(fc.subarray([...members, 'other']), { nil: undefined })), { selector: ([ip]) => ip, minLength: 1, maxLength: 40 }),
        fc.constantFrom(...members),
        (rows, leaving) => {
          const services = rows.map(([ip], i) => svc(`ns/s${i}`, [ip]));
          const eligibleNodes = new Map(rows.filter(([, e]) => e !== undefined).map(([ip, e]) => [ip, new Set(e)] as const));
          const p = plan({ services, readyEndpointNodes: new Map(), members, eligibleNodes });
          const free = plan({ services, readyEndpointNodes: new Map(), members });
          for (const u of p.units) {
            const e = eligibleNodes.get(u.ip);
            if (e === undefined) expect(u).toEqual(free.units.find((f) => f.ip === u.ip));
            else if (u.owner === undefined) expect(members.some((m) => e.has(m))).toBe(false);
            else expect(e.has(u.owner) && members.includes(u.owner)).toBe(true);
          }
          // `leaving`'s labels change: it is eligible nowhere any more, like a member that left.
          const narrowed = new Map([...eligibleNodes].map(([ip, e]) => [ip, new Set([...e].filter((n) => n !== leaving))] as const));
          for (const [ip] of rows) if (!narrowed.has(ip)) narrowed.set(ip, new Set(members.filter((m) => m !== leaving)));
          const q = plan({ services, readyEndpointNodes: new Map(), members, eligibleNodes: narrowed });
          const before = new Map(p.units.map((u) => [u.ip, u.owner]));
          for (const u of q.units) {
            expect(u.owner).not.toBe(leaving);
            if (before.get(u.ip) !== leaving) expect(u.owner).toBe(before.get(u.ip));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('model', () => {
  const base = (over: ServiceLike = {}): ServiceLike => ({
    metadata: { name: 's', namespace: 'a', creationTimestamp: new Date('2026-01-01T00:00:00Z'), ...over.metadata },
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }], ...over.spec },
    status: over.status ?? {},
  });

  it('class filter follows kube-vip (legacy handling, class-only)', () => {
    const f = DEFAULT_CLASS_FILTER;
    expect(isManaged(base(), f)).toBe(true);
    expect(isManaged(base({ spec: { loadBalancerClass: 'vipd.io/lb' } }), f)).toBe(true);
    expect(isManaged(base({ spec: { loadBalancerClass: 'other.io/lb' } }), f)).toBe(false);
    expect(isManaged(base(), { ...f, classOnly: true })).toBe(false);
    expect(isManaged(base(), { ...f, legacyHandling: false })).toBe(false);
    expect(isManaged(base({ spec: { loadBalancerClass: 'kube-vip.io/kube-vip-class' } }), { ...f, className: 'kube-vip.io/kube-vip-class' })).toBe(true);
    expect(isManaged(base({ spec: { type: 'ClusterIP' } }), f)).toBe(false);
    expect(isManaged(base({ metadata: { annotations: { 'kube-vip.io/ignore': 'true' } } }), f)).toBe(false);
  });

  it('claims: annotation beats spec.loadBalancerIP; record comes from our condition only', () => {
    const s = base({
      metadata: { annotations: { 'kube-vip.io/loadbalancerIPs': '198.18.0.1, 2001:db8::1' } },
      spec: { loadBalancerIP: '198.18.0.2', ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'PreferDualStack', ports: [{ port: 53, protocol: 'UDP' }] },
      status: {
        loadBalancer: { ingress: [{ ip: '198.18.0.77' }] },
        conditions: [{ type: 'vipd.io/Allocated', status: 'True', message: 'allocated: 198.18.0.1,2001:DB8::1' }],
      },
    });
    const c = toClaim(s);
    expect(c).toMatchObject({ key: 'a/s', requested: ['198.18.0.1', '2001:db8::1'], families: [6, 4], policy: 'PreferDualStack', current: ['198.18.0.1', '2001:db8::1'], priority: '2026-01-01T00:00:00.000Z' });
    expect(c.ports).toEqual([{ port: 53, protocol: 'UDP' }]);
    expect(toClaim(base({ spec: { loadBalancerIP: '198.18.0.2' } })).requested).toEqual(['198.18.0.2']);
    expect(recordedIps(base({ status: { loadBalancer: { ingress: [{ ip: '198.18.0.77' }] } } }))).toEqual([]);
    // Raw watch JSON (string timestamps) sorts the same as client-node Dates.
    expect(toClaim(base({ metadata: { creationTimestamp: '2026-01-01T00:00:00Z' } })).priority).toBe(c.priority);
  });

  it('ready endpoint nodes from EndpointSlices', () => {
    const m = readyEndpointNodes([
      { metadata: { namespace: 'a', labels: { 'kubernetes.io/service-name': 's' } }, endpoints: [{ nodeName: 'n1', conditions: { ready: true } }, { nodeName: 'n2', conditions: { ready: false } }, { nodeName: 'n3' }] },
      { metadata: { namespace: 'a', labels: { 'kubernetes.io/service-name': 's' } }, endpoints: [{ nodeName: 'n4', conditions: { ready: true } }] },
    ]);
    expect([...(m.get('a/s') ?? [])].sort()).toEqual(['n1', 'n3', 'n4']);
  });
});
