/**
 * `npm run bench:bgp -- [--runs N] [--systems a,b] [--scenarios x,y] [--flows N]`
 *
 * Layer 2 versus BGP with ECMP, side by side in one lab (lab/bgpcluster.ts): three nodes with a
 * kube-apiserver and an FRR each, tor (FRR, multipath, L4 hashing) and the remote client behind
 * it. The client reaches the VIP through tor in every system: by ARP for vipd-l2 (tor accepts
 * gratuitous ARP, as routers do), by the nodes' /32 routes for the BGP systems.
 *
 * Systems: vipd-l2 (vipd's default configuration: peer voting, agent responder), vipd-bgp-bfd
 * (BGP mode, BFD 100 ms x 3 on both ends), vipd-bgp (BGP mode, no BFD, FRR's default timers:
 * hold 180 s). Scenarios: node-down (cable pulled, then every process killed: a power loss) and
 * graceful (SIGTERM to vipd), on the holder (L2) or on one node in turn (BGP); plus `spread`:
 * `--flows` short TCP flows in steady state, counted per node.
 *
 * The outage of a run: from the act until the end of the last failed connection attempt of the
 * TCP prober (one new connection every 10 ms, 100 ms timeout, from remote). With ECMP only the
 * flows hashed to the lost node fail, so this is "until every new flow succeeds again".
 * Prints one JSON row per system and scenario; the whole run goes to bench/results/bgp-*.json.
 */
import type { ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { distEntry } from '../lab/agents.js';
import { NODE_ASN, startBgpCluster, TAG_PORT, type BgpCluster } from '../lab/bgpcluster.js';
import type { LabHost } from '../lab/netns.js';
import type { ProbeRecord } from '../lab/tcpprobe.js';
import { list, posInt, UsageError } from './lib/args.js';
import { lineStream, wallNow } from './lib/benchlab.js';
import { benchArgs, runMain } from './lib/main.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { maxOf, median, roundMs } from './lib/stats.js';

const SYSTEMS = ['vipd-l2', 'vipd-bgp-bfd', 'vipd-bgp'] as const;
type SystemName = (typeof SYSTEMS)[number];
const SCENARIOS = ['node-down', 'graceful', 'spread'] as const;
type Scenario = (typeof SCENARIOS)[number];
const USAGE = `usage: npm run bench:bgp -- [--runs N] [--systems ${SYSTEMS.join(',')}] [--scenarios ${SCENARIOS.join(',')}] [--flows N]`;
const PROBE_INTERVAL_MS = 10;
/** A run ends once the prober has seen this long without a failure. */
const QUIET_MS = 2000;

interface Args {
  runs: number;
  systems: SystemName[];
  scenarios: Scenario[];
  flows: number;
}

function parse(argv: string[]): Args {
  let v: Record<string, string | undefined>;
  try {
    v = parseArgs({ args: argv, options: { runs: { type: 'string' }, systems: { type: 'string' }, scenarios: { type: 'string' }, flows: { type: 'string' } }, strict: true }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    runs: posInt('runs', v.runs, 3, 50),
    systems: list('systems', v.systems, SYSTEMS, SYSTEMS),
    scenarios: list('scenarios', v.scenarios, SCENARIOS, SCENARIOS),
    flows: posInt('flows', v.flows, 1000, 100_000),
  };
}

export interface BgpRow {
  system: SystemName;
  scenario: Scenario;
  runs: number;
  p50_ms: number | null;
  max_ms: number | null;
  flows_per_node: Record<string, number>;
  config: string;
}

/** The TCP prober in remote, streaming its records. */
function startProbe(bc: BgpCluster, records: ProbeRecord[]): ChildProcess {
  const { lab } = bc.cluster;
  const child = lab.spawn(lab.remote!, [process.execPath, distEntry('lab/tcpprobe-cli.js'), '--target', lab.vip4, '--port', String(TAG_PORT), '--interval', String(PROBE_INTERVAL_MS), '--stream']);
  lineStream(child, (l) => {
    try {
      const r = JSON.parse(l) as ProbeRecord & { summary?: unknown };
      if (r.summary === undefined && typeof r.t === 'number') records.push(r);
    } catch {
      // not a record
    }
  });
  return child;
}

interface System {
  name: SystemName;
  config: string;
  start(n: LabHost): void;
  /** The node a run acts on. */
  target(run: number): Promise<LabHost>;
  /** Every node serving again: the VIP held (L2) or one next hop per node (BGP). */
  steady(): Promise<void>;
}

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await fn())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function makeSystem(bc: BgpCluster, name: SystemName): System {
  const { cluster } = bc;
  const nodes = cluster.lab.nodes;
  if (name === 'vipd-l2') {
    return {
      name,
      config: 'vipd defaults: peer voting (vip_peers, E=200 ms), agent responder, ARP through tor',
      start: (n) => void cluster.startAgent(n),
      async target() {
        const h = cluster.holders();
        if (h.length !== 1) throw new Error(`expected one holder, have ${h.join(',') || 'none'}`);
        return cluster.lab.host(h[0]!);
      },
      steady: () => waitFor('one holder', () => cluster.holders().length === 1, 60_000),
    };
  }
  const bfd = name === 'vipd-bgp-bfd';
  return {
    name,
    config: bfd ? `BGP mode, AS ${NODE_ASN} to tor, BFD 100 ms x 3 on both ends, ECMP on tor` : `BGP mode, AS ${NODE_ASN} to tor, no BFD, FRR's default timers (keepalive 60 s, hold 180 s), ECMP on tor`,
    start: (n) => void bc.startAgent(n, { bgp_bfd: String(bfd) }),
    target: (run) => Promise.resolve(nodes[(run - 1) % nodes.length]!),
    steady: () => waitFor('one next hop per node', async () => (await bc.nextHops(cluster.lab.vip4)).length === nodes.length, 240_000),
  };
}

interface RunDetail {
  system: SystemName;
  scenario: Scenario;
  run: number;
  target: string;
  outageMs: number;
  failed: number;
  /** Failed attempts by error code (ETIMEDOUT: no answer within 100 ms; ECONNREFUSED: a node without the VIP). */
  errors: Record<string, number>;
  perNode: Record<string, number>;
}

async function runOnce(bc: BgpCluster, sys: System, scenario: 'node-down' | 'graceful', run: number, records: ProbeRecord[]): Promise<RunDetail> {
  const { cluster } = bc;
  const { lab } = cluster;
  await sys.steady();
  await waitFor('the prober answered for 1 s', () => {
    const recent = records.filter((r) => r.t > wallNow() - 1000);
    return recent.length > 20 && recent.every((r) => r.ok);
  }, 60_000);
  const target = await sys.target(run);
  const t0 = wallNow();
  if (scenario === 'node-down') {
    await lab.linkDown(target);
    await lab.killHost(target);
  } else {
    cluster.agents.get(target.name)!.child.kill('SIGTERM');
  }
  // Done once the prober has been quiet (no failure) for QUIET_MS after the act.
  const deadline = performance.now() + 240_000;
  for (;;) {
    const after = records.filter((r) => r.t >= t0);
    const lastFail = after.filter((r) => !r.ok).at(-1);
    const since = lastFail ? lastFail.t + lastFail.ms : t0;
    if (wallNow() - since > QUIET_MS && after.some((r) => r.ok && r.t > since)) break;
    if (performance.now() > deadline) break;
    await sleep(100);
  }
  const after = records.filter((r) => r.t >= t0);
  const failures = after.filter((r) => !r.ok);
  const lastFail = failures.at(-1);
  const perNode: Record<string, number> = {};
  for (const r of after) if (r.ok && r.node) perNode[r.node] = (perNode[r.node] ?? 0) + 1;
  const errors: Record<string, number> = {};
  for (const r of failures) errors[r.err ?? 'unknown'] = (errors[r.err ?? 'unknown'] ?? 0) + 1;
  const detail: RunDetail = { system: sys.name, scenario, run, target: target.name, outageMs: lastFail ? lastFail.t + lastFail.ms - t0 : 0, failed: failures.length, errors, perNode };
  // Bring the node back as it was.
  if (scenario === 'node-down') {
    await lab.linkUp(target);
    if (sys.name !== 'vipd-l2') await bc.startNodeFrr(target);
    bc.startTagServer(target);
    const server = cluster.cp.servers.find((s) => s.netns === target.ns)!;
    await server.stop().catch(() => undefined);
    await server.start();
  } else {
    await waitFor('vipd exited', () => cluster.agents.get(target.name)!.child.exitCode !== null, 10_000);
  }
  sys.start(target);
  await sys.steady();
  // Measure steady-state failovers, not one during a rejoin: a peer that restarted a moment ago
  // is still boot-quiet (docs/election.md), which slows vipd-l2's next election.
  await sleep(3000);
  return detail;
}

async function main(): Promise<number> {
  const args = benchArgs('bench:bgp', USAGE, () => parse(process.argv.slice(2)), { root: true });
  if (args === null) return 2;
  const started = new Date().toISOString();
  const mach = machine();
  const t0 = performance.now();
  let bc: BgpCluster | undefined;
  const onSignal = (): void => {
    void (bc?.destroy() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rows: BgpRow[] = [];
  const details: RunDetail[] = [];
  try {
    bc = await startBgpCluster({ nodes: 3, ipv6: false, peers: true, startAgents: false, id: 'bgpb' });
    const { lab } = bc.cluster;
    // A router takes a gratuitous ARP as an update (Linux needs arp_accept for it).
    await lab.exec(lab.tor!, ['sysctl', '-qw', 'net.ipv4.conf.all.arp_accept=1', 'net.ipv4.conf.eth0.arp_accept=1']);
    progress(`lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const records: ProbeRecord[] = [];
    const probe = startProbe(bc, records);
    const neighbors = lab.nodes.map((n) => n.ipv4);
    for (const name of args.systems) {
      const sys = makeSystem(bc, name);
      progress(`${name}: ${sys.config}`);
      // Each system starts from empty node FRRs (vipd-l2 without any), and tor's BFD as the system wants it.
      for (const n of lab.nodes) await bc.frr.get(n.name)?.stop();
      if (name !== 'vipd-l2') for (const n of lab.nodes) await bc.startNodeFrr(n);
      await bc.tor.vtysh('configure terminal', `router bgp 65000`, ...neighbors.map((a) => (name === 'vipd-bgp' ? `no neighbor ${a} bfd` : `neighbor ${a} bfd profile vipd-lab`)), 'end');
      for (const n of lab.nodes) sys.start(n);
      await sys.steady();
      for (const scenario of args.scenarios) {
        if (scenario === 'spread') {
          await sys.steady();
          const counts = await bc.flowsPerNode(lab.vip4, args.flows);
          const row: BgpRow = { system: name, scenario, runs: 1, p50_ms: null, max_ms: null, flows_per_node: counts, config: sys.config };
          rows.push(row);
          emitRow(row);
          continue;
        }
        const mine: RunDetail[] = [];
        for (let run = 1; run <= args.runs; run++) {
          records.splice(0, records.length - 500);
          const d = await runOnce(bc, sys, scenario, run, records);
          mine.push(d);
          progress(`${name} ${scenario} #${run} on ${d.target}: outage ${d.outageMs.toFixed(0)} ms, ${d.failed} failed attempts ${JSON.stringify(d.errors)}, answers ${JSON.stringify(d.perNode)}`);
        }
        details.push(...mine);
        const perNode: Record<string, number> = {};
        for (const d of mine) for (const [k, v] of Object.entries(d.perNode)) perNode[k] = (perNode[k] ?? 0) + v;
        const outages = mine.map((d) => d.outageMs);
        const row: BgpRow = { system: name, scenario, runs: mine.length, p50_ms: roundMs(median(outages)), max_ms: roundMs(maxOf(outages)), flows_per_node: perNode, config: sys.config };
        rows.push(row);
        emitRow(row);
      }
      await Promise.allSettled([...bc.cluster.agents.values()].map((a) => a.stop(3000)));
    }
    probe.kill('SIGTERM');
  } finally {
    await bc?.destroy().catch((e: unknown) => progress(`cleanup: ${String(e)}`));
  }
  const file = await writeResults('bgp', {
    bench: 'bgp',
    command: ['npm run bench:bgp', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    started,
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: mach,
    loadavg1End: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    args,
    rows,
    runs: details,
  });
  progress(`results: ${file}`);
  return 0;
}

runMain('bench:bgp', main);
