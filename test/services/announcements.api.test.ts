/**
 * ServiceAnnouncement records against a real kube-apiserver + etcd, with the vipd ServiceAccount
 * (manifests/rbac.yaml) as the only credentials and the CRD from manifests/vipd-crds.yaml: the
 * object appears when this node starts holding an address, `kubectl get svcann` shows SERVICE,
 * NODE, ADDRESSES, REASON and SINCE, an AnnouncerChanged Event lands on the Service, the object
 * goes when the address goes, leftovers of an earlier run are deleted at start while another
 * node's objects are left alone, and without the CRD nothing fails.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, expect, it } from 'vitest';
import { ServicesController } from '../../src/services/controller.js';
import { ServiceAnnouncer } from '../../src/services/announcements.js';
import { registry } from '../../src/observe/metrics.js';
import { describeWithApi } from '../lab/with-api.js';
import { log, useServicesApi } from './with-services-api.js';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const REASON = 'service IP granted by a majority of the voters';
const ANN = '/apis/vipd.io/v1alpha1';

interface Ann {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string; uid: string }> };
  status?: { node?: string; serviceName?: string; addresses?: string[]; reason?: string; since?: string; interfaces?: Array<{ name: string }> };
}

describeWithApi('ServiceAnnouncement records against kube-apiserver', (assetsDir) => {
  const api = useServicesApi({ assetsDir, namespaces: ['x', 'y'] });
  const { req, until, createSvc, getSvc } = api;
  let ctl: ServicesController;

  const anns = async (ns: string) => ((await req('GET', `${ANN}/namespaces/${ns}/serviceannouncements`)) as { items: Ann[] }).items;
  const ingress = async (ns: string, name: string) => api.ingress(await getSvc(ns, name));

  function announcer(node = 'n1'): ServiceAnnouncer {
    const a = new ServiceAnnouncer({ client: api.client, node, source: ctl, log, retryMs: 100, requestTimeoutMs: 5_000 });
    api.start(a);
    return a;
  }

  beforeAll(async () => {
    await api.applyPools({ 'cidr-global': '198.18.0.128/29' });
    ctl = new ServicesController({ client: api.client, nodeName: 'n1', log, debounceMs: 20 });
    ctl.setMembers(['n1']);
    ctl.setAllocator(true);
    api.start(ctl);
  }, 120_000);

  it('without the CRD: a failed write is counted and logged, never thrown', async () => {
    await createSvc('x', 'early');
    await until('early allocated', async () => (await ingress('x', 'early')).length > 0);
    const ip = (await ingress('x', 'early'))[0]!;
    await until('early placed', async () => ctl.desired().includes(ip));
    const a = announcer('n0');
    a.holding(ip, 'eth0', { holding: true, reason: REASON });
    await until('a failure counted', async () => (await registry.getSingleMetricAsString('vipd_service_announcement_write_failures_total')).match(/op="list"\} [1-9]/));
    a.holding(ip, 'eth0', { holding: false, reason: 'test' });
    await a.finish(0);
  });

  it('the CRD is accepted and established', async () => {
    const yaml = await readFile(join(ROOT, 'manifests', 'vipd-crds.yaml'), 'utf8');
    await exec('kubectl', ['--kubeconfig', api.cp.adminKubeconfig, 'apply', '-f', join(ROOT, 'manifests', 'vipd-crds.yaml')], { timeout: 60_000 });
    expect(yaml).toMatch(/serviceannouncements\.vipd\.io/);
    await until('CRD established', async () => {
      const crd = (await req('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/serviceannouncements.vipd.io')) as { status?: { conditions?: Array<{ type: string; status: string }> } };
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    });
    await until('served', async () => (await api.cp.request('GET', `${ANN}/serviceannouncements`)).status === 200);
  });

  it('holding an address creates the record, kubectl shows who, why and since when, and an Event says so', async () => {
    const svc = await createSvc('x', 'web');
    await until('web allocated', async () => (await ingress('x', 'web')).length > 0);
    const ip = (await ingress('x', 'web'))[0]!;
    await until('web placed', async () => ctl.desired().includes(ip));
    const a = announcer();
    a.holding(ip, 'eth0', { holding: true, reason: REASON });
    const obj = await until('record', async () => (await anns('x')).find((o) => o.metadata.name === 'web.n1'));
    expect(obj.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Service', name: 'web', uid: svc.metadata.uid })]);
    expect(obj.metadata.labels).toMatchObject({ 'vipd.io/node': 'n1', 'vipd.io/service-name': 'web' });
    expect(obj.status).toMatchObject({ node: 'n1', serviceName: 'web', serviceNamespace: 'x', addresses: [ip], reason: REASON, interfaces: [{ name: 'eth0' }] });
    expect(Date.parse(obj.status?.since ?? '')).toBeGreaterThan(Date.now() - 600_000);

    const { stdout } = await exec('kubectl', ['--kubeconfig', api.cp.adminKubeconfig, 'get', 'svcann', '-A'], { timeout: 60_000 });
    const [header, ...rows] = stdout.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAMESPACE', 'NAME', 'SERVICE', 'NODE', 'ADDRESSES', 'REASON', 'SINCE']);
    const row = rows.find((r) => r.startsWith('x '))!;
    expect(row).toContain('web.n1');
    // A list column prints as JSON (docs/services.md shows it so).
    expect(row).toContain(`["${ip}"]`);
    expect(row).toContain(REASON);

    const ev = await until('event', async () => (await api.events('x', 'web')).find((e) => e.reason === 'AnnouncerChanged'));
    expect(ev).toMatchObject({ type: 'Normal', note: `${ip} announced by n1: ${REASON}` });

    // Letting go removes the record.
    a.holding(ip, 'eth0', { holding: false, reason: 'service IP moved' });
    await until('record gone', async () => !(await anns('x')).some((o) => o.metadata.name === 'web.n1'));
    await a.finish(1_000);
  });

  it('at start, this node deletes what an earlier run left and leaves other nodes alone', async () => {
    const svc = await createSvc('y', 'db');
    const leftover = (node: string) => ({
      apiVersion: 'vipd.io/v1alpha1',
      kind: 'ServiceAnnouncement',
      metadata: { name: `db.${node}`, namespace: 'y', labels: { 'vipd.io/node': node, 'vipd.io/service-name': 'db' }, ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'db', uid: svc.metadata.uid }] },
      status: { node, serviceName: 'db', serviceNamespace: 'y', addresses: ['198.18.0.135'], reason: 'old', since: '2026-01-01T00:00:00Z' },
    });
    await req('POST', `${ANN}/namespaces/y/serviceannouncements`, leftover('n1'));
    await req('POST', `${ANN}/namespaces/y/serviceannouncements`, leftover('n9'));
    const a = announcer();
    await until('own leftover deleted', async () => !(await anns('y')).some((o) => o.metadata.name === 'db.n1'));
    expect((await anns('y')).map((o) => o.metadata.name)).toEqual(['db.n9']);
    await a.finish(1_000);
  });

  it('a record deleted under it (the Service was re-created, GC) is written again', async () => {
    await createSvc('y', 'cache');
    await until('cache allocated', async () => (await ingress('y', 'cache')).length > 0);
    const ip = (await ingress('y', 'cache'))[0]!;
    await until('cache placed', async () => ctl.desired().includes(ip));
    const a = announcer();
    a.holding(ip, 'eth0', { holding: true, reason: REASON });
    await until('record', async () => (await anns('y')).some((o) => o.metadata.name === 'cache.n1'));
    await req('DELETE', `${ANN}/namespaces/y/serviceannouncements/cache.n1`);
    // Any later change makes the next pass; an update of a gone object relists and creates it again.
    a.holding(ip, 'eth0', { holding: true, reason: 'renewed' });
    const obj = await until('recreated', async () => (await anns('y')).find((o) => o.metadata.name === 'cache.n1' && o.status?.reason === 'renewed'));
    expect(obj.status?.addresses).toEqual([ip]);
    await a.finish(1_000);
  });
});
