/**
 * Issue 12 end to end: vipd's image as the static pod of three kubeadm control-plane nodes under
 * real kubelets and containerd (lab/cluster.ts). The client reaches the API only through the VIP,
 * with kubeadm's admin.conf. Every scenario runs with the two-holder watch (ARP prober every 10 ms
 * in the client namespace + capture of the hub's bridge) and a kubectl-like client making a request
 * every 50 ms through the VIP, whose longest outage is printed as a JSON row.
 *
 * Scenarios run in order on one cluster (bringing it up takes about a minute); the power-off is
 * last because the node stays off.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_NS,
  VIP,
  down,
  kubeadmReset,
  leftovers,
  nodeExec,
  nodePath,
  powerOff,
  rejoin,
  up,
  vipdContainer,
  vipHolders,
  waitFor,
  watchedLab,
  type Cluster,
  type ClusterAssets,
  type ClusterNode,
} from '../../lab/cluster.js';
import { projectRoot } from '../../lab/k8s-assets.js';
import type { ProbeSummary } from '../../lab/tcpprobe.js';
import { watchWire } from '../../lab/wirewatch.js';
import { describeWithCluster } from '../lab/with-cluster.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/e2e/cluster.lab.test.ts: skipped, the cluster lab needs root');

const TITLE = 'kubeadm cluster: vipd as the static pod of three control-plane nodes';
if (isRoot) describeWithCluster(TITLE, suite);
else describe.skip(TITLE, () => it('runs as root', () => undefined));

function suite(assets: ClusterAssets): void {
  let c: Cluster;
  let nodes: ClusterNode[];

  beforeAll(async () => {
    await down({ log: () => undefined }); // a cluster left by a killed run
    c = await up();
    nodes = c.info.nodes;
    console.log(JSON.stringify({ cluster_up: c.timings }));
  }, 900_000);
  afterAll(async () => {
    const problems = await down();
    expect(problems).toEqual([]);
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await nodeExecClient([join(assets.bin, 'kubectl'), '--kubeconfig', c.info.admin_kubeconfig, '--request-timeout=5s', ...args]);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const nodeExecClient = async (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const { run } = await import('../../lab/exec.js');
    return run(['ip', 'netns', 'exec', CLIENT_NS, ...argv], { timeoutMs: 20_000 });
  };
  const holder = async (): Promise<ClusterNode> => {
    let h: string[] = [];
    await waitFor('exactly one VIP holder', 60_000, async () => (h = await vipHolders(nodes)).length === 1);
    return nodes.find((n) => n.name === h[0])!;
  };
  const apiOk = (): Promise<number> =>
    waitFor('the API through the VIP', 90_000, async () => (await kubectl('get', '--raw', '/readyz')).trim() === 'ok', 200);

  /** Runs fn under the two-holder watch and the 50 ms API client; returns the client's summary. */
  const scenario = async (name: string, fn: () => Promise<void>): Promise<ProbeSummary> => {
    const wire = await watchWire(watchedLab(), [VIP], 10);
    const api = startApiProbe(c.info.admin_kubeconfig);
    await api.ready;
    await sleep(1000);
    let summary: ProbeSummary;
    try {
      await fn();
      await sleep(2000);
    } finally {
      summary = await api.stop();
      const { events } = await wire.stop();
      console.log(JSON.stringify({ system: 'vipd-kubeadm', scenario: name, api_longest_outage_ms: summary.longestGapMs, api_failed: summary.failed, api_ok: summary.ok, two_holder_events: events.length }));
      expect(events, 'two holders seen on the wire').toEqual([]);
    }
    return summary;
  };

  it('the VIP answers from exactly one node, and kubectl works through it', async () => {
    const h = await holder();
    const s = await scenario('steady', async () => {
      await sleep(3000);
    });
    expect(s.failed).toBe(0);
    expect(s.ok).toBeGreaterThan(40);
    // Mirror pods of vipd's static pod, one per node, all running.
    const pods = JSON.parse(await kubectl('-n', 'kube-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=vipd', '-o', 'json')) as { items: Array<{ spec: { nodeName: string }; status: { phase: string } }> };
    expect(pods.items.map((p) => p.spec.nodeName).sort()).toEqual(nodes.map((n) => n.name).sort());
    expect(pods.items.every((p) => p.status.phase === 'Running')).toBe(true);
    const nodeList = JSON.parse(await kubectl('get', 'nodes', '-o', 'json')) as { items: unknown[] };
    expect(nodeList.items).toHaveLength(3);
    expect((await kubectl('-n', 'kube-system', 'get', 'lease', 'plndr-cp-lock', '-o', 'jsonpath={.spec.holderIdentity}')).trim()).toBe(h.name);
    expect(await vipHolders(nodes)).toEqual([h.name]);
  });

  it('the VIP is answered by the holder alone on the wire', async () => {
    const h = await holder();
    const wire = await watchWire(watchedLab(), [VIP], 10);
    await sleep(2000);
    const { events, records } = await wire.stop();
    expect(events).toEqual([]);
    const answered = (records.get(VIP) ?? []).filter((r) => r.answers.length > 0);
    expect(answered.length).toBeGreaterThan(100);
    expect(new Set(answered.flatMap((r) => r.answers.map((a) => a.mac)))).toEqual(new Set([h.mac]));
    // One MAC per request (the holder may answer a request twice, e.g. a reply and an announcement).
    expect(answered.every((r) => new Set(r.answers.map((a) => a.mac)).size === 1)).toBe(true);
  });

  it('the kubelet restarts a killed vipd container, without a second holder', async () => {
    const h = await holder();
    const before = await vipdContainer(h, assets);
    expect(before).toBeDefined();
    await scenario('vipd container kill', async () => {
      const r = await nodeExec(h, ['crictl', 'inspect', '-o', 'go-template', '--template', '{{.info.pid}}', before!.id], assets);
      const pid = Number(r.stdout.trim());
      expect(pid).toBeGreaterThan(1);
      process.kill(pid, 'SIGKILL');
      await waitFor('the kubelet restarting vipd', 60_000, async () => ((await vipdContainer(h, assets))?.attempt ?? -1) > before!.attempt);
      await holder();
      await apiOk();
    });
    expect(await vipHolders(nodes)).toHaveLength(1);
  }, 180_000);

  it("removing vipd's manifest from the holder hands over; putting it back rejoins", async () => {
    const h = await holder();
    const manifest = join(nodePath(h, '/etc/kubernetes'), 'manifests', 'vipd.yaml');
    const aside = join(nodePath(h, '/etc/kubernetes'), 'vipd.yaml.aside');
    await scenario('manifest removal', async () => {
      await rename(manifest, aside);
      await waitFor('another node holding the VIP', 60_000, async () => {
        const now = await vipHolders(nodes);
        return now.length === 1 && now[0] !== h.name;
      });
      await apiOk();
    });
    await rename(aside, manifest);
    await waitFor('vipd running again on the old holder', 120_000, async () => (await vipdContainer(h, assets)) !== undefined);
    await holder();
  }, 240_000);

  it('kubeadm reset of the holder hands over, leaves no VIP on its lo, and the node re-joins through the VIP', async () => {
    const h = await holder();
    let resetMs = 0;
    let loClearMs = 0;
    let joinMs = 0;
    await scenario('kubeadm reset + re-join', async () => {
      const t0 = Date.now();
      const r = await kubeadmReset(c, h);
      expect(r.code, r.stderr).toBe(0);
      resetMs = Date.now() - t0;
      await waitFor('another node holding the VIP', 60_000, async () => {
        const now = await vipHolders(nodes.filter((n) => n !== h));
        return now.length === 1;
      });
      await apiOk();
      // vipd was SIGKILLed with the pod: the address must leave lo by its kernel lifetime, or the
      // node would deliver VIP traffic to itself and its re-join would hang.
      await waitFor(`the VIP gone from ${h.name}'s lo`, 30_000, async () => !(await vipHolders([h])).includes(h.name));
      loClearMs = Date.now() - t0;
      joinMs = await rejoin(c, h);
      await waitFor(`vipd running again on ${h.name}`, 120_000, async () => (await vipdContainer(h, assets)) !== undefined);
      await holder();
      await apiOk();
    });
    console.log(JSON.stringify({ kubeadm_reset_ms: resetMs, vip_off_lo_after_reset_ms: loClearMs, rejoin_ms: joinMs }));
    const etcd = JSON.parse(await kubectl('-n', 'kube-system', 'get', 'pods', '-l', 'component=etcd', '-o', 'json')) as { items: unknown[] };
    expect(etcd.items).toHaveLength(3);
  }, 400_000);

  it("powering the holder's node off: the API answers again through the VIP", async () => {
    const h = await holder();
    const s = await scenario('node power-off', async () => {
      await powerOff(h);
      await waitFor('another node holding the VIP', 60_000, async () => {
        const now = await vipHolders(nodes.filter((n) => n !== h));
        return now.length === 1;
      });
      await apiOk();
    });
    expect(s.longestGapMs).not.toBeNull();
    expect(existsSync(c.info.admin_kubeconfig)).toBe(true);
  }, 240_000);
}

function startApiProbe(kubeconfig: string): { ready: Promise<void>; stop(): Promise<ProbeSummary> } {
  const cli = join(projectRoot(), 'dist/lab/apiprobe-cli.js');
  const child = spawn('ip', ['netns', 'exec', CLIENT_NS, process.execPath, cli, '--kubeconfig', kubeconfig, '--interval', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('probing ')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`apiprobe exited ${code}: ${err}`)));
  });
  return {
    ready,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('close', r));
      return JSON.parse(out.trim().split('\n').pop() ?? '{}') as ProbeSummary;
    },
  };
}
