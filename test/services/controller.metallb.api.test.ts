/**
 * The services controller reading MetalLB's IPAddressPool/L2Advertisement objects against a real
 * kube-apiserver + etcd, with the vipd ServiceAccount (manifests/rbac.yaml) as its only
 * credentials: runs while the CRDs are absent, finds them once manifests/metallb-crds.yaml is
 * applied, allocates from a pool into status, warns about an unadvertised pool (Event + gauge),
 * shares by metallb.io/allow-shared-ip, honours namespaceSelectors, lets go when the pool goes,
 * and places an address only on a member whose Node an L2Advertisement's nodeSelectors match.
 */
import { beforeAll, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { ServicesController } from '../../src/services/controller.js';
import { registry } from '../../src/observe/metrics.js';
import { describeWithApi } from '../lab/with-api.js';
import { log, useServicesApi } from './with-services-api.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ML = '/apis/metallb.io/v1beta1/namespaces/metallb-system';

describeWithApi('services controller with MetalLB objects against kube-apiserver', (assetsDir) => {
  const api = useServicesApi({ assetsDir, namespaces: ['x', 'metallb-system', { name: 'tenant', labels: { tier: 'gold' } }], untilMs: 30_000 });
  const { req, createSvc, ingress, cond, until, statusIs, events } = api;
  let ctl: ServicesController;
  const createPool = (name: string, spec: Record<string, unknown>) => req('POST', `${ML}/ipaddresspools`, { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name, namespace: 'metallb-system' }, spec });

  beforeAll(async () => {
    // No kubevip ConfigMap at all: every address below comes from an IPAddressPool.
    ctl = new ServicesController({ client: api.client, nodeName: 'n1', log, debounceMs: 20, metallb: { namespace: 'metallb-system' }, metallbRecheckMs: 300 });
    ctl.setMembers(['n1']);
    ctl.setAllocator(true);
    api.start(ctl);
    await until('synced without the CRDs', async () => ctl.synced());
  }, 120_000);

  it('CRDs absent: the controller runs and a Service waits for a pool', async () => {
    await createSvc('x', 'early');
    const s = await statusIs('x', 'early', (s) => cond(s)?.status === 'False');
    expect(cond(s)?.reason).toBe('NoPoolForNamespace');
  });

  it('after manifests/metallb-crds.yaml, an IPAddressPool and an L2Advertisement: the waiting Service gets the lowest address', async () => {
    for (const crd of loadAllYaml(await readFile(join(ROOT, 'manifests', 'metallb-crds.yaml'), 'utf8'))) await req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    // The CRDs take a moment to be served.
    await until('pool created', async () => (await api.cp.request('POST', `${ML}/ipaddresspools`, { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name: 'main', namespace: 'metallb-system' }, spec: { addresses: ['198.18.120.0/30'] } })).status < 300);
    await req('POST', `${ML}/l2advertisements`, { apiVersion: 'metallb.io/v1beta1', kind: 'L2Advertisement', metadata: { name: 'l2', namespace: 'metallb-system' }, spec: { ipAddressPools: ['main', 'gold'] } });
    const s = await statusIs('x', 'early', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.120.0']);
    expect(cond(s)).toMatchObject({ status: 'True', message: 'allocated: 198.18.120.0' });
  });

  it('metallb.io/allow-shared-ip: same key, other port → the same address', async () => {
    await createSvc('x', 'share-a', {}, { 'metallb.io/allow-shared-ip': 'k' });
    const a = await statusIs('x', 'share-a', (s) => ingress(s).length > 0);
    await createSvc('x', 'share-b', { ports: [{ port: 443, protocol: 'TCP' }] }, { 'metallb.io/allow-shared-ip': 'k' });
    const b = await statusIs('x', 'share-b', (s) => ingress(s).length > 0);
    expect(ingress(b)).toEqual(ingress(a));
    expect(ingress(a)).toEqual(['198.18.120.1']);
  });

  it('namespaceSelectors: a pinned pool goes to the labelled namespace first', async () => {
    await createPool('gold', { addresses: ['198.18.121.0/30'], serviceAllocation: { priority: 50, namespaceSelectors: [{ matchLabels: { tier: 'gold' } }] } });
    await createSvc('tenant', 'web');
    const s = await statusIs('tenant', 'web', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.121.0']);
  });

  it('an IPAddressPool no L2Advertisement selects: the Service gets its address, a Warning Event and the gauge say so', async () => {
    await createPool('lonely', { addresses: ['198.18.122.0/30'], autoAssign: false });
    await createSvc('x', 'lonely', {}, { 'metallb.io/address-pool': 'lonely' });
    const s = await statusIs('x', 'lonely', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.122.0']);
    const ev = await until('Unadvertised event', async () => (await events('x', 'lonely')).find((e) => e.reason === 'Unadvertised'));
    expect(ev.type).toBe('Warning');
    expect(ev.note).toMatch(/IPAddressPool lonely, which no L2Advertisement selects/);
    const text = await registry.metrics();
    expect(text).toMatch(/^vipd_pool_unadvertised\{pool="lonely"\} 1$/m);
    expect(text).toMatch(/^vipd_pool_unadvertised\{pool="main"\} 0$/m);
    expect(text).toMatch(/^vipd_pool_addresses\{pool="metallb:main",state="used"\} 2$/m);
  });

  it('deleting the pool: its Services wait again (no other pool admits them)', async () => {
    await req('DELETE', `${ML}/ipaddresspools/main`);
    const s = await statusIs('x', 'early', (s) => cond(s)?.status === 'False');
    expect(ingress(s)).toEqual([]);
    expect(cond(s)?.reason).toBe('NoPoolForNamespace');
  });

  it('L2Advertisement nodeSelectors: only a member whose Node matches announces; a label change moves the address; none matching: it keeps its address, nobody announces, a Warning says why', async () => {
    const nodes = async (zones: Record<string, string>) => {
      for (const [name, zone] of Object.entries(zones)) await api.cp.apply(`{ apiVersion: v1, kind: Node, metadata: { name: ${name}, labels: { zone: ${zone} } } }`);
    };
    await nodes({ n1: 'a', n2: 'b', n3: 'a' });
    ctl.setMembers(['n1', 'n2', 'n3']);
    await createPool('zoned', { addresses: ['198.18.123.0/30'], autoAssign: false });
    await req('POST', `${ML}/l2advertisements`, { apiVersion: 'metallb.io/v1beta1', kind: 'L2Advertisement', metadata: { name: 'zone-b', namespace: 'metallb-system' }, spec: { ipAddressPools: ['zoned'], nodeSelectors: [{ matchLabels: { zone: 'b' } }] } });
    await createSvc('x', 'zoned', {}, { 'metallb.io/address-pool': 'zoned' });
    const ip = ingress(await statusIs('x', 'zoned', (s) => ingress(s).length > 0))[0]!;
    expect(ip).toBe('198.18.123.0');
    const unit = () => ctl.plan().units.find((u) => u.ip === ip);
    await until('only n2 may announce', async () => unit()?.candidates.join() === 'n2');
    expect(ctl.desired()).not.toContain(ip);

    // Labels swap: the address moves to n1, this node, the way it moves off a member that left.
    await nodes({ n1: 'b', n2: 'a' });
    await until('n1 holds it', async () => ctl.desired().includes(ip));
    expect(unit()?.candidates).toEqual(['n1']);

    // No member matches any more: the Service keeps its address and nobody announces it.
    await nodes({ n1: 'a' });
    await until('withdrawn', async () => !ctl.desired().includes(ip));
    expect(unit()).toMatchObject({ owner: undefined, note: 'no live member is eligible for this address (L2Advertisement nodeSelectors)' });
    const ev = await until('NoEligibleNode event', async () => (await events('x', 'zoned')).find((e) => e.reason === 'NoEligibleNode'));
    expect(ev.type).toBe('Warning');
    expect(ev.note).toContain(`${ip} (IPAddressPool zoned): the nodeSelectors of L2Advertisement zone-b match no Node`);
    expect(ingress(await api.getSvc('x', 'zoned'))).toEqual([ip]);

    // An advertisement without nodeSelectors for the pool: every member may again.
    await req('POST', `${ML}/l2advertisements`, { apiVersion: 'metallb.io/v1beta1', kind: 'L2Advertisement', metadata: { name: 'anywhere', namespace: 'metallb-system' }, spec: { ipAddressPools: ['zoned'] } });
    await until('every member a candidate', async () => unit()?.candidates.length === 3);
  });
});
