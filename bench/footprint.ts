/**
 * `npm run bench:footprint -- [--systems vipd,vipd-lease-only,keepalived-default,keepalived-fast,kube-vip] [--seconds 60]`
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
 * vipd-lease-only: the same without peers; kube-vip: 5/3/1 s; keepalived-default: VRRP v2 1 s,
 * keepalived-fast: VRRP v3 0.1 s, both with the 1 s /livez check).
 *
 * With vipd among the systems, two more rows of bare Node processes with the agent's V8 flags, one
 * per node, each doing one part of vipd's idle work at its default rate and nothing else:
 * `heartbeat-floor` exchanges vipd's heartbeats and answers through its codec
 * (bench/lib/heartbeat-floor.ts), `api-floor` makes the holder's and the standbys' API requests
 * (`/livez`, and the holder's Lease renewals) through vipd's client (bench/lib/api-floor.ts). The
 * two rows are what sub-second peer detection and the health gate cost in Node before anything
 * else vipd does. A third, `heartbeat-floor-c`, is the heartbeat exchange again in C
 * (bench/lib/heartbeat-floor.c, built with cc when libcrypto's headers are there): what the
 * message rate costs on the machine with no runtime at all.
 */
import type { ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LabHost } from '../lab/netns.js';
import { FOOTPRINT_SYSTEMS, parseFootprintArgs, type SystemName } from './lib/args.js';
import { countRequests, isServerInternal, parseAuditLog, perMinute, type AuditEvent } from './lib/audit.js';
import { startBenchLab, wallNow, type BenchLab } from './lib/benchlab.js';
import { waitStable } from './lib/failover-run.js';
import { cpuPercent, sampleTree, type Sample } from './lib/proc.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { kubeVipBinary, makeSystem, PEER_PORT } from './lib/systems.js';
import { agentNodeFlags, distEntry, projectRoot } from '../lab/agents.js';
import { run } from '../lab/exec.js';
import { SETTINGS } from '../src/config/settings.js';
import { benchArgs, runMain } from './lib/main.js';

const WARMUP_MS = 10_000;
/** vipd's default heartbeat, which both heartbeat floors carry. */
const HEARTBEAT_MS = SETTINGS.peerHeartbeatMs.parse(undefined, 'vip_peer_heartbeat_ms') as number;
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

/** A floor row: one bare Node process per node doing one part of what the agent does, and nothing else. */
interface FloorSpec {
  system: string;
  /** The process for the i-th node (the first is the row's "holder"). */
  argv(node: LabHost, i: number): string[];
  /** Throws unless what the processes say they did shows the traffic flowed. */
  check(counts: Array<Record<string, number>>): void;
  config: string;
  /** argv is a program of its own, not a Node script: no node, no V8 flags. */
  bare?: boolean;
}

async function measureFloor(bl: BenchLab, seconds: number, spec: FloorSpec): Promise<FootprintRow> {
  const flags = agentNodeFlags();
  const children = bl.nodes.map((n, i) => bl.lab.spawn(n, spec.bare ? spec.argv(n, i) : [process.execPath, ...flags, ...spec.argv(n, i)]));
  try {
    await sleep(WARMUP_MS);
    const dead = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead >= 0) throw new Error(`${spec.system} on ${bl.nodes[dead]!.name} exited: ${bl.lab.output(children[dead]!).slice(-500)}`);
    const sampleAll = () => Promise.all(children.map((c) => sampleTree(c.pid!)));
    const before = await sampleAll();
    await sleep(seconds * 1000);
    const after = await sampleAll();
    const cpu = before.map((b, i) => cpuPercent(b, after[i]!));
    const counts = await Promise.all(children.map((c) => stopFloor(bl, c)));
    try {
      spec.check(counts);
    } catch (err) {
      throw new Error(`${spec.system}: ${(err as Error).message}`);
    }
    return {
      system: spec.system,
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
      config: spec.bare ? spec.config : `bare Node (${flags.join(' ') || 'no flags'}): ${spec.config}`,
      note: 'no probed window (nothing answers ARP); the probed fields repeat the idle ones; API requests not counted',
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
  }
}

/** The heartbeat-floor row: the nodes exchange vipd's default heartbeat traffic and nothing else. */
function heartbeatFloor(bl: BenchLab, seconds: number): FloorSpec {
  const port = PEER_PORT + 1;
  const peers = bl.nodes.map((n) => `${n.name}=${n.ipv4}:${port}`).join(',');
  return {
    system: 'heartbeat-floor',
    argv: (n) => [distEntry('bench/lib/heartbeat-floor.js'), n.name, String(HEARTBEAT_MS), peers],
    check(counts) {
      // A floor is only one if the traffic flowed: the leader must have heard nearly every answer.
      const expected = ((WARMUP_MS / 1000 + seconds) * 1000 * (bl.nodes.length - 1)) / HEARTBEAT_MS;
      if (!((counts[0]!.accepted ?? 0) >= 0.9 * expected)) throw new Error(`the leader accepted ${counts[0]!.accepted} answers, about ${Math.round(expected)} expected (${JSON.stringify(counts)})`);
    },
    config: `heartbeat every ${HEARTBEAT_MS} ms to 2 peers and their answers, vipd's codec; nothing else`,
  };
}

/**
 * bench/lib/heartbeat-floor.c built into .cache/bench/ (cc and libcrypto, Debian's libssl-dev),
 * again whenever the source is newer; undefined, with the reason in progress, when it cannot be.
 */
async function cHeartbeatFloorBinary(): Promise<string | undefined> {
  const src = join(projectRoot(), 'bench', 'lib', 'heartbeat-floor.c');
  const bin = join(projectRoot(), '.cache', 'bench', 'heartbeat-floor-c');
  const built = await stat(bin).catch(() => undefined);
  if (built && built.mtimeMs >= (await stat(src)).mtimeMs) return bin;
  await mkdir(dirname(bin), { recursive: true });
  const r = await run(['cc', '-O2', '-Wall', '-o', bin, src, '-lcrypto'], { timeoutMs: 60_000 }).catch((e: unknown) => ({ code: -1, stderr: String(e) }));
  if (r.code === 0) return bin;
  progress(`heartbeat-floor-c: cannot build ${src} (cc and libssl-dev needed): ${r.stderr.trim().split('\n').pop() ?? ''}; no row`);
  return undefined;
}

/** The heartbeat-floor-c row: the heartbeat-floor exchange in C, no runtime under it. */
function cHeartbeatFloor(bl: BenchLab, seconds: number, bin: string): FloorSpec {
  const addresses = bl.nodes.map((n) => `${n.ipv4}:${PEER_PORT + 2}`);
  return {
    // The same traffic, so the same proof that it flowed.
    check: heartbeatFloor(bl, seconds).check,
    system: 'heartbeat-floor-c',
    argv: (_n, i) => [bin, String(i), String(HEARTBEAT_MS), ...addresses],
    config: `heartbeat every ${HEARTBEAT_MS} ms to 2 peers and their answers, 86-byte datagrams HMAC-SHA256'd with OpenSSL, one epoll thread (bench/lib/heartbeat-floor.c); nothing else`,
    bare: true,
  };
}

/**
 * The api-floor row: each node probes its own API server's /livez at vipd's default interval and
 * the first also renews a Lease at vipd's default retry period, through vipd's client; nothing else.
 */
function apiFloor(bl: BenchLab, seconds: number): FloorSpec {
  const livezMs = SETTINGS.healthIntervalMs.parse(undefined, 'vip_health_interval_ms') as number;
  const renewMs = (SETTINGS.retryPeriod.parse(undefined, 'vip_retryperiod') as number) * 1000;
  return {
    system: 'api-floor',
    argv: (_n, i) => [distEntry('bench/lib/api-floor.js'), bl.localKubeconfig, String(livezMs), String(i === 0 ? renewMs : 0)],
    check(counts) {
      const expected = ((WARMUP_MS / 1000 + seconds) * 1000) / livezMs;
      const short = counts.findIndex((c) => !((c.probes ?? 0) - (c.failed ?? 0) >= 0.9 * expected));
      if (short >= 0) throw new Error(`${bl.nodes[short]!.name} had ${JSON.stringify(counts[short])}, about ${Math.round(expected)} good probes expected`);
      if (!((counts[0]!.renews ?? 0) >= 0.9 * (expected * livezMs) / renewMs)) throw new Error(`${JSON.stringify(counts[0])} renews on ${bl.nodes[0]!.name}`);
    },
    config: `/livez every ${livezMs} ms on each node, and a Lease update every ${renewMs} ms on the first, with vipd's API client and probe; nothing else`,
  };
}

/** SIGTERM to a floor process; what it says it carried. */
async function stopFloor(bl: BenchLab, child: ChildProcess): Promise<Record<string, number>> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
  const line = bl.lab.output(child).trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, number>;
  } catch {
    return {};
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
      const cFloor = await cHeartbeatFloorBinary();
      const floors = [heartbeatFloor(bl, args.seconds), ...(cFloor ? [cHeartbeatFloor(bl, args.seconds, cFloor)] : []), apiFloor(bl, args.seconds)];
      for (const spec of floors) {
        progress(`${spec.system}: ${spec.config}`);
        const row = await measureFloor(bl, args.seconds, spec);
        rows.push(row);
        emitRow(row);
      }
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
