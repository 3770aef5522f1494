/**
 * `npm run bench:cluster -- [--runs 3]`: failover of vipd as the static pod of three kubeadm
 * control-plane nodes (lab/cluster.ts; needs `npm run cluster:assets` and no cluster up).
 * For each scenario and run: the two-holder watch (ARP prober every 10 ms + capture) and the
 * kubectl-like client (a GET through the VIP every 50 ms); the run's value is the client's longest
 * outage. One JSON row per scenario on stdout:
 * {"system":"vipd-kubeadm","scenario","runs","p50_ms","max_ms","two_holder_events"}; the run goes to
 * bench/results/cluster-<timestamp>.json with its chart (bench/lib/results.ts).
 * The node of a power-off is powered on again (containerd + kubelet from its disk) before the next run.
 */
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from '../lab/exec.js';
import {
  CLIENT_NS,
  VIP,
  down,
  nodeExec,
  nodePath,
  powerOff,
  powerOn,
  startApiProbe,
  up,
  vipdContainer,
  vipHolders,
  waitFor,
  watchedLab,
  type ClusterNode,
} from '../lab/cluster.js';
import { watchWire } from '../lab/wirewatch.js';
import { emitRow, machine, writeResults } from './lib/results.js';

type Scenario = 'vipd container kill' | 'manifest removal' | 'node power-off';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } }, strict: true });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) {
    process.stderr.write('usage: npm run bench:cluster -- [--runs N]\n');
    return 2;
  }
  const started = new Date().toISOString();
  const mach = machine();
  const c = await up();
  const nodes = c.info.nodes;
  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await run(['ip', 'netns', 'exec', CLIENT_NS, join(c.assets.bin, 'kubectl'), '--kubeconfig', c.info.admin_kubeconfig, '--request-timeout=5s', ...args], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(r.stderr.trim());
    return r.stdout;
  };
  const holder = async (among = nodes): Promise<ClusterNode> => {
    let h: string[] = [];
    await waitFor('one VIP holder', 60_000, async () => (h = await vipHolders(among)).length === 1);
    return nodes.find((n) => n.name === h[0])!;
  };
  const apiOk = (): Promise<number> => waitFor('the API through the VIP', 90_000, async () => (await kubectl('get', '--raw', '/readyz')).trim() === 'ok', 200);
  const allApisOk = (): Promise<number> =>
    waitFor('every API server ready', 300_000, async () => {
      for (const n of nodes) if ((await kubectl('--server', `https://${n.ip}:6443`, 'get', '--raw', '/readyz')).trim() !== 'ok') return false;
      for (const n of nodes) if (!(await vipdContainer(n, c.assets))) return false;
      return true;
    }, 500);

  const once = async (scenario: Scenario): Promise<{ ms: number; events: number }> => {
    await allApisOk();
    const h = await holder();
    const others = nodes.filter((n) => n !== h);
    const wire = await watchWire(watchedLab(), [VIP], 10);
    const api = startApiProbe(c.info.admin_kubeconfig);
    await api.ready;
    await new Promise((r) => setTimeout(r, 1000));
    let after: (() => Promise<void>) | undefined;
    let summary: { longestGapMs: number | null } = { longestGapMs: null };
    let events: unknown[] = [];
    try {
      if (scenario === 'vipd container kill') {
        const before = (await vipdContainer(h, c.assets))!;
        const pid = Number((await nodeExec(h, ['crictl', 'inspect', '-o', 'go-template', '--template', '{{.info.pid}}', before.id], c.assets)).stdout.trim());
        process.kill(pid, 'SIGKILL');
        await waitFor('the kubelet restarting vipd', 60_000, async () => ((await vipdContainer(h, c.assets))?.attempt ?? -1) > before.attempt);
      } else if (scenario === 'manifest removal') {
        const m = join(nodePath(h, '/etc/kubernetes'), 'manifests', 'vipd.yaml');
        const aside = join(nodePath(h, '/etc/kubernetes'), 'vipd.yaml.aside');
        await rename(m, aside);
        await holder(others);
        after = async () => {
          await rename(aside, m);
          await waitFor('vipd back', 120_000, async () => (await vipdContainer(h, c.assets)) !== undefined);
        };
      } else {
        await powerOff(h);
        await holder(others);
        after = () => powerOn(c, h);
      }
      await apiOk();
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      summary = await api.stop();
      events = (await wire.stop()).events;
    }
    await after?.();
    return { ms: summary.longestGapMs ?? NaN, events: events.length };
  };

  const rows: object[] = [];
  try {
    for (const scenario of ['vipd container kill', 'manifest removal', 'node power-off'] as Scenario[]) {
      const ms: number[] = [];
      let events = 0;
      for (let i = 0; i < runs; i++) {
        const r = await once(scenario);
        process.stderr.write(`[bench:cluster] ${scenario} run ${i + 1}: ${Math.round(r.ms)} ms, ${r.events} two-holder events\n`);
        ms.push(r.ms);
        events += r.events;
      }
      const sorted = [...ms].sort((a, b) => a - b);
      const p50 = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
      const row = { system: 'vipd-kubeadm', scenario, runs, p50_ms: Math.round(p50), max_ms: Math.round(sorted.at(-1)!), two_holder_events: events };
      rows.push(row);
      emitRow(row);
    }
  } finally {
    await down();
  }
  // Like the other benches: the run in bench/results/, with its chart beside it.
  const file = await writeResults('cluster', { bench: 'cluster', command: ['npm run bench:cluster', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '), started, machine: mach, args: { runs }, rows });
  process.stderr.write(`[bench:cluster] results in ${file}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:cluster: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
