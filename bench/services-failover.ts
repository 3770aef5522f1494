/**
 * `npm run bench:services-failover -- [--runs N] [--systems vipd,kube-vip] [--scenarios a,b] [--verbose]`
 *
 * Issue 14: how fast LoadBalancer Service addresses move, side by side, at DEFAULT timings.
 * One lab (lab/controlplane.ts: 3 nodes, a kube-apiserver each, one etcd, a client), 30
 * LoadBalancer Services with explicit addresses (`kube-vip.io/loadbalancerIPs`, which both systems
 * honour) plus one externalTrafficPolicy Local Service, then each system's agents in turn:
 *
 * - vipd: svc_enable=true, peers on (svc_membership defaults to peers), Lease 15/10/2 s and health
 *   1000 ms x 3 (its defaults, not the lab's short LAB_LEASE_ENV). Addresses on lo, answered by the agent.
 * - kube-vip v0.9.1 `manager`, services mode: svc_enable, svc_election (a Lease per Service), ARP on
 *   eth0, its default Lease 5/3/1 s, through the node's own API server (admin kubeconfig), endpoint
 *   slices on (the lab has no controller-manager, so there are no Endpoints objects).
 *
 * Scenarios (the victim is the node that answers for most of the 30 addresses):
 * - node-down: the node's bridge port goes down, then every process in its namespace gets SIGKILL.
 * - sigterm: SIGTERM to the node's agent.
 * - api-down-all+node-down: every API server stopped, 2 s, then node-down.
 * - etp-local-endpoint-gone: the Local Service's EndpointSlice names node X; it is updated to name Y.
 *
 * Measured on the wire: an ARP prober in the client namespace asks for every address every 50 ms.
 * A moved address's time is from the event until the first ARP answer from another node's MAC
 * (for etp: from Y's MAC). p50/max are over all moved addresses of all runs. Two-holder events are
 * counted by lab/wirewatch.ts over each run, from before the event until the restored lab is steady
 * again (every address answered by exactly one MAC).
 *
 * One JSON row per (system, scenario) on stdout; progress on stderr; the whole run in
 * bench/results/services-failover-<timestamp>.json.
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentProcess } from '../lab/agents.js';
import { startCluster, type Cluster } from '../lab/controlplane.js';
import type { LabHost } from '../lab/netns.js';
import { firstAnswerFrom } from '../lab/twoholders.js';
import { watchWire, type WireWatch } from '../lab/wirewatch.js';
import { wallNow } from './lib/benchlab.js';
import { list, posInt, UsageError } from './lib/args.js';
import { benchArgs, runMain } from './lib/main.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { maxOf, median, roundMs } from './lib/stats.js';
import { KUBE_VIP_LEASE, KUBE_VIP_VERSION, kubeVipBinary } from './lib/systems.js';

export const SF_SYSTEMS = ['vipd', 'kube-vip'] as const;
export type SfSystem = (typeof SF_SYSTEMS)[number];
export const SF_SCENARIOS = ['node-down', 'sigterm', 'api-down-all+node-down', 'etp-local-endpoint-gone'] as const;
export type SfScenario = (typeof SF_SCENARIOS)[number];

export const SF_USAGE = `usage: npm run bench:services-failover -- [--runs N (default 1)] [--systems ${SF_SYSTEMS.join(',')}] [--scenarios ${SF_SCENARIOS.join(',')}] [--verbose]`;

export interface SfArgs {
  runs: number;
  systems: SfSystem[];
  scenarios: SfScenario[];
  verbose: boolean;
}

export function parseSfArgs(argv: readonly string[]): SfArgs {
  let values: { runs?: string; systems?: string; scenarios?: string; verbose?: boolean };
  try {
    ({ values } = parseArgs({ args: [...argv], options: { runs: { type: 'string' }, systems: { type: 'string' }, scenarios: { type: 'string' }, verbose: { type: 'boolean' } }, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    runs: posInt('runs', values.runs, 1, 100),
    systems: list('systems', values.systems, SF_SYSTEMS, SF_SYSTEMS),
    scenarios: list('scenarios', values.scenarios, SF_SCENARIOS, SF_SCENARIOS),
    verbose: values.verbose === true,
  };
}

// --- constants ----------------------------------------------------------------------------------

const NS = 'bench-svc';
const SERVICES = 30;
/** 198.18.0.130 … 198.18.0.159: the spread Services; .160: the Local one. All inside the pool below. */
const SPREAD_IPS = Array.from({ length: SERVICES }, (_, i) => `198.18.0.${130 + i}`);
const LOCAL_IP = '198.18.0.160';
const LOCAL_SVC = 'local';
const ALL_IPS = [...SPREAD_IPS, LOCAL_IP];
const PROBE_MS = 50;
/** vipd's defaults (src/config/settings.ts), on top of the cluster's LAB_LEASE_ENV. */
const VIPD_DEFAULT_TIMING = { vip_leaseduration: '15', vip_renewdeadline: '10', vip_retryperiod: '2', vip_health_interval_ms: '1000', vip_health_failures: '3' };
/** Give up on a move after this long (ms). */
const OBSERVE_MS = 45_000;
/** The capture analysis' span gap is 4 s: a node coming back sooner would look like one span around the takers' claims. */
const MIN_DOWN_MS = 4500;


interface Row {
  system: SfSystem;
  scenario: SfScenario;
  ips: number;
  runs: number;
  p50_ms: number | null;
  max_ms: number | null;
  two_holder_events: number;
  /** Addresses that were not answered by another node within the observation (45 s). */
  not_moved?: number;
  /** Addresses not on the victim that went unanswered for over 1 s during the observation (summed over runs). */
  others_dark?: number;
  config?: string;
  note?: string;
  skipped?: string;
}

interface RunDetail {
  system: SfSystem;
  scenario: SfScenario;
  run: number;
  victim: string;
  to?: string;
  moves: Array<{ ip: string; to: string | null; ms: number | null }>;
  twoHolderEvents: number;
  /** Addresses the victim did not answer for that went unanswered for over 1 s between the event and the end of the observation. */
  othersDark: number;
  events?: unknown[];
  restoreS: number;
}

// --- the systems --------------------------------------------------------------------------------

interface Sys {
  name: SfSystem;
  config: string;
  note?: string;
  start(n: LabHost): Promise<void>;
  /** SIGTERM and wait for the exit. */
  terminate(n: LabHost): Promise<void>;
  /** The node's processes were killed from outside. */
  forget(n: LabHost): void;
  /** Before linkUp / restart after a kill: clear what a killed agent leaves behind. */
  cleanup(n: LabHost): Promise<void>;
  stopAll(): Promise<void>;
  unexpectedExits(): number;
}

class VipdSys implements Sys {
  readonly name = 'vipd' as const;
  readonly config = `vipd, svc_enable, peers on (svc_membership=peers), Lease ${VIPD_DEFAULT_TIMING.vip_leaseduration}/${VIPD_DEFAULT_TIMING.vip_renewdeadline}/${VIPD_DEFAULT_TIMING.vip_retryperiod} s and health ${VIPD_DEFAULT_TIMING.vip_health_interval_ms} ms x ${VIPD_DEFAULT_TIMING.vip_health_failures} (defaults), responder agent (addresses on lo)`;
  private exits = 0;
  private readonly expected = new WeakSet<AgentProcess>();
  constructor(private readonly c: Cluster) {}
  async start(n: LabHost): Promise<void> {
    const a = this.c.startAgent(n, { svc_enable: 'true', ...VIPD_DEFAULT_TIMING });
    void a.exited.then((e) => {
      if (!this.expected.has(a)) {
        this.exits++;
        progress(`vipd on ${n.name} exited by itself (${e.code ?? e.signal}): ${a.stderrText().slice(-500)}`);
      }
    });
    await a.waitForLog((l) => l.msg === 'services started', 60_000);
  }
  async terminate(n: LabHost): Promise<void> {
    const a = this.c.agents.get(n.name);
    if (!a) return;
    this.expected.add(a);
    await a.stop(15_000);
  }
  forget(n: LabHost): void {
    const a = this.c.agents.get(n.name);
    if (a) this.expected.add(a);
  }
  async cleanup(_n: LabHost): Promise<void> {
    // vipd removes stale addresses from lo on start itself (docs/design.md, rule 6).
  }
  async stopAll(): Promise<void> {
    await Promise.all(this.c.lab.nodes.map((n) => this.terminate(n)));
  }
  unexpectedExits(): number {
    return this.exits;
  }
}

class KubeVipSys implements Sys {
  readonly name = 'kube-vip' as const;
  readonly config = `kube-vip ${KUBE_VIP_VERSION} manager, services mode: svc_election (a Lease per Service) ${KUBE_VIP_LEASE.vip_leaseduration}/${KUBE_VIP_LEASE.vip_renewdeadline}/${KUBE_VIP_LEASE.vip_retryperiod} s (its defaults), ARP, addresses on eth0, endpoint slices, node's own API server (admin kubeconfig)`;
  private readonly procs = new Map<string, { child: ChildProcess; expected: boolean; exited: Promise<void> }>();
  private exits = 0;
  private stopping = false;
  constructor(
    private readonly c: Cluster,
    private readonly bin: string,
    private readonly kubeconfig: string,
  ) {}
  async start(n: LabHost): Promise<void> {
    const home = join(this.c.lab.tmpDir, 'kube-vip', n.name);
    // No /etc/kubernetes/admin.conf here: kube-vip then reads $HOME/.kube/config (pkg/manager/manager.go).
    await mkdir(join(home, '.kube'), { recursive: true });
    await writeFile(join(home, '.kube', 'config'), await readFile(this.kubeconfig));
    const child = this.c.lab.spawn(n, [this.bin, 'manager'], {
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: home,
        vip_arp: 'true',
        vip_interface: 'eth0',
        vip_cidr: '32',
        cp_enable: 'false',
        svc_enable: 'true',
        svc_election: 'true',
        vip_leaderelection: 'false',
        enable_endpointslices: 'true',
        ...KUBE_VIP_LEASE,
        vip_nodename: n.name,
        prometheus_server: ':2112',
      },
    });
    const slot = { child, expected: false, exited: new Promise<void>((r) => child.once('exit', () => r())) };
    this.procs.set(n.name, slot);
    void slot.exited.then(async () => {
      if (slot.expected || this.stopping || this.procs.get(n.name) !== slot) return;
      this.exits++;
      progress(`kube-vip on ${n.name} exited by itself (${child.exitCode ?? child.signalCode}); restarting in 1 s\n${this.c.lab.output(child).slice(-1500)}`);
      await sleep(1000);
      if (this.procs.get(n.name) === slot && !this.stopping) await this.start(n).catch(() => undefined);
    });
  }
  output(n: LabHost): string {
    const s = this.procs.get(n.name);
    return s ? this.c.lab.output(s.child) : '';
  }
  async terminate(n: LabHost): Promise<void> {
    const s = this.procs.get(n.name);
    if (!s) return;
    s.expected = true;
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
    const t = setTimeout(() => {
      try {
        if (s.child.pid !== undefined) process.kill(-s.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 15_000);
    await s.exited;
    clearTimeout(t);
  }
  forget(n: LabHost): void {
    const s = this.procs.get(n.name);
    if (s) s.expected = true;
  }
  async cleanup(n: LabHost): Promise<void> {
    // A killed kube-vip leaves its addresses on eth0; the kernel would answer for them once the link is back.
    await dropFromEth0(this.c, n);
  }
  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.c.lab.nodes.map((n) => this.terminate(n)));
    for (const n of this.c.lab.nodes) await this.cleanup(n);
  }
  unexpectedExits(): number {
    return this.exits;
  }
}

async function dropFromEth0(c: Cluster, n: LabHost): Promise<void> {
  const text = (await c.lab.exec(n, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout;
  const mine = new Set(ALL_IPS);
  for (const m of text.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/g)) {
    if (mine.has(m[1]!)) await c.lab.exec(n, ['ip', 'addr', 'del', `${m[1]}/${m[2]}`, 'dev', 'eth0']);
  }
}

// --- the API objects ----------------------------------------------------------------------------

async function req(c: Cluster, method: string, path: string, body?: unknown): Promise<unknown> {
  const via = c.cp.servers.find((s) => s.state === 'running');
  const r = await c.cp.request(method, path, body, via);
  if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
  return r.body ? (JSON.parse(r.body) as unknown) : undefined;
}

const svcName = (i: number): string => `s${String(i).padStart(2, '0')}`;

function sliceFor(node: LabHost): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${LOCAL_SVC}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': LOCAL_SVC } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [node.ipv4], nodeName: node.name, conditions: { ready: true, serving: true, terminating: false } }],
    ports: [{ port: 8080, protocol: 'TCP' }],
  };
}

async function putSlice(c: Cluster, node: LabHost): Promise<void> {
  const path = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/${LOCAL_SVC}-1`;
  const cur = (await req(c, 'GET', path)) as { metadata: { resourceVersion: string } };
  const s = sliceFor(node);
  await req(c, 'PUT', path, { ...s, metadata: { ...(s.metadata as object), resourceVersion: cur.metadata.resourceVersion } });
}

async function createServices(c: Cluster, etpNode: LabHost): Promise<void> {
  const svc = (name: string, ip: string, spec: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS, annotations: { 'kube-vip.io/loadbalancerIPs': ip } },
    spec: { type: 'LoadBalancer', ports: [{ port: 8080, protocol: 'TCP' }], selector: { app: name }, ...spec },
  });
  for (let i = 0; i < SERVICES; i++) await req(c, 'POST', `/api/v1/namespaces/${NS}/services`, svc(svcName(i), SPREAD_IPS[i]!));
  await req(c, 'POST', `/api/v1/namespaces/${NS}/services`, svc(LOCAL_SVC, LOCAL_IP, { externalTrafficPolicy: 'Local' }));
  await req(c, 'POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, sliceFor(etpNode));
}

async function deleteServices(c: Cluster): Promise<void> {
  for (let i = 0; i < SERVICES; i++) await req(c, 'DELETE', `/api/v1/namespaces/${NS}/services/${svcName(i)}`).catch(() => undefined);
  await req(c, 'DELETE', `/api/v1/namespaces/${NS}/services/${LOCAL_SVC}`).catch(() => undefined);
  await req(c, 'DELETE', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/${LOCAL_SVC}-1`).catch(() => undefined);
  // kube-vip's per-Service Leases (kubevip-<name>) and vipd's: gone with the namespace's Leases.
  await req(c, 'DELETE', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`).catch(() => undefined);
}

// --- the wire -----------------------------------------------------------------------------------

/**
 * Every address answered by exactly one node MAC, the same one, in every request of the last
 * `windowMs` (the newest 200 ms left out: answers may still be on their way). Address → node.
 */
function steadyOwners(c: Cluster, wire: WireWatch, ips: readonly string[], windowMs = 2000): Map<string, string> | undefined {
  const now = wallNow();
  const macToNode = new Map(c.lab.nodes.map((n) => [n.mac, n.name]));
  const out = new Map<string, string>();
  for (const ip of ips) {
    const recs = wire.prober.records(ip).filter((r) => r.sentAt > now - windowMs && r.sentAt < now - 200);
    if (recs.length < Math.floor((windowMs - 200) / PROBE_MS / 2)) return undefined;
    let mac: string | undefined;
    for (const r of recs) {
      const macs = new Set(r.answers.map((a) => a.mac));
      if (macs.size !== 1) return undefined;
      const m = [...macs][0]!;
      if (mac !== undefined && m !== mac) return undefined;
      mac = m;
    }
    const node = mac && macToNode.get(mac);
    if (!node) return undefined;
    out.set(ip, node);
  }
  return out;
}

async function waitSteady(c: Cluster, wire: WireWatch, ips: readonly string[], timeoutMs: number, what: string, want?: (o: Map<string, string>) => boolean): Promise<Map<string, string>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const o = steadyOwners(c, wire, ips);
    if (o && (!want || want(o))) return o;
    if (performance.now() > deadline) {
      const now = wallNow();
      const sample = ips.map((ip) => {
        const last = wire.prober.records(ip).filter((r) => r.sentAt < now - 200).slice(-3);
        return `${ip}:${last.map((r) => r.answers.map((a) => a.mac.slice(-2)).join('+') || '-').join('/')}`;
      });
      throw new Error(`timed out (${Math.round(timeoutMs / 1000)} s) waiting until ${what}; last answers: ${sample.join(' ')}`);
    }
    await sleep(250);
  }
}

/** For each ip, ms from `since` until the first answer by a MAC other than `not`'s (or by `want`'s, when given). */
async function moves(c: Cluster, wire: WireWatch, ips: readonly string[], since: number, opts: { not?: LabHost; want?: LabHost; timeoutMs: number }): Promise<RunDetail['moves']> {
  const deadline = since + opts.timeoutMs;
  const macToNode = new Map(c.lab.nodes.map((n) => [n.mac, n.name]));
  const find = (ip: string): string | undefined =>
    wire.prober.records(ip).flatMap((r) => r.answers).find((a) => a.at > since && macToNode.has(a.mac) && (opts.want ? a.mac === opts.want.mac : a.mac !== opts.not!.mac))?.mac;
  for (;;) {
    if (ips.every((ip) => find(ip) !== undefined) || wallNow() > deadline) break;
    await sleep(50);
  }
  return ips.map((ip) => {
    const mac = find(ip);
    if (!mac) return { ip, to: null, ms: null };
    return { ip, to: macToNode.get(mac)!, ms: Math.round(firstAnswerFrom(wire.prober.records(ip), mac, since)! - since) };
  });
}

/** Longest stretch (ms) within [from, to] in which requests went unanswered: from the first unanswered request to the next answered one (or `to`). */
function longestSilence(records: readonly { sentAt: number; answers: readonly unknown[] }[], from: number, to: number): number {
  let longest = 0;
  let since: number | undefined;
  for (const r of records) {
    if (r.sentAt < from || r.sentAt > to - 200) continue;
    if (r.answers.length === 0) since ??= r.sentAt;
    else if (since !== undefined) {
      longest = Math.max(longest, r.sentAt - since);
      since = undefined;
    }
  }
  if (since !== undefined) longest = Math.max(longest, to - since);
  return longest;
}

// --- scenarios ----------------------------------------------------------------------------------

async function untilWall(t: number): Promise<void> {
  const d = t - wallNow();
  if (d > 0) await sleep(d);
}

async function nodeDown(c: Cluster, sys: Sys, h: LabHost): Promise<void> {
  await c.lab.linkDown(h);
  sys.forget(h);
  await c.lab.killHost(h, 'SIGKILL');
}

async function nodeBack(c: Cluster, sys: Sys, h: LabHost, eventAt: number): Promise<void> {
  await untilWall(eventAt + MIN_DOWN_MS);
  await sys.cleanup(h);
  await c.lab.linkUp(h);
  const srv = c.cp.servers[c.lab.nodes.indexOf(h)]!;
  if (srv.state !== 'running') {
    if (srv.state === 'stopped') await srv.start();
    else {
      await srv.stop();
      await srv.start();
    }
  }
  await sys.start(h);
}

async function runOnce(c: Cluster, sys: Sys, scenario: SfScenario, run: number, verbose: boolean): Promise<RunDetail> {
  const [nX, , nY] = c.lab.nodes as [LabHost, LabHost, LabHost];
  const wire = await watchWire(c.lab, ALL_IPS, PROBE_MS);
  let detail: RunDetail | undefined;
  try {
    const owners = await waitSteady(c, wire, ALL_IPS, 120_000, 'every address is answered by exactly one MAC', (o) => o.get(LOCAL_IP) === nX.name);
    const count = new Map<string, number>();
    for (const ip of SPREAD_IPS) count.set(owners.get(ip)!, (count.get(owners.get(ip)!) ?? 0) + 1);
    const victim = c.lab.host([...count].sort((a, b) => b[1] - a[1])[0]![0]);
    await sleep(500);
    let eventAt: number;
    let moved: RunDetail['moves'];
    const r0 = (): number => performance.now();
    let restoreStart = 0;
    let othersDark = 0;
    const dark = (from: number): void => {
      const to = wallNow();
      othersDark = SPREAD_IPS.filter((ip) => owners.get(ip) !== victim.name && longestSilence(wire.prober.records(ip), from, to) > 1000).length;
    };
    switch (scenario) {
      case 'node-down': {
        const mine = SPREAD_IPS.filter((ip) => owners.get(ip) === victim.name);
        eventAt = wallNow();
        await nodeDown(c, sys, victim);
        moved = await moves(c, wire, mine, eventAt, { not: victim, timeoutMs: OBSERVE_MS });
        dark(eventAt);
        restoreStart = r0();
        await nodeBack(c, sys, victim, eventAt);
        break;
      }
      case 'sigterm': {
        const mine = SPREAD_IPS.filter((ip) => owners.get(ip) === victim.name);
        eventAt = wallNow();
        const exit = sys.terminate(victim);
        moved = await moves(c, wire, mine, eventAt, { not: victim, timeoutMs: OBSERVE_MS });
        dark(eventAt);
        await exit;
        restoreStart = r0();
        await untilWall(eventAt + MIN_DOWN_MS);
        await sys.cleanup(victim);
        await sys.start(victim);
        break;
      }
      case 'api-down-all+node-down': {
        const mine = SPREAD_IPS.filter((ip) => owners.get(ip) === victim.name);
        await Promise.all(c.cp.servers.map((s) => s.stop()));
        await sleep(2000);
        eventAt = wallNow();
        await nodeDown(c, sys, victim);
        moved = await moves(c, wire, mine, eventAt, { not: victim, timeoutMs: OBSERVE_MS });
        dark(eventAt);
        restoreStart = r0();
        await untilWall(eventAt + MIN_DOWN_MS);
        await sys.cleanup(victim);
        await c.lab.linkUp(victim);
        await Promise.all(c.cp.servers.map((s) => (s.state === 'running' ? Promise.resolve() : s.state === 'stopped' ? s.start() : s.stop().then(() => s.start()))));
        await sys.start(victim);
        break;
      }
      case 'etp-local-endpoint-gone': {
        eventAt = wallNow();
        await putSlice(c, nY);
        moved = await moves(c, wire, [LOCAL_IP], eventAt, { want: nY, timeoutMs: OBSERVE_MS });
        restoreStart = r0();
        await waitSteady(c, wire, [LOCAL_IP], 60_000, `${LOCAL_IP} is answered by ${nY.name} only`, (o) => o.get(LOCAL_IP) === nY.name);
        // Back to X only after the span gap since X last answered: sooner would read as X, Y, X interleaved.
        const lastX = Math.max(eventAt, ...wire.prober.records(LOCAL_IP).flatMap((r) => r.answers).filter((a) => a.mac === nX.mac).map((a) => a.at));
        await untilWall(lastX + MIN_DOWN_MS);
        await putSlice(c, nX);
        break;
      }
    }
    await waitSteady(c, wire, ALL_IPS, 120_000, 'every address is answered by exactly one MAC again (restore)', (o) => o.get(LOCAL_IP) === nX.name);
    const restoreS = Math.round(performance.now() - restoreStart) / 1000;
    const { events } = await wire.stop();
    detail = {
      system: sys.name,
      scenario,
      run,
      victim: scenario === 'etp-local-endpoint-gone' ? nX.name : victim.name,
      ...(scenario === 'etp-local-endpoint-gone' ? { to: nY.name } : {}),
      moves: moved,
      twoHolderEvents: events.length,
      othersDark,
      ...(verbose ? { events } : { events: events.map((e) => ({ ip: e.ip, kind: e.kind, atMs: Math.round(e.at - eventAt) })) }),
      restoreS,
    };
    return detail;
  } finally {
    if (!detail) await wire.stop().catch(() => undefined);
  }
}

function rowOf(sys: Sys, scenario: SfScenario, details: RunDetail[], note?: string): Row {
  const ms = details.flatMap((d) => d.moves.map((m) => m.ms).filter((x): x is number => x !== null));
  const notMoved = details.reduce((s, d) => s + d.moves.filter((m) => m.ms === null).length, 0);
  return {
    system: sys.name,
    scenario,
    ips: details.reduce((s, d) => s + d.moves.length, 0),
    runs: details.length,
    p50_ms: roundMs(median(ms)),
    max_ms: roundMs(maxOf(ms)),
    two_holder_events: details.reduce((s, d) => s + d.twoHolderEvents, 0),
    not_moved: notMoved,
    others_dark: details.reduce((s, d) => s + d.othersDark, 0),
    config: sys.config,
    ...(note ? { note } : {}),
  };
}

// --- main ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const args = benchArgs('bench:services-failover', SF_USAGE, () => parseSfArgs(process.argv.slice(2)), { root: true });
  if (args === null) return 2;
  const started = new Date().toISOString();
  const mach = machine();
  const t0 = performance.now();
  let cluster: Cluster | undefined;
  let active: Sys | undefined;
  const onSignal = (): void => {
    void (active?.stopAll() ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => cluster?.destroy())
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: Row[] = [];
  const details: RunDetail[] = [];
  const skip = (system: SfSystem, reason: string): void => {
    for (const scenario of args.scenarios) {
      const row: Row = { system, scenario, ips: 0, runs: 0, p50_ms: null, max_ms: null, two_holder_events: 0, skipped: reason };
      rows.push(row);
      emitRow(row);
    }
  };
  try {
    progress('starting the lab: 3 nodes, etcd and 3 kube-apiservers …');
    cluster = await startCluster({ nodes: 3, peers: true, startAgents: false, id: 'svcfo' });
    const c = cluster;
    progress(`lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await req(c, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    // vipd's pool (kube-vip's cloud-provider format); every requested address lies in it. kube-vip does not read it.
    await c.cp.apply(`
apiVersion: v1
kind: ConfigMap
metadata: { name: kubevip, namespace: kube-system }
data:
  cidr-global: 198.18.0.128/26
`);
    const kvKubeconfig = await c.cp.kubeconfigFor('https://127.0.0.1:6443', 'admin');
    const [nX] = c.lab.nodes as [LabHost];

    for (const name of args.systems) {
      let sys: Sys;
      if (name === 'vipd') sys = new VipdSys(c);
      else {
        const bin = kubeVipBinary();
        if (!bin) {
          skip(name, `kube-vip is not built: see bench/README.md (go build of github.com/kube-vip/kube-vip@${KUBE_VIP_VERSION} into .cache/kube-vip/bin, or KUBE_VIP_BIN)`);
          continue;
        }
        sys = new KubeVipSys(c, bin, kvKubeconfig);
      }
      const ts = performance.now();
      progress(`${name}: ${sys.config}`);
      active = sys;
      await createServices(c, nX);
      try {
        await Promise.all(c.lab.nodes.map((n) => sys.start(n)));
        // Everything answered once before the first scenario (the first run waits again, with the wire on).
        {
          const wire = await watchWire(c.lab, ALL_IPS, PROBE_MS);
          try {
            const o = await waitSteady(c, wire, ALL_IPS, 120_000, `${name} answers every address from exactly one MAC`, (m) => m.get(LOCAL_IP) === nX.name);
            const per = new Map<string, number>();
            for (const ip of SPREAD_IPS) per.set(o.get(ip)!, (per.get(o.get(ip)!) ?? 0) + 1);
            progress(`${name}: all ${ALL_IPS.length} addresses answered after ${((performance.now() - ts) / 1000).toFixed(1)} s; spread: ${JSON.stringify(Object.fromEntries([...per].sort()))}`);
          } finally {
            await wire.stop();
          }
        }
      } catch (err) {
        const reason = `${name} did not serve the Services in this lab: ${String((err as Error).message ?? err).slice(0, 400)}`;
        progress(reason);
        if (sys instanceof KubeVipSys) for (const n of c.lab.nodes) progress(`kube-vip ${n.name} output:\n${sys.output(n).slice(-2000)}`);
        await sys.stopAll().catch(() => undefined);
        await deleteServices(c);
        skip(name, reason);
        continue;
      }
      for (const scenario of args.scenarios) {
        const mine: RunDetail[] = [];
        let failure: string | undefined;
        for (let run = 1; run <= args.runs; run++) {
          try {
            const d = await runOnce(c, sys, scenario, run, args.verbose);
            mine.push(d);
            const ms = d.moves.map((m) => m.ms).filter((x): x is number => x !== null);
            progress(`${name} ${scenario} #${run}: ${d.victim} -> ${[...new Set(d.moves.map((m) => m.to ?? '(none)'))].join(',')}: ${d.moves.length} addresses, moved after ${ms.length ? `${Math.min(...ms)}-${Math.max(...ms)}` : '-'} ms${d.moves.some((m) => m.ms === null) ? ` (${d.moves.filter((m) => m.ms === null).length} not moved)` : ''}, others dark ${d.othersDark}, two-holder events ${d.twoHolderEvents}, restored in ${d.restoreS} s`);
          } catch (err) {
            failure = `run ${run} failed: ${String((err as Error).message ?? err).slice(0, 400)}`;
            progress(`${name} ${scenario}: ${failure}`);
            // Bring everything back for the next scenario.
            await Promise.all(c.cp.servers.map((s) => (s.state === 'running' ? Promise.resolve() : s.state === 'stopped' ? s.start() : s.stop().then(() => s.start())))).catch(() => undefined);
            for (const n of c.lab.nodes) {
              await c.lab.linkUp(n).catch(() => undefined);
              await sys.start(n).catch(() => undefined);
            }
            await putSlice(c, nX).catch(() => undefined);
            break;
          }
        }
        details.push(...mine);
        const nm = mine.reduce((s, d) => s + d.moves.filter((m) => m.ms === null).length, 0);
        const notes = [failure, nm ? `${nm} addresses not answered by another node within ${OBSERVE_MS / 1000} s${scenario === 'api-down-all+node-down' ? ' (all API servers still down)' : ''}; left out of p50/max` : undefined, sys.unexpectedExits() ? `${sys.unexpectedExits()} unexpected agent exits so far` : undefined].filter(Boolean).join('; ');
        const row = rowOf(sys, scenario, mine, notes || undefined);
        rows.push(row);
        emitRow(row);
      }
      await sys.stopAll();
      active = undefined;
      await deleteServices(c);
      progress(`${name} done in ${((performance.now() - ts) / 1000).toFixed(0)} s`);
    }
  } finally {
    if (active) await active.stopAll().catch(() => undefined);
    await cluster?.destroy().catch((e: unknown) => progress(`cleanup: ${String(e)}`));
  }
  const file = await writeResults('services-failover', {
    bench: 'services-failover',
    command: ['npm run bench:services-failover', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    started,
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: mach,
    loadavg1End: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    args,
    rows,
    runs: details,
  });
  progress(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s; results in ${file}`);
  return 0;
}

runMain('bench:services-failover', main);
