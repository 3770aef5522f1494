/**
 * `npm run bench:footprint -- [--systems vipd,keepalived-default,kube-vip] [--seconds 60]`
 *
 * What each agent costs at idle with leader election on, in the same lab the failover benchmark
 * uses: all three agents of a system run, one holds the VIP; after a 10 s warm-up we sample two
 * windows of `--seconds` each. Idle: the probers are stopped, so no client sends anything (a
 * quiet control plane: clients ARP for the VIP once every few minutes). Probed: the failover
 * benchmark's 100 ARP questions and 100 TCP connections a second run, which a user-space ARP
 * responder (vipd) answers itself and the others leave to the kernel.
 * - rss_mb: VmRSS of the holder's agent (its process tree: keepalived's parent + VRRP child)
 *   after the idle window; rss_mb_probed after the probed one;
 * - cpu_pct: the holder's CPU (utime+stime, plus reaped children such as keepalived's curls) as
 *   % of one core over the idle window; cpu_pct_probed over the probed one;
 * - api_requests_per_min: every request the three agents made in the idle window, counted at the API servers
 *   (audit logs), health checks on /livez included; the breakdown says what they were.
 * Each system runs with its defaults (vipd: 15/10/2 s Lease, health 1 s × 3, peers configured;
 * kube-vip: 5/3/1 s; keepalived: VRRP v2 1 s and the 1 s /livez check).
 *
 * With vipd among the systems, one more row, `heartbeat-floor`: three bare Node processes with the
 * agent's V8 flags that only exchange vipd's heartbeats and answers at its default rate, through
 * its codec (bench/lib/heartbeat-floor.ts). What vipd costs above that row is everything else it
 * does; the row itself is what sub-second peer detection costs in Node before any of it.
 */
import type { ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LabHost } from '../lab/netns.js';
import { FOOTPRINT_SYSTEMS, parseFootprintArgs, type SystemName } from './lib/args.js';
import { countRequests, isServerInternal, parseAuditLog, perMinute, type AuditEvent } from './lib/audit.js';
import { startBenchLab, wallNow, type BenchLab } from './lib/benchlab.js';
import { waitStable } from './lib/failover-run.js';
import { cpuPercent, sampleTree, type Sample } from './lib/proc.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { kubeVipBinary, makeSystem, PEER_PORT } from './lib/systems.js';
import { agentNodeFlags, distEntry } from '../lab/agents.js';
import { SETTINGS } from '../src/config/settings.js';
import { benchArgs, runMain } from './lib/main.js';

const WARMUP_MS = 10_000;
const ADMIN_USER = 'vipd-lab-admin';

export interface FootprintRow {
  system: string;
  /** The holder after the idle window (no client traffic). */
  rss_mb: number;
  /** The holder over the idle window. */
  cpu_pct: number;
  /** The holder after, and over, a second window with the probers' 100 ARP + 100 TCP a second. */
  rss_mb_probed: number;
  cpu_pct_probed: number;
  api_requests_per_min: number;
  /** The holder's share of api_requests_per_min (requests its agent sent to any API server). */
  api_requests_per_min_holder: number;
  api_writes_per_min: number;
  /** Proportional set size of the holder's agent (shared pages split between processes). */
  pss_mb: number;
  /** Mean over the two standby agents. */
  rss_mb_standby: number;
  cpu_pct_standby: number;
  /** Requests per minute by "verb target", all three agents. */
  api_by_kind: Record<string, number>;
  /** Requests per minute by client (user agent's first word), all three agents. */
  api_by_client: Record<string, number>;
  holder: string;
  seconds: number;
  config: string;
  note?: string;
}

const mb = (kb: number): number => Math.round((kb / 1024) * 10) / 10;

/** The agent on `node` made this request: it reached its own API server over loopback, or another one from the node's address. */
export function fromNode(e: AuditEvent, node: LabHost, fileNode: string): boolean {
  const src = e.sourceIPs[0] ?? '';
  return (fileNode === node.name && (src === '127.0.0.1' || src === '::1')) || src === node.ipv4;
}

async function measure(bl: BenchLab, name: SystemName, seconds: number): Promise<FootprintRow | undefined> {
  const sys = makeSystem(bl, name, 'default');
  progress(`${name}: ${sys.config}`);
  if (sys.usesLease) await bl.deleteLease();
  try {
    for (const n of bl.nodes) await sys.start(n);
    const holderName = await waitStable(bl, sys, 90_000);
    if (!holderName) {
      progress(`${name}: no steady holder after 90 s; no row`);
      return undefined;
    }
    await sleep(WARMUP_MS);
    const holder = bl.lab.host(holderName);
    const pids = new Map(bl.nodes.map((n) => [n.name, sys.pid(n)]));
    const sampleAll = async (): Promise<Map<string, Sample>> => {
      const m = new Map<string, Sample>();
      for (const n of bl.nodes) m.set(n.name, await sampleTree(pids.get(n.name)!));
      return m;
    };
    // Idle: no client traffic at all (the probers stopped), as on a quiet control plane.
    bl.pauseProbes(true);
    let before: Map<string, Sample>;
    let after: Map<string, Sample>;
    let from: number;
    let to: number;
    try {
      await sleep(1000);
      before = await sampleAll();
      from = wallNow();
      await sleep(seconds * 1000);
      to = wallNow();
      after = await sampleAll();
    } finally {
      bl.pauseProbes(false);
    }
    // Probed: the failover benchmark's 100 ARP questions and 100 TCP connections a second.
    await sleep(1000);
    const probedBefore = await sampleAll();
    await sleep(seconds * 1000);
    const probedAfter = await sampleAll();
    const stillHolder = await waitStable(bl, sys, 5000);

    // Per API server file, so a request can be tied to the node that sent it.
    const perFile: Array<{ node: string; events: AuditEvent[] }> = [];
    for (const n of bl.nodes) {
      perFile.push({ node: n.name, events: parseAuditLog(await readFile(bl.auditFile(n), 'utf8').catch(() => '')) });
    }
    const agentRequest = (e: AuditEvent): boolean => !isServerInternal(e) && e.user !== ADMIN_USER;
    const all = perFile.flatMap((f) => f.events);
    const total = countRequests(all, from, to, agentRequest);
    const holderCount = perFile.reduce((acc, f) => acc + countRequests(f.events, from, to, (e) => agentRequest(e) && fromNode(e, holder, f.node)).total, 0);
    const ms = to - from;
    const hb = before.get(holder.name)!;
    const ha = after.get(holder.name)!;
    const standby = bl.nodes.filter((n) => n !== holder);
    const byKind: Record<string, number> = {};
    for (const [k, v] of Object.entries(total.byKind).sort((a, b) => b[1] - a[1])) byKind[k] = perMinute(v, ms);
    const byClient: Record<string, number> = {};
    for (const [k, v] of Object.entries(total.byClient).sort((a, b) => b[1] - a[1])) byClient[k] = perMinute(v, ms);
    const notes = [
      sys.note,
      stillHolder !== holder.name ? `holder changed during the window (${holder.name} -> ${stillHolder ?? 'none steady'})` : undefined,
      ha.pids.length !== hb.pids.length ? `process count changed ${hb.pids.length} -> ${ha.pids.length}` : undefined,
    ].filter(Boolean);
    return {
      system: name,
      rss_mb: mb(ha.rssKb),
      cpu_pct: cpuPercent(hb, ha),
      rss_mb_probed: mb(probedAfter.get(holder.name)!.rssKb),
      cpu_pct_probed: cpuPercent(probedBefore.get(holder.name)!, probedAfter.get(holder.name)!),
      api_requests_per_min: perMinute(total.total, ms),
      api_requests_per_min_holder: perMinute(holderCount, ms),
      api_writes_per_min: perMinute(total.writes, ms),
      pss_mb: mb(ha.pssKb),
      rss_mb_standby: mb(standby.reduce((acc, n) => acc + after.get(n.name)!.rssKb, 0) / standby.length),
      cpu_pct_standby: Math.round((standby.reduce((acc, n) => acc + cpuPercent(before.get(n.name)!, after.get(n.name)!), 0) / standby.length) * 100) / 100,
      api_by_kind: byKind,
      api_by_client: byClient,
      holder: holder.name,
      seconds,
      config: sys.config,
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
  } finally {
    await sys.stopAll();
    if (sys.usesLease) await bl.deleteLease();
  }
}

/** The heartbeat-floor row: the nodes exchange vipd's default heartbeat traffic and nothing else. */
async function measureFloor(bl: BenchLab, seconds: number): Promise<FootprintRow> {
  const heartbeatMs = SETTINGS.peerHeartbeatMs.parse(undefined, 'vip_peer_heartbeat_ms') as number;
  const port = PEER_PORT + 1;
  const peers = bl.nodes.map((n) => `${n.name}=${n.ipv4}:${port}`).join(',');
  const flags = agentNodeFlags();
  const children = bl.nodes.map((n) => bl.lab.spawn(n, [process.execPath, ...flags, distEntry('bench/lib/heartbeat-floor.js'), n.name, String(heartbeatMs), peers]));
  try {
    await sleep(WARMUP_MS);
    const dead = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead >= 0) throw new Error(`heartbeat-floor on ${bl.nodes[dead]!.name} exited: ${bl.lab.output(children[dead]!).slice(-500)}`);
    const sampleAll = () => Promise.all(children.map((c) => sampleTree(c.pid!)));
    const before = await sampleAll();
    await sleep(seconds * 1000);
    const after = await sampleAll();
    const cpu = before.map((b, i) => cpuPercent(b, after[i]!));
    // A floor is only one if the traffic flowed: the leader must have heard nearly every answer.
    const counts = await Promise.all(children.map((c) => stopFloor(bl, c)));
    const expected = ((WARMUP_MS / 1000 + seconds) * 1000 * (bl.nodes.length - 1)) / heartbeatMs;
    if (!(counts[0]!.accepted >= 0.9 * expected)) throw new Error(`heartbeat-floor: the leader accepted ${counts[0]!.accepted} answers, about ${Math.round(expected)} expected (${JSON.stringify(counts)})`);
    return {
      system: 'heartbeat-floor',
      rss_mb: mb(after[0]!.rssKb),
      cpu_pct: cpu[0]!,
      rss_mb_probed: mb(after[0]!.rssKb),
      cpu_pct_probed: cpu[0]!,
      api_requests_per_min: 0,
      api_requests_per_min_holder: 0,
      api_writes_per_min: 0,
      pss_mb: mb(after[0]!.pssKb),
      rss_mb_standby: mb((after[1]!.rssKb + after[2]!.rssKb) / 2),
      cpu_pct_standby: Math.round(((cpu[1]! + cpu[2]!) / 2) * 100) / 100,
      api_by_kind: {},
      api_by_client: {},
      holder: bl.nodes[0]!.name,
      seconds,
      config: `bare Node (${flags.join(' ') || 'no flags'}): heartbeat every ${heartbeatMs} ms to 2 peers and their answers, vipd's codec; nothing else`,
      note: 'no probed window (nothing answers ARP); the probed fields repeat the idle ones',
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
  }
}

/** SIGTERM to a floor process; what it says it carried. */
async function stopFloor(bl: BenchLab, child: ChildProcess): Promise<{ sent: number; accepted: number; dropped: number }> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
  const line = bl.lab.output(child).trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as { sent: number; accepted: number; dropped: number };
  } catch {
    return { sent: 0, accepted: 0, dropped: 0 };
  }
}

async function main(): Promise<number> {
  const defaults: SystemName[] = FOOTPRINT_SYSTEMS.filter((s) => s !== 'kube-vip' || kubeVipBinary() !== undefined);
  const args = benchArgs('bench:footprint', `usage: npm run bench:footprint -- [--systems ${FOOTPRINT_SYSTEMS.join(',')}] [--seconds 60]`, () => parseFootprintArgs(process.argv.slice(2), defaults), { root: true });
  if (args === null) return 2;
  const started = new Date().toISOString();
  const mach = machine();
  const t0 = performance.now();
  let bl: BenchLab | undefined;
  process.once('SIGINT', () => void (bl?.destroy() ?? Promise.resolve()).finally(() => process.exit(130)));
  process.once('SIGTERM', () => void (bl?.destroy() ?? Promise.resolve()).finally(() => process.exit(130)));
  const rows: FootprintRow[] = [];
  try {
    bl = await startBenchLab({ log: progress, id: 'foot' });
    for (const name of args.systems) {
      const row = await measure(bl, name, args.seconds);
      if (!row) continue;
      rows.push(row);
      emitRow(row);
    }
    if (args.systems.includes('vipd')) {
      progress(`heartbeat-floor: vipd's heartbeat traffic through bare Node`);
      const row = await measureFloor(bl, args.seconds);
      rows.push(row);
      emitRow(row);
    }
  } finally {
    await bl?.destroy().catch((e: unknown) => progress(`cleanup: ${String(e)}`));
  }
  const file = await writeResults('footprint', {
    bench: 'footprint',
    command: ['npm run bench:footprint', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    started,
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: mach,
    loadavg1End: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    args,
    rows,
  });
  progress(`done; results in ${file}`);
  return 0;
}

runMain('bench:footprint', main);
