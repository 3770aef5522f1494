/**
 * The garbage collector of a real kube-controller-manager against a real kube-apiserver + etcd:
 * a ServiceAnnouncement that vipd wrote is removed when its Service is deleted, with no agent left
 * to remove it (the agent was stopped without its last writes, as a crash or a lost node leaves
 * it). What makes that work is only the ownerReference vipd writes (apiVersion, kind, name, uid of
 * the Service), so this is the test that it is one the collector honours.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ServicesController } from '../../src/services/controller.js';
import { ServiceAnnouncer } from '../../src/services/announcements.js';
import { apiAssets, controllerManagerBinary } from '../../lab/k8s-assets.js';
import { startControllerManager, type ControllerManager } from '../../lab/controller-manager.js';
import { describeRequiring } from '../lab/requires.js';
import { log, useServicesApi } from './with-services-api.js';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const ANN = '/apis/vipd.io/v1alpha1';

const api = apiAssets();
const kcm = controllerManagerBinary();
const found =
  'dir' in api && 'bin' in kcm ? { ok: true as const, assets: { dir: api.dir, kcm: kcm.bin } } : { ok: false as const, skip: 'skip' in api ? api.skip : (kcm as { skip: string }).skip };

describeRequiring('ServiceAnnouncement garbage collection by kube-controller-manager', found, { needs: 'kube-apiserver, etcd and kube-controller-manager', skipping: 'the owner-GC suite', warn: () => true, unused: { dir: '', kcm: '' } }, (assets) => {
  const sapi = useServicesApi({ assetsDir: assets.dir, namespaces: ['gc'] });
  const { req, until, createSvc } = sapi;
  let ctl: ServicesController;
  let cm: ControllerManager | undefined;

  beforeAll(async () => {
    await exec('kubectl', ['--kubeconfig', sapi.cp.adminKubeconfig, 'apply', '-f', join(ROOT, 'manifests', 'vipd-crds.yaml')], { timeout: 60_000 });
    await until('served', async () => (await sapi.cp.request('GET', `${ANN}/serviceannouncements`)).status === 200);
    await sapi.applyPools({ 'cidr-global': '198.18.0.136/29' });
    cm = startControllerManager(sapi.cp, assets.kcm, ['garbagecollector']);
    ctl = new ServicesController({ client: sapi.client, nodeName: 'n1', log, debounceMs: 20 });
    ctl.setMembers(['n1']);
    ctl.setAllocator(true);
    sapi.start(ctl);
  }, 120_000);

  afterAll(async () => {
    await cm?.stop();
  }, 30_000);

  it('deleting the Service removes the record a stopped agent left behind', async () => {
    const svc = await createSvc('gc', 'web');
    const ip = await until('web allocated', async () => sapi.ingress(await sapi.getSvc('gc', 'web'))[0]);
    await until('web placed', async () => ctl.desired().includes(ip));
    const a = new ServiceAnnouncer({ client: sapi.client, node: 'n1', source: ctl, log, retryMs: 100, requestTimeoutMs: 5_000 });
    const running = sapi.start(a);
    a.holding(ip, 'eth0', { holding: true, reason: 'service IP granted by a majority of the voters' });
    const anns = async () => ((await req('GET', `${ANN}/namespaces/gc/serviceannouncements`)) as { items: Array<{ metadata: { name: string; ownerReferences?: Array<{ uid: string }> } }> }).items;
    const rec = await until('record', async () => (await anns()).find((o) => o.metadata.name === 'web.n1'));
    expect(rec.metadata.ownerReferences?.[0]?.uid).toBe(svc.metadata.uid);

    // The agent goes without its last writes (stop skips them): the record stays.
    running.stop.abort();
    await running.done;
    expect((await anns()).map((o) => o.metadata.name)).toEqual(['web.n1']);

    await req('DELETE', '/api/v1/namespaces/gc/services/web');
    await until('record collected', async () => (await anns()).length === 0, 90_000, 250).catch((err: unknown) => {
      throw new Error(`${String(err)}; kube-controller-manager said: ${cm?.logTail(40)}`);
    });
  }, 150_000);
});
