/**
 * Kubernetes Events against a real kube-apiserver, with the vipd ServiceAccount's rights: repeats
 * of one Event become a series on the first object (events.k8s.io series.count), with bounded
 * writes, and an Event that went away is created again.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiClient } from '../../src/k8s/client.js';
import { EventRecorder, type EventInput } from '../../src/k8s/events.js';
import { startControlPlane, type ControlPlane } from '../../lab/apiserver.js';
import { createLogger } from '../../src/observe/log.js';
import { describeWithApi } from '../lab/with-api.js';

const log = createLogger(process.env.VIPD_TEST_LOG ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ListedEvent {
  metadata: { name: string };
  reason: string;
  note: string;
  series?: { count: number; lastObservedTime: string };
}

describeWithApi('Kubernetes Events against kube-apiserver', (assetsDir) => {
  let cp: ControlPlane;
  let client: ApiClient;
  let n = 0;

  beforeAll(async () => {
    cp = await startControlPlane({ assetsDir, servers: [{}] });
    client = await ApiClient.create({ kubeconfigPath: await cp.serviceAccountKubeconfig(), localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
  }, 240_000);

  afterAll(async () => {
    client?.close();
    await cp?.destroy();
  }, 60_000);

  const recorderFor = (name: string, writeMs: number) =>
    new EventRecorder({ client, instance: 'n1', regarding: () => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'kube-system', name }), log, seriesWriteMs: writeMs });
  const list = async (name: string): Promise<ListedEvent[]> => {
    const r = await cp.request('GET', `/apis/events.k8s.io/v1/namespaces/kube-system/events?fieldSelector=regarding.name=${name}`);
    expect(r.status).toBe(200);
    return (JSON.parse(r.body) as { items: ListedEvent[] }).items;
  };
  const lost: EventInput = { type: 'Warning', reason: 'LeaseLost', action: 'StepDown', note: 'n1: renew deadline passed' };
  const acquired: EventInput = { type: 'Normal', reason: 'LeaseAcquired', action: 'Acquire', note: 'n1 acquired Lease' };

  it('a flapping Event is one object whose series counts the repeats; a different note is its own', async () => {
    const lease = `events-series-${n++}`;
    const r = recorderFor(lease, 60_000);
    for (let i = 0; i < 5; i++) {
      r.record(lost);
      r.record(acquired);
    }
    r.record({ ...lost, note: 'n1: local API server unhealthy' });
    await r.flush();
    const items = await list(lease);
    expect(items.map((e) => `${e.reason}:${e.series?.count ?? 1}`).sort()).toEqual(['LeaseAcquired:5', 'LeaseLost:1', 'LeaseLost:5']);
    for (const e of items.filter((x) => x.series)) expect(e.series!.lastObservedTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  }, 30_000);

  it('a burst of repeats is one write queued, not one each: 200 of them fit a queue of 4 and all are counted', async () => {
    const lease = `events-series-${n++}`;
    const r = new EventRecorder({ client, instance: 'n1', regarding: () => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'kube-system', name: lease }), log, maxPending: 4 });
    for (let i = 0; i < 200; i++) r.record(lost);
    await r.flush();
    const items = await list(lease);
    expect(items).toHaveLength(1);
    expect(items[0]!.series?.count).toBe(200);
  }, 30_000);

  it('after the first repeat, counts are written at most once per interval, the latest count each time', async () => {
    const lease = `events-series-${n++}`;
    const r = recorderFor(lease, 3_000);
    const countIs = async (want: number) => {
      for (let i = 0; i < 100 && (await list(lease))[0]?.series?.count !== want; i++) await sleep(100);
      return (await list(lease))[0]?.series?.count;
    };
    r.record(lost);
    r.record(lost); // the first repeat: written at once
    expect(await countIs(2)).toBe(2);
    r.record(lost);
    r.record(lost);
    expect((await list(lease))[0]?.series?.count).toBe(2); // due at the next slot, seconds away
    expect(await countIs(4)).toBe(4); // written there, without a flush
    expect(await list(lease)).toHaveLength(1);
    await r.flush();
  }, 30_000);

  it('an Event deleted under a series is created again for the next occurrence', async () => {
    const lease = `events-series-${n++}`;
    const r = recorderFor(lease, 60_000);
    r.record(lost);
    await r.flush();
    const [first] = await list(lease);
    expect(first).toBeDefined();
    const del = await cp.request('DELETE', `/apis/events.k8s.io/v1/namespaces/kube-system/events/${first!.metadata.name}`);
    expect(del.status).toBe(200);
    r.record(lost);
    await r.flush();
    const items = await list(lease);
    expect(items).toHaveLength(1);
    expect(items[0]!.metadata.name).not.toBe(first!.metadata.name);
  }, 30_000);
});
