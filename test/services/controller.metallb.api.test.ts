/**
 * The services controller reading MetalLB's IPAddressPool/L2Advertisement objects against a real
 * kube-apiserver + etcd, with the vipd ServiceAccount (manifests/rbac.yaml) as its only
 * credentials: runs while the CRDs are absent, finds them once manifests/metallb-crds.yaml is
 * applied, allocates from a pool into status, warns about an unadvertised pool (Event + gauge),
 * shares by metallb.io/allow-shared-ip, honours namespaceSelectors, and lets go when the pool goes.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { ApiClient } from '../../src/k8s/client.js';
import { startControlPlane, type ControlPlane } from '../../lab/apiserver.js';
import { createLogger } from '../../src/observe/log.js';
import { ServicesController } from '../../src/services/controller.js';
import { registry } from '../../src/observe/metrics.js';
import { describeWithApi } from '../lab/with-api.js';
import { until as untilShared } from '../lab/until.js';

const log = createLogger(process.env.VIPD_TEST_LOG ?? 'silent');
const ROOT = join(import.meta.dirname, '..', '..');
const ML = '/apis/metallb.io/v1beta1/namespaces/metallb-system';

interface Svc {
  metadata: { name: string; namespace: string };
  status?: {
    loadBalancer?: { ingress?: Array<{ ip?: string }> };
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  };
}

describeWithApi('services controller with MetalLB objects against kube-apiserver', (assetsDir) => {
  let cp: ControlPlane;
  let client: ApiClient;
  let stop: AbortController;
  let running: Promise<void>;

  const req = async (method: string, path: string, body?: unknown) => {
    const r = await cp.request(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
    return r.body ? (JSON.parse(r.body) as unknown) : undefined;
  };
  const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> => untilShared(what, fn, timeoutMs, 100);
  const getSvc = (ns: string, name: string) => req('GET', `/api/v1/namespaces/${ns}/services/${name}`) as Promise<Svc>;
  const createSvc = (ns: string, name: string, port = 80, annotations?: Record<string, string>) =>
    req('POST', `/api/v1/namespaces/${ns}/services`, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
      spec: { type: 'LoadBalancer', ports: [{ port, protocol: 'TCP' }], selector: { app: name } },
    });
  const ingress = (s: Svc) => (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip);
  const cond = (s: Svc) => s.status?.conditions?.find((c) => c.type === 'vipd.io/Allocated');
  const statusIs = (ns: string, name: string, pred: (s: Svc) => boolean) =>
    until(`${ns}/${name} status`, async () => {
      const s = await getSvc(ns, name);
      return pred(s) ? s : undefined;
    });
  const events = async (ns: string, name: string) => {
    const list = (await req('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`)) as { items: Array<{ type: string; reason: string; note: string; regarding: { name: string } }> };
    return list.items.filter((e) => e.regarding.name === name);
  };
  const createPool = (name: string, spec: Record<string, unknown>) => req('POST', `${ML}/ipaddresspools`, { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name, namespace: 'metallb-system' }, spec });

  beforeAll(async () => {
    cp = await startControlPlane({ assetsDir, servers: [{}], serviceCidr: '198.19.240.0/20', apiServerArgs: ['--endpoint-reconciler-type=none'] });
    for (const ns of ['x', 'metallb-system']) await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'tenant', labels: { tier: 'gold' } } });
    client = await ApiClient.create({ kubeconfigPath: await cp.serviceAccountKubeconfig(), localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
    stop = new AbortController();
    // No kubevip ConfigMap at all: every address below comes from an IPAddressPool.
    const ctl = new ServicesController({ client, nodeName: 'n1', log, debounceMs: 20, metallb: { namespace: 'metallb-system' }, metallbRecheckMs: 300 });
    ctl.setMembers(['n1']);
    ctl.setAllocator(true);
    running = ctl.run(stop.signal);
    await until('synced without the CRDs', async () => ctl.synced());
  }, 240_000);

  afterAll(async () => {
    stop?.abort();
    await running?.catch(() => undefined);
    client?.close();
    await cp?.destroy();
  }, 60_000);

  it('CRDs absent: the controller runs and a Service waits for a pool', async () => {
    await createSvc('x', 'early');
    const s = await statusIs('x', 'early', (s) => cond(s)?.status === 'False');
    expect(cond(s)?.reason).toBe('NoPoolForNamespace');
  });

  it('after manifests/metallb-crds.yaml, an IPAddressPool and an L2Advertisement: the waiting Service gets the lowest address', async () => {
    for (const crd of loadAllYaml(await readFile(join(ROOT, 'manifests', 'metallb-crds.yaml'), 'utf8'))) await req('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    // The CRDs take a moment to be served.
    await until('pool created', async () => (await cp.request('POST', `${ML}/ipaddresspools`, { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata: { name: 'main', namespace: 'metallb-system' }, spec: { addresses: ['198.18.120.0/30'] } })).status < 300);
    await req('POST', `${ML}/l2advertisements`, { apiVersion: 'metallb.io/v1beta1', kind: 'L2Advertisement', metadata: { name: 'l2', namespace: 'metallb-system' }, spec: { ipAddressPools: ['main', 'gold'] } });
    const s = await statusIs('x', 'early', (s) => ingress(s).length > 0);
    expect(ingress(s)).toEqual(['198.18.120.0']);
    expect(cond(s)).toMatchObject({ status: 'True', message: 'allocated: 198.18.120.0' });
  });

  it('metallb.io/allow-shared-ip: same key, other port → the same address', async () => {
    await createSvc('x', 'share-a', 80, { 'metallb.io/allow-shared-ip': 'k' });
    const a = await statusIs('x', 'share-a', (s) => ingress(s).length > 0);
    await createSvc('x', 'share-b', 443, { 'metallb.io/allow-shared-ip': 'k' });
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
    await createSvc('x', 'lonely', 80, { 'metallb.io/address-pool': 'lonely' });
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
});
