/**
 * The services controller against a real kube-apiserver + etcd, with the vipd ServiceAccount
 * (manifests/rbac.yaml) as its only credentials: allocation from the right pool, status and
 * record written, conflicts and exhaustion reported as Warning Events, release on delete and on
 * type change, dual-stack, an address another controller wrote never reused, restart without
 * reshuffling.
 */
import { beforeAll, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServicesController } from '../../src/services/controller.js';
import { registry } from '../../src/observe/metrics.js';
import { describeWithApi } from '../lab/with-api.js';
import { log, useServicesApi, type Svc } from './with-services-api.js';

describeWithApi('services controller against kube-apiserver', (assetsDir) => {
  const api = useServicesApi({ assetsDir, serviceCidr: '198.19.240.0/20,2001:db8:ffff:ffff::/112', namespaces: ['x', 'team-a', 'team-b'] });
  const { req, getSvc, createSvc, ingress, cond, until, statusIs, events: warnings } = api;
  let ctl: ServicesController;
  let stop: AbortController;
  let running: Promise<void>;
  const desiredSeen: Array<readonly string[]> = [];

  function startController(): void {
    ctl = new ServicesController({ client: api.client, nodeName: 'n1', controlPlaneVips: ['198.18.100.200'], log, debounceMs: 20 });
    ctl.onDesired((ips) => desiredSeen.push(ips));
    ctl.setMembers(['n1']);
    ctl.setAllocator(true);
    ({ stop, done: running } = api.start(ctl));
  }

  beforeAll(async () => {
    await api.applyPools({ 'cidr-global': '198.18.100.0/29,2001:db8:100::/126', 'range-team-a': '198.18.101.10-198.18.101.11', 'allow-share-team-b': 'true' });
    // Another controller's Service, with an address it wrote into status itself.
    await createSvc('x', 'foreign', { loadBalancerClass: 'other.io/lb' });
    const f = await getSvc('x', 'foreign');
    await req('PUT', '/api/v1/namespaces/x/services/foreign/status', { ...f, status: { loadBalancer: { ingress: [{ ip: '198.18.100.1' }] } } });
    startController();
  }, 120_000);

  it('a new Service gets the lowest free address of the global pool; status, ipMode and record say so; this node holds it', async () => {
    await createSvc('x', 'web');
    const s = await statusIs('x', 'web', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.100.0']);
    expect(s.status?.loadBalancer?.ingress?.[0]?.ipMode).toBe('VIP');
    expect(cond(s)).toMatchObject({ status: 'True', reason: 'Allocated', message: 'allocated: 198.18.100.0' });
    await until('desired', async () => ctl.desired().includes('198.18.100.0'));
  });

  it('an address another controller wrote into status is never handed out nor announced', async () => {
    await createSvc('x', 'web2');
    const s = await statusIs('x', 'web2', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.100.2']);
    expect(ctl.desired()).not.toContain('198.18.100.1');
    const f = await getSvc('x', 'foreign');
    expect(ingress(f)).toEqual(['198.18.100.1']);
    expect(cond(f)).toBeUndefined();
  });

  it('namespace pool beats the global one', async () => {
    await createSvc('team-a', 'a1');
    const s = await statusIs('team-a', 'a1', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.101.10']);
  });

  it('two Services asking for one address: the first wins, the other waits with a Warning Event', async () => {
    await createSvc('x', 'ask1', {}, { 'kube-vip.io/loadbalancerIPs': '198.18.100.5' });
    await statusIs('x', 'ask1', (s) => ingress(s)[0] === '198.18.100.5');
    await createSvc('x', 'ask2', { loadBalancerIP: '198.18.100.5' });
    const s = await statusIs('x', 'ask2', (s) => cond(s)?.status === 'False');
    expect(ingress(s)).toEqual([]);
    expect(cond(s)).toMatchObject({ reason: 'RequestedIPInUse' });
    expect(cond(s)?.message).toMatch(/198\.18\.100\.5 is used by x\/ask1/);
    const ev = await until('warning event', async () => (await warnings('x', 'ask2')).find((e) => e.reason === 'RequestedIPInUse'));
    expect(ev).toMatchObject({ type: 'Warning', reportingController: 'vipd.io/services' });
    // Out of pool: also waits, never a substitute address.
    await createSvc('x', 'outside', {}, { 'kube-vip.io/loadbalancerIPs': '198.18.199.1' });
    const o = await statusIs('x', 'outside', (s) => cond(s)?.status === 'False');
    expect(cond(o)?.reason).toBe('RequestedIPOutOfPool');
    await until('out-of-pool event', async () => (await warnings('x', 'outside')).find((e) => e.reason === 'RequestedIPOutOfPool'));
  });

  it('exhaustion is reported; a deleted Service releases its address to the waiting one', async () => {
    await createSvc('team-a', 'a2');
    await statusIs('team-a', 'a2', (s) => ingress(s)[0] === '198.18.101.11');
    await sleep(1100); // creation timestamps have one-second resolution; a3 must be the later one
    await createSvc('team-a', 'a3');
    const s = await statusIs('team-a', 'a3', (s) => cond(s)?.status === 'False');
    expect(cond(s)?.reason).toBe('PoolExhausted');
    await until('exhausted event', async () => (await warnings('team-a', 'a3')).find((e) => e.reason === 'PoolExhausted'));
    // The allocator's gauges say the same: one waiting for an exhausted pool, team-a's two addresses used.
    const text = await registry.metrics();
    expect(text).toMatch(/^vipd_services_pending\{reason="exhausted"\} 1$/m);
    expect(text).toMatch(/^vipd_pool_addresses\{pool="range-team-a",state="used"\} 2$/m);
    expect(text).toMatch(/^vipd_pool_addresses\{pool="range-team-a",state="total"\} 2$/m);
    await req('DELETE', '/api/v1/namespaces/team-a/services/a1');
    const after = await statusIs('team-a', 'a3', (s) => ingress(s).length > 0);
    expect(ingress(after)).toEqual(['198.18.101.10']);
  });

  it('dual-stack: RequireDualStack gets one address per family, in ipFamilies order', async () => {
    await createSvc('x', 'dual', { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] });
    const s = await statusIs('x', 'dual', (s) => ingress(s).length === 2);
    expect(ingress(s)).toEqual(['2001:db8:100::', '198.18.100.3']);
    await until('both held', async () => ctl.desired().includes('2001:db8:100::') && ctl.desired().includes('198.18.100.3'));
  });

  it('allow-share: two Services of one namespace with disjoint ports share an IPv4 address; one holder', async () => {
    await api.applyPools({ 'cidr-global': '198.18.100.0/29,2001:db8:100::/126', 'range-team-a': '198.18.101.10-198.18.101.11', 'range-team-b': '198.18.102.1-198.18.102.1', 'allow-share-team-b': 'true' });
    await createSvc('team-b', 'dns-udp', { ports: [{ port: 53, protocol: 'UDP' }] });
    await statusIs('team-b', 'dns-udp', (s) => ingress(s)[0] === '198.18.102.1');
    await createSvc('team-b', 'dns-tcp', { ports: [{ port: 53, protocol: 'TCP' }] });
    await statusIs('team-b', 'dns-tcp', (s) => ingress(s)[0] === '198.18.102.1');
    // The plan follows the controller's watch, which may see the status write a moment later.
    await until('one unit for both', async () => ctl.plan().units.find((u) => u.ip === '198.18.102.1')?.services.length === 2);
    const unit = ctl.plan().units.find((u) => u.ip === '198.18.102.1');
    expect(unit?.services).toEqual(['team-b/dns-tcp', 'team-b/dns-udp']);
  });

  it('type change away from LoadBalancer clears status and record; the address is released and no longer held', async () => {
    const s = await getSvc('x', 'web');
    await req('PUT', '/api/v1/namespaces/x/services/web', { ...s, spec: { ...s.spec, type: 'ClusterIP' }, status: undefined });
    const after = await statusIs('x', 'web', (s) => cond(s) === undefined);
    expect(ingress(after)).toEqual([]);
    await until('released', async () => !ctl.desired().includes('198.18.100.0'));
  });

  it('a restart re-reads its record: no Service is rewritten or moved', async () => {
    const list = async () =>
      ((await req('GET', '/api/v1/services')) as { items: Svc[] }).items.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s.metadata.resourceVersion, ingress(s).join(',')]);
    await sleep(500);
    const before = await list();
    stop.abort();
    await running;
    startController();
    await until('synced', async () => ctl.synced());
    await sleep(1_000);
    expect(await list()).toEqual(before);
    expect(ctl.desired()).toContain('198.18.100.2');
  }, 20_000);

  it('a non-allocator node announces from the record but never writes; the allocator role moves', async () => {
    const other = new ServicesController({ client: api.client, nodeName: 'n2', log, debounceMs: 20 });
    const ac = new AbortController();
    const r = other.run(ac.signal);
    try {
      other.setMembers(['n2']);
      await until('n2 view', async () => other.desired().includes('198.18.100.2'));
      ctl.setAllocator(false);
      await createSvc('x', 'late');
      await sleep(1_000);
      expect(cond(await getSvc('x', 'late'))).toBeUndefined(); // nobody allocates
      other.setAllocator({ kind: 'hold', until: performance.now() + 60_000, reason: 'test' });
      const s = await statusIs('x', 'late', (s) => ingress(s).length > 0);
      expect(ingress(s)).toEqual(['198.18.100.0']); // released by the type change above, reused
      await until('n2 follows', async () => other.desired().includes('198.18.100.0'));
      await until('n1 follows', async () => ctl.desired().includes('198.18.100.0'));
    } finally {
      ac.abort();
      await r;
    }
  });

  it('externalTrafficPolicy Local: the node with the ready local endpoint announces; when it moves, so does the IP', async () => {
    ctl.setAllocator(true);
    ctl.setMembers(['n1', 'n2', 'n3']);
    await createSvc('x', 'local', { externalTrafficPolicy: 'Local' });
    const s = await statusIs('x', 'local', (s) => ingress(s).length > 0);
    const ip = ingress(s)[0]!;
    const unit = () => ctl.plan().units.find((u) => u.ip === ip);
    await until('no endpoint → no owner', async () => unit() !== undefined && unit()!.owner === undefined);
    const slice = (node: string, ready: boolean) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'local-1', namespace: 'x', labels: { 'kubernetes.io/service-name': 'local' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.19.0.10'], conditions: { ready }, nodeName: node }],
      ports: [{ port: 80, protocol: 'TCP' }],
    });
    await req('POST', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices', slice('n2', true));
    await until('owner n2', async () => unit()?.owner === 'n2');
    expect(ctl.desired()).not.toContain(ip);
    const cur = (await req('GET', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices/local-1')) as { metadata: { resourceVersion: string } };
    await req('PUT', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices/local-1', { ...slice('n1', true), metadata: { ...slice('n1', true).metadata, resourceVersion: cur.metadata.resourceVersion } });
    await until('n1 holds it', async () => ctl.desired().includes(ip));
    expect(unit()?.candidates).toEqual(['n1']);
    // Not ready any more: nobody announces it.
    const cur2 = (await req('GET', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices/local-1')) as { metadata: { resourceVersion: string } };
    await req('PUT', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices/local-1', { ...slice('n1', false), metadata: { ...slice('n1', false).metadata, resourceVersion: cur2.metadata.resourceVersion } });
    await until('withdrawn', async () => !ctl.desired().includes(ip));
    // Cluster-policy addresses spread over the three members; every one has exactly one owner.
    const owners = ctl.plan().units.filter((u) => u.ip !== ip).map((u) => u.owner);
    expect(owners.every((o) => o === 'n1' || o === 'n2' || o === 'n3')).toBe(true);
  });
});
