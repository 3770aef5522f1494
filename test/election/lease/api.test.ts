/**
 * The Lease elector against a REAL kube-apiserver + etcd (three API servers sharing one etcd, on
 * loopback), with the vipd ServiceAccount's credentials, i.e. exactly the RBAC users grant.
 * Timings 3 s / 2 s / 0.5 s. Times are performance.now() in this process.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ApiClient, normalizeEndpoint } from '../../../src/k8s/client.js';
import { EventRecorder } from '../../../src/k8s/events.js';
import { ApiLeaseStore } from '../../../src/election/lease/store.js';
import { LeaseElector } from '../../../src/election/lease/elector.js';
import { buildLeaseElection } from '../../../src/election/lease/setup.js';
import { validateLeaseTiming } from '../../../src/election/lease/state.js';
import type { Verdict } from '../../../src/election/types.js';
import { LivezProbe, type HealthGate } from '../../../src/health/livez.js';
import { startControlPlane, type ApiServerHandle, type ControlPlane } from '../../../lab/apiserver.js';
import { createLogger } from '../../../src/observe/log.js';
import { describeWithApi } from '../../lab/with-api.js';

const LD = 3000;
const RD = 2000;
const RP = 500;
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = createLogger(process.env.VIPD_TEST_LOG ?? 'silent');

interface TestNode {
  name: string;
  client: ApiClient;
  elector: LeaseElector;
  recorder: EventRecorder;
  verdicts: Array<{ at: number; v: Verdict }>;
  ac: AbortController;
  done: Promise<void>;
  holding(): boolean;
  firstHoldAfter(t: number): number | undefined;
  firstStandbyAfter(t: number): number | undefined;
  lastHold(): { at: number; until: number } | undefined;
  stop(): Promise<void>;
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = now() + timeoutMs;
  while (!cond()) {
    if (now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
}

describeWithApi('Lease elector against kube-apiserver', (assetsDir) => {
  let cp: ControlPlane;
  let saKubeconfig: string;
  let leaseN = 0;
  let lease = '';
  const nodes: TestNode[] = [];
  const measured: Record<string, number[]> = {};
  const measure = (k: string, v: number) => (measured[k] ??= []).push(Math.round(v * 10) / 10);

  beforeAll(async () => {
    cp = await startControlPlane({
      assetsDir,
      servers: [{}, {}, {}],
    });
    saKubeconfig = await cp.serviceAccountKubeconfig();
  }, 240_000);

  afterAll(async () => {
    await cp?.destroy();
    // eslint-disable-next-line no-console
    console.log(`[lease-api] measured (ms): ${JSON.stringify(measured)}`);
  }, 60_000);

  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.stop();
    for (const s of cp.servers) {
      if (s.state === 'frozen') s.thaw();
      if (s.state === 'stopped') await s.start();
    }
  }, 120_000);

  function nextLease(): string {
    lease = `vip-test-${++leaseN}`;
    return lease;
  }

  async function node(
    name: string,
    local: ApiServerHandle,
    opts: { extra?: ApiServerHandle[]; gate?: HealthGate; releaseOnCancel?: boolean; kubeconfig?: string; watch?: boolean } = {},
  ): Promise<TestNode> {
    const client = await ApiClient.create({
      kubeconfigPath: opts.kubeconfig ?? saKubeconfig,
      localEndpoint: local.url,
      extraEndpoints: (opts.extra ?? []).map((s) => s.url),
      discoverEndpoints: false,
      requestTimeoutMs: RP,
      log: log.child({ node: name }),
    });
    const store = new ApiLeaseStore({ client, namespace: 'kube-system', name: lease, requestTimeoutMs: RP });
    const recorder = new EventRecorder({
      client,
      instance: name,
      regarding: () => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'kube-system', name: lease }),
      log,
    });
    const elector = new LeaseElector({
      store,
      identity: name,
      leaseDurationMs: LD,
      renewDeadlineMs: RD,
      retryPeriodMs: RP,
      events: recorder,
      log: log.child({ node: name }),
      ...(opts.gate ? { gate: opts.gate } : {}),
      ...(opts.releaseOnCancel === undefined ? {} : { releaseOnCancel: opts.releaseOnCancel }),
      ...(opts.watch === undefined ? {} : { watch: opts.watch }),
    });
    const verdicts: TestNode['verdicts'] = [];
    elector.onVerdict((v) => {
      verdicts.push({ at: now(), v });
    });
    const ac = new AbortController();
    const done = elector.run(ac.signal);
    const n: TestNode = {
      name,
      client,
      elector,
      recorder,
      verdicts,
      ac,
      done,
      holding: () => verdicts.at(-1)?.v.kind === 'hold',
      firstHoldAfter: (t) => verdicts.find((x) => x.at >= t && x.v.kind === 'hold')?.at,
      firstStandbyAfter: (t) => verdicts.find((x) => x.at >= t && x.v.kind === 'standby')?.at,
      lastHold: () => {
        const h = [...verdicts].reverse().find((x) => x.v.kind === 'hold');
        return h && h.v.kind === 'hold' ? { at: h.at, until: h.v.until } : undefined;
      },
      stop: async () => {
        ac.abort();
        await done;
        await recorder.flush();
        client.close();
      },
    };
    nodes.push(n);
    return n;
  }

  async function readLease(via?: ApiServerHandle): Promise<{ holderIdentity: string; transitions: number; rv: string; labels: Record<string, string> }> {
    const r = await cp.request('GET', `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${lease}`, undefined, via);
    expect(r.status).toBe(200);
    const l = JSON.parse(r.body) as { metadata: { resourceVersion: string; labels?: Record<string, string> }; spec: { holderIdentity?: string; leaseTransitions?: number } };
    return { holderIdentity: l.spec.holderIdentity ?? '', transitions: l.spec.leaseTransitions ?? 0, rv: l.metadata.resourceVersion, labels: l.metadata.labels ?? {} };
  }

  it('three electors on one API: exactly one holds, the Lease names it, the others stand by naming it', async () => {
    nextLease();
    const s0 = cp.servers[0]!;
    const ns = await Promise.all(['n1', 'n2', 'n3'].map((x) => node(x, s0)));
    await waitFor(() => ns.some((n) => n.holding()), 10_000, 'a holder');
    await sleep(2 * RP + 200);
    const holders = ns.filter((n) => n.holding());
    expect(holders.map((h) => h.name)).toHaveLength(1);
    const h = holders[0]!;
    const l = await readLease();
    expect(l.holderIdentity).toBe(h.name);
    expect(l.transitions).toBe(0);
    for (const o of ns.filter((n) => n !== h)) expect(o.verdicts.at(-1)?.v).toMatchObject({ kind: 'standby', leader: h.name });
    // Renewals every retryPeriod, each grant = send time + renewDeadline.
    const holds = h.verdicts.filter((x) => x.v.kind === 'hold');
    expect(holds.length).toBeGreaterThanOrEqual(2);
    for (const x of holds) if (x.v.kind === 'hold') expect(x.v.until).toBeLessThanOrEqual(x.at + RD);
  }, 60_000);

  it('optimistic concurrency on the real API: an update with a read resourceVersion wins once, the stale one gets LeaseConflictError', async () => {
    nextLease();
    const client = await ApiClient.create({ kubeconfigPath: saKubeconfig, localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
    try {
      const { ApiLeaseStore: Store, LeaseConflictError } = await import('../../../src/election/lease/store.js');
      const { claimSpec } = await import('../../../src/election/lease/state.js');
      const store = new Store({ client, namespace: 'kube-system', name: lease });
      const sig = () => AbortSignal.timeout(5000);
      expect(await store.get(sig())).toBeUndefined();
      const created = await store.create(claimSpec(undefined, 'x', Date.now(), LD), sig());
      await expect(store.create(claimSpec(undefined, 'y', Date.now(), LD), sig())).rejects.toBeInstanceOf(LeaseConflictError);
      const won = await store.update(created.resourceVersion, claimSpec(created, 'y', Date.now(), LD), sig());
      expect(won).toMatchObject({ holderIdentity: 'y', transitions: 1, leaseDurationSeconds: 3 });
      expect(won.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/); // MicroTime
      await expect(store.update(created.resourceVersion, claimSpec(created, 'z', Date.now(), LD), sig())).rejects.toBeInstanceOf(LeaseConflictError);
      expect((await readLease()).holderIdentity).toBe('y');
    } finally {
      client.close();
    }
  }, 30_000);

  it('release on shutdown: the watching candidate takes over within milliseconds; leaseTransitions counts each handover', async () => {
    nextLease();
    const s0 = cp.servers[0]!;
    const a = await node('a', s0);
    await waitFor(() => a.holding(), 10_000, 'a holds');
    const b = await node('b', s0);
    const c = await node('c', s0);
    await waitFor(() => [b, c].every((n) => n.elector.status().leader === 'a'), 5000, 'b, c see a');
    await sleep(RP);
    // First handover: a → (b or c).
    const t0 = now();
    await a.stop();
    await waitFor(() => b.holding() || c.holding(), 5000, 'a takeover');
    const winner = b.holding() ? b : c;
    const takeover = winner.firstHoldAfter(t0)!;
    expect(a.firstStandbyAfter(t0)!).toBeLessThan(takeover); // standby first, then release
    measure('abort → new holder verdict', takeover - t0);
    expect(takeover - t0).toBeLessThan(RP);
    expect(await readLease()).toMatchObject({ holderIdentity: winner.name, transitions: 1 });
    // Second handover: winner → the last one.
    const last = winner === b ? c : b;
    const t1 = now();
    await winner.stop();
    await waitFor(() => last.holding(), 5000, 'second takeover');
    measure('abort → new holder verdict', last.firstHoldAfter(t1)! - t1);
    expect(last.firstHoldAfter(t1)! - t1).toBeLessThan(RP);
    expect(await readLease()).toMatchObject({ holderIdentity: last.name, transitions: 2 });
    // Events were written for the Lease with the ServiceAccount's RBAC.
    await Promise.all(nodes.map((n) => n.recorder.flush()));
    const ev = await cp.request('GET', `/apis/events.k8s.io/v1/namespaces/kube-system/events?fieldSelector=regarding.name=${lease}`);
    const reasons = (JSON.parse(ev.body) as { items: Array<{ reason: string; reportingInstance: string }> }).items.map((i) => `${i.reportingInstance}:${i.reason}`);
    expect(reasons.sort()).toEqual(['a:LeaseAcquired', 'a:LeaseReleased', `${winner.name}:LeaseHandover`, `${winner.name}:LeaseReleased`, `${last.name}:LeaseHandover`].sort());
  }, 60_000);

  it('kill (no release): another node acquires exactly leaseDuration after it last saw the Lease change', async () => {
    nextLease();
    const s0 = cp.servers[0]!;
    const a = await node('a', s0, { releaseOnCancel: false });
    await waitFor(() => a.holding(), 10_000, 'a holds');
    const b = await node('b', s0);
    await waitFor(() => b.verdicts.at(-1)?.v.kind === 'standby' && b.elector.status().leader === 'a', 5000, 'b sees a');
    await sleep(RP * 2);
    // Track b's local observation time of the record, up to its takeover.
    let lastObserved = 0;
    const track = setInterval(() => {
      const s = b.elector.status();
      if (s.role === 'candidate' && s.leader === 'a' && s.observedAt !== undefined) lastObserved = s.observedAt;
    }, 1);
    const killedAt = now();
    await a.stop();
    await waitFor(() => b.holding(), LD + 3000, 'b acquires');
    clearInterval(track);
    const acquired = b.firstHoldAfter(killedAt)!;
    const since = acquired - lastObserved;
    measure('kill→takeover (after last observed change)', since);
    measure('kill→takeover (after kill)', acquired - killedAt);
    expect(since).toBeGreaterThanOrEqual(LD);
    expect(since).toBeLessThan(LD + 400); // a timer at the expiry, not the next poll (which could be 1100 ms later)
    expect((await readLease()).holderIdentity).toBe('b');
  }, 60_000);

  it('stale resourceVersion: a write by someone else makes the holder re-read and keep the Lease (and the other writer\'s labels)', async () => {
    nextLease();
    // Without the watch the holder cannot learn of the other write before its next renew, so that
    // renew certainly carries a stale resourceVersion, gets 409, re-reads and retries (client-go's slow path).
    const a = await node('a', cp.servers[0]!, { watch: false });
    await waitFor(() => a.holding(), 10_000, 'a holds');
    const heldSince = now();
    const before = await readLease();
    // Another writer (an admin) updates the Lease: read, change a label, write back with its resourceVersion.
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${lease}`;
    const obj = JSON.parse((await cp.request('GET', path)).body) as { metadata: { labels?: Record<string, string> } };
    obj.metadata.labels = { ...(obj.metadata.labels ?? {}), touched: 'yes' };
    const put = await cp.request('PUT', path, obj);
    expect(put.status).toBe(200);
    await sleep(3 * RP);
    const after = await readLease();
    expect(after.holderIdentity).toBe('a');
    expect(after.labels).toMatchObject({ touched: 'yes' });
    expect(BigInt(after.rv)).toBeGreaterThan(BigInt(before.rv) + 1n);
    expect(a.firstStandbyAfter(heldSince)).toBeUndefined();
  }, 60_000);

  it('freeze (SIGSTOP) the holder\'s API server: the holder stands by at its deadline, before anyone can acquire; others take over via their own API servers', async () => {
    nextLease();
    const [s0, s1, s2] = cp.servers as [ApiServerHandle, ApiServerHandle, ApiServerHandle];
    const a = await node('a', s0);
    await waitFor(() => a.holding(), 10_000, 'a holds');
    const b = await node('b', s1);
    const c = await node('c', s2);
    await waitFor(() => [b, c].every((n) => n.elector.status().leader === 'a'), 5000, 'b, c see a');
    await sleep(RP * 2);
    const frozenAt = now();
    s0.freeze();
    await waitFor(() => b.holding() || c.holding(), LD + 5000, 'b or c acquires');
    const winner = b.holding() ? b : c;
    const acquiredAt = winner.firstHoldAfter(frozenAt)!;
    const standbyAt = a.firstStandbyAfter(frozenAt)!;
    const lastHold = a.verdicts.filter((x) => x.at < standbyAt && x.v.kind === 'hold').at(-1)!;
    const until = lastHold.v.kind === 'hold' ? lastHold.v.until : NaN;
    measure('freeze: holder standby − its deadline', standbyAt - until);
    measure('freeze: other acquire − holder standby', acquiredAt - standbyAt);
    measure('freeze→takeover', acquiredAt - frozenAt);
    expect(standbyAt).toBeGreaterThanOrEqual(until - 1);
    expect(standbyAt - until).toBeLessThan(250);
    expect(standbyAt).toBeLessThan(acquiredAt);
    // The margin is at least leaseDuration − renewDeadline − (time the last renew took to be seen).
    expect(acquiredAt - standbyAt).toBeGreaterThan(LD - RD - RP);
    expect((await readLease(s1)).holderIdentity).toBe(winner.name);
    s0.thaw();
    await waitFor(() => a.elector.status().leader === winner.name, 10_000, 'a sees the new holder after thaw');
    expect(a.holding()).toBe(false);
  }, 90_000);

  it('endpoint failover: the holder\'s own API server freezes, it keeps renewing through another one without a gap', async () => {
    nextLease();
    const [s0, s1, s2] = cp.servers as [ApiServerHandle, ApiServerHandle, ApiServerHandle];
    const a = await node('a', s0, { extra: [s1, s2] });
    await waitFor(() => a.holding(), 10_000, 'a holds');
    const b = await node('b', s1);
    await waitFor(() => b.elector.status().leader === 'a', 5000, 'b sees a');
    const t0 = now();
    s0.freeze();
    await sleep(LD + 2 * RP);
    expect(a.firstStandbyAfter(t0)).toBeUndefined();
    expect(a.holding()).toBe(true);
    const holdsAfter = a.verdicts.filter((x) => x.at > t0 && x.v.kind === 'hold');
    expect(holdsAfter.length).toBeGreaterThan(3);
    // The grant never lapsed: each hold came before the previous deadline.
    let prevUntil = a.verdicts.filter((x) => x.at <= t0 && x.v.kind === 'hold').at(-1)!;
    for (const h of holdsAfter) {
      if (prevUntil.v.kind === 'hold') expect(h.at).toBeLessThan(prevUntil.v.until);
      prevUntil = h;
    }
    expect(a.client.endpoints()[0]).not.toBe(normalizeEndpoint(s0.url));
    expect((await readLease(s1)).holderIdentity).toBe('a');
    expect(b.holding()).toBe(false);
    // Stopped (connection refused) instead of frozen: same.
    s0.thaw();
    await s0.stop();
    const t1 = now();
    await sleep(2 * RP);
    expect(a.firstStandbyAfter(t1)).toBeUndefined();
  }, 90_000);

  it('health gate: the holder\'s local API server stops answering /livez → standby at once, release via another endpoint, another node acquires', async () => {
    nextLease();
    const [s0, s1] = cp.servers as [ApiServerHandle, ApiServerHandle];
    const probeClient = await ApiClient.create({ kubeconfigPath: saKubeconfig, localEndpoint: s0.url, discoverEndpoints: false, log });
    const probe = new LivezProbe({
      url: `${s0.url}/livez`,
      intervalMs: 200,
      timeoutMs: 300,
      failureThreshold: 2,
      requestOptions: () => probeClient.httpsOptions(s0.url),
      log,
    });
    const pac = new AbortController();
    const probing = probe.run(pac.signal);
    try {
      await waitFor(() => probe.healthy(), 10_000, 'livez healthy');
      const a = await node('a', s0, { extra: [s1], gate: probe });
      await waitFor(() => a.holding(), 10_000, 'a holds');
      const b = await node('b', s1);
      await waitFor(() => b.elector.status().leader === 'a', 5000, 'b sees a');
      let unhealthyAt = 0;
      probe.onChange((h) => {
        if (!h) unhealthyAt = now();
      });
      const t0 = now();
      await s0.stop(); // the API server dies; the agent (this process) is fine
      await waitFor(() => b.holding(), LD, 'b acquires');
      const standbyAt = a.firstStandbyAfter(t0)!;
      const acquiredAt = b.firstHoldAfter(t0)!;
      expect(unhealthyAt).toBeGreaterThan(0);
      expect(standbyAt - unhealthyAt).toBeLessThan(20);
      expect(standbyAt).toBeLessThan(acquiredAt);
      measure('health gate: unhealthy → other acquires', acquiredAt - unhealthyAt);
      expect(acquiredAt - unhealthyAt).toBeLessThan(LD); // released, not expired
      expect((await readLease(s1)).holderIdentity).toBe('b');
      // Healthy again: a campaigns, but b keeps the Lease (no preemption).
      await s0.start();
      await waitFor(() => probe.healthy(), 20_000, 'livez healthy again');
      await sleep(LD);
      expect(b.holding()).toBe(true);
      expect(a.holding()).toBe(false);
    } finally {
      pac.abort();
      await probing;
      probeClient.close();
    }
  }, 120_000);

  it('buildLeaseElection: kubeconfig naming the VIP, local endpoint + livez gate, acquires, then releases on abort', async () => {
    nextLease();
    const s0 = cp.servers[0]!;
    const token = await cp.serviceAccountToken();
    const vipKubeconfig = await cp.kubeconfigFor('https://198.18.0.100:6443', { token }); // never dialed
    const client = await ApiClient.create({ kubeconfigPath: vipKubeconfig, localEndpoint: s0.url, discoverEndpoints: false, log });
    const setup = buildLeaseElection({
      client,
      identity: 'wired',
      namespace: 'kube-system',
      name: lease,
      timing: validateLeaseTiming({ leaseDurationMs: LD, renewDeadlineMs: RD, retryPeriodMs: RP }),
      livez: { intervalMs: 200 },
      log,
    });
    const verdicts: Verdict[] = [];
    setup.elector.onVerdict((v) => {
      verdicts.push(v);
    });
    const ac = new AbortController();
    const running = Promise.all([setup.run(ac.signal), client.run(ac.signal)]).finally(() => client.close());
    await waitFor(() => verdicts.at(-1)?.kind === 'hold', 10_000, 'wired holds');
    expect(setup.probe?.healthy()).toBe(true);
    expect((await readLease()).holderIdentity).toBe('wired');
    ac.abort();
    await running;
    expect(verdicts.at(-1)?.kind).toBe('standby');
    expect((await readLease()).holderIdentity).toBe('');
    const ev = await cp.request('GET', `/apis/events.k8s.io/v1/namespaces/kube-system/events?fieldSelector=regarding.name=${lease}`);
    const reasons = (JSON.parse(ev.body) as { items: Array<{ reason: string }> }).items.map((i) => i.reason).sort();
    expect(reasons).toEqual(['LeaseAcquired', 'LeaseReleased']);
  }, 60_000);
});
