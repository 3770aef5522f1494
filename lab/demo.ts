/**
 * `npm run lab`: the embedded demo. A 3-node control plane in network namespaces (each node with
 * its own kube-apiserver, one etcd), vipd on every node, a client that keeps connecting to the VIP.
 * It runs a short tour (who holds the VIP, kill -9 of the holder, the failover the client saw, a
 * graceful handover), prints a timeline of which node answered the client, then, on a terminal,
 * takes commands until `quit`. Everything it made is removed on exit, Ctrl-C included.
 */
import { createInterface } from 'node:readline/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { distEntry } from './agents.js';
import { startCluster, type Cluster } from './controlplane.js';
import { apiAssets } from './k8s-assets.js';
import type { LabHost } from './netns.js';
import { Prober } from './prober.js';
import type { ProbeRecord } from './tcpprobe.js';
import { renderTimeline, type TimelineMark } from './timeline.js';

const TAG_PORT = 7000;

interface ClientView {
  records: ProbeRecord[];
  proc: ChildProcess;
}

function startClient(cluster: Cluster): ClientView {
  const proc = cluster.lab.spawn('client', [process.execPath, distEntry('lab/tcpprobe-cli.js'), '--target', cluster.vip, '--port', String(TAG_PORT), '--interval', '20', '--stream']);
  const view: ClientView = { records: [], proc };
  let partial = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const r = JSON.parse(line) as ProbeRecord & { summary?: unknown };
        if (r.summary === undefined && typeof r.t === 'number') view.records.push(r);
      } catch {
        /* not a record */
      }
    }
    if (view.records.length > 20_000) view.records.splice(0, 10_000);
  });
  return view;
}

/** Longest run of failed connections since `since` (epoch ms), and who answers now. */
function clientSummary(view: ClientView, since: number): { outageMs: number; servedBy: string | null } {
  let outage = 0;
  let lastOk: number | null = null;
  let servedBy: string | null = null;
  for (const r of view.records) {
    if (r.t < since || !r.ok) continue;
    if (lastOk !== null) outage = Math.max(outage, r.t - lastOk);
    lastOk = r.t;
    servedBy = r.node;
  }
  return { outageMs: Math.max(0, outage - 20), servedBy };
}

async function leaseHolder(cluster: Cluster): Promise<string> {
  const via = cluster.cp.servers.find((s) => s.state === 'running');
  if (!via) return '(no API server)';
  const r = await cluster.cp.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-cp-lock', undefined, via).catch(() => undefined);
  if (!r || r.status !== 200) return '(none)';
  return (JSON.parse(r.body) as { spec?: { holderIdentity?: string } }).spec?.holderIdentity || '(released)';
}

/** The newest peer term an agent logged, if it runs peer voting. */
function peerTerm(cluster: Cluster, node: string): string {
  const a = cluster.agents.get(node);
  if (!a || !cluster.peersEnv.vip_peers) return '-';
  for (let i = a.logs.length - 1; i >= 0; i--) {
    const t = a.logs[i]!.term;
    if (typeof t === 'number') return String(t);
  }
  return '0';
}

/** Seconds since the client last heard a gratuitous ARP from this node's MAC. */
function lastAnnouncement(prober: Prober, vip: string, mac: string): string {
  const claims = prober.claims(vip).filter((c) => c.mac === mac && c.kind === 'garp');
  const last = claims.at(-1);
  return last ? `${((Date.now() - last.at) / 1000).toFixed(1)} s ago` : '-';
}

async function statusTable(cluster: Cluster, client: ClientView, prober?: Prober): Promise<string> {
  const lease = await leaseHolder(cluster);
  const rows = [['node', 'agent', 'api server', 'VIP on lo', 'role', 'peer term', 'last gARP heard', 'lease holder']];
  const holders = cluster.holders();
  for (const [i, n] of cluster.lab.nodes.entries()) {
    const a = cluster.agents.get(n.name);
    const alive = a && a.child.exitCode === null && a.child.signalCode === null;
    const bound = (await cluster.lab.exec(n, ['ip', '-o', 'addr', 'show', 'dev', 'lo'])).stdout.includes(`${cluster.vip}/`);
    rows.push([
      n.name,
      alive ? 'running' : 'down',
      cluster.cp.servers[i]!.state,
      bound ? 'yes' : 'no',
      holders.includes(n.name) ? 'HOLDER' : alive ? 'candidate' : '-',
      peerTerm(cluster, n.name),
      prober ? lastAnnouncement(prober, cluster.vip, n.mac) : '-',
      lease === n.name ? '◀' : '',
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const text = rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')).join('\n');
  const last = client.records.at(-1);
  const seen = last ? (last.ok ? `connected, served by ${last.node}` : `failing (${last.err ?? 'error'})`) : 'starting';
  return `${text}\nLease kube-system/plndr-cp-lock: ${lease}    client → ${cluster.vip}:${TAG_PORT}: ${seen}`;
}

/** The single holder once it has held for `stableMs` (a cold start may hand the VIP on once). */
async function waitForHolder(cluster: Cluster, not: string | undefined, timeoutMs: number, stableMs = 0): Promise<string | undefined> {
  const start = performance.now();
  let candidate: string | undefined;
  let since = 0;
  while (performance.now() - start < timeoutMs) {
    const h = cluster.holders();
    const one = h.length === 1 && h[0] !== not ? h[0] : undefined;
    if (one !== candidate) {
      candidate = one;
      since = performance.now();
    }
    if (candidate && performance.now() - since >= stableMs) return candidate;
    await sleep(50);
  }
  return undefined;
}

/** A LoadBalancer Service gets an address from a pool, and the client reaches it through one node. */
async function servicesTour(cluster: Cluster, say: (s: string) => void): Promise<void> {
  say('\n▶ a LoadBalancer Service: pool 198.18.0.200/29 in the kubevip ConfigMap, one Service on port 7000 …');
  await cluster.cp.apply('apiVersion: v1\nkind: ConfigMap\nmetadata: { name: kubevip, namespace: kube-system }\ndata:\n  cidr-global: 198.18.0.200/29\n');
  const via = cluster.cp.servers.find((x) => x.state === 'running');
  await cluster.cp.request('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { type: 'LoadBalancer', ports: [{ port: TAG_PORT, protocol: 'TCP' }] } }, via);
  let ip: string | undefined;
  for (let i = 0; i < 100 && !ip; i++) {
    const r = await cluster.cp.request('GET', '/api/v1/namespaces/default/services/web', undefined, via);
    ip = (JSON.parse(r.body) as { status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } }).status?.loadBalancer?.ingress?.[0]?.ip;
    if (!ip) await sleep(100);
  }
  if (!ip) return say('  the Service got no address (see the agents\' logs)');
  say(`  default/web  EXTERNAL-IP ${ip}`);
  const script = `const s=require('net').connect(${TAG_PORT},'${ip}');s.on('data',d=>{process.stdout.write(d);process.exit(0)});s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),1000)`;
  for (let i = 0; i < 50; i++) {
    const r = await cluster.lab.exec('client', [process.execPath, '-e', script]);
    if (r.code === 0) return say(`  the client connects to ${ip}:${TAG_PORT}, served by ${r.stdout.trim()} (one node announces each Service address)`);
    await sleep(200);
  }
  say(`  the client could not reach ${ip} yet`);
}

const HELP = `commands:
  status               the table again
  kill NODE            kill -9 the node's agent and API server (a crashed node)
  stop NODE            SIGTERM the node's agent (graceful handover)
  start NODE           start the node's agent (and API server) again
  apidown NODE         stop only the node's API server (health gate moves the VIP)
  apiup NODE           start it again
  partition NODE       cut NODE off from the other nodes (client still reaches all)
  heal                 remove the partition
  timeline             which node answered the client, since it started, with your commands marked
  quit`;

export async function runLabDemo(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('lab: needs root (network namespaces); run sudo npm run lab\n');
    return 2;
  }
  const assets = apiAssets();
  if ('skip' in assets) {
    process.stderr.write(`lab: ${assets.skip}\n`);
    return 2;
  }
  const interactive = process.stdin.isTTY === true && !argv.includes('--tour-only');
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say('building the lab: 3 node namespaces + etcd + client on a bridge, a kube-apiserver per node, vipd per node …');
  const cluster = await startCluster({ nodes: 3, id: 'demo', peers: !argv.includes('--lease-only'), agentEnv: { svc_enable: 'true' } });
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= cluster.destroy());
  const onSignal = () => {
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const n of cluster.lab.nodes) cluster.lab.spawn(n, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', n.name, '--port', String(TAG_PORT)]);
    const holder = await waitForHolder(cluster, undefined, 60_000, 2000);
    const client = startClient(cluster);
    // Hears every gratuitous ARP on the client's side (and asks who has the VIP once a second).
    const prober = await Prober.open({ ifname: 'eth0', vips: [cluster.vip], intervalMs: 1000, netns: cluster.lab.client.ns, srcIp4: cluster.lab.client.ipv4 });
    prober.start();
    const table = () => statusTable(cluster, client, prober);
    // The tour's and the user's actions, marked on the timeline.
    const marks: TimelineMark[] = [];
    const timeline = () => renderTimeline(client.records, { nodes: cluster.lab.nodes.map((n) => n.name), marks, target: `${cluster.vip}:${TAG_PORT}` });
    await sleep(1500);
    say(`\nVIP ${cluster.vip} is held by ${holder}:\n${await table()}`);

    if (holder) {
      say(`\n▶ kill -9 of ${holder}'s vipd and kube-apiserver (a crashed node) …`);
      const t0 = Date.now();
      marks.push({ at: t0, label: `kill -9 of ${holder}'s vipd and kube-apiserver` });
      await cluster.lab.killHost(cluster.lab.host(holder), 'SIGKILL');
      await cluster.cp.servers[cluster.lab.nodes.findIndex((n) => n.name === holder)]!.stop();
      const next = await waitForHolder(cluster, holder, 30_000);
      await sleep(1000);
      const seen = clientSummary(client, t0);
      const how = cluster.peersEnv.vip_peers ? 'peer voting; the Lease follows' : `Lease only, ${cluster.agentEnv(cluster.lab.nodes[0]!).vip_leaseduration} s lease`;
      say(`  ${next} took over; the client's longest outage was ${Math.round(seen.outageMs)} ms (${how})`);
      say(await table());

      say(`\n▶ ${holder} comes back (agent and API server) — no preemption, ${next} keeps the VIP …`);
      await cluster.cp.servers[cluster.lab.nodes.findIndex((n) => n.name === holder)]!.start();
      cluster.lab.spawn(holder, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', holder, '--port', String(TAG_PORT)]);
      cluster.startAgent(cluster.lab.host(holder));
      marks.push({ at: Date.now(), label: `${holder} started again` });
      await sleep(3000);
      say(await table());

      if (next) {
        say(`\n▶ SIGTERM to ${next}'s vipd (graceful: VIP removed, Lease released, taken over at once) …`);
        const t1 = Date.now();
        marks.push({ at: t1, label: `SIGTERM to ${next}'s vipd` });
        await cluster.agents.get(next)!.stop();
        const third = await waitForHolder(cluster, next, 10_000);
        await sleep(800);
        say(`  ${third} took over; the client's longest outage was ${Math.round(clientSummary(client, t1).outageMs)} ms`);
        cluster.startAgent(cluster.lab.host(next));
        await sleep(1000);
        say(await table());
      }
    }

    await servicesTour(cluster, say);
    say(`\n${timeline()}`);

    if (!interactive) {
      prober.close();
      say('\n(tour done; run `sudo npm run lab` on a terminal to try commands yourself)');
      return 0;
    }
    say(`\n${HELP}`);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    for (;;) {
      const line = (await rl.question('lab> ')).trim();
      const [cmd, arg] = line.split(/\s+/);
      const node = (): LabHost | undefined => {
        try {
          return arg ? cluster.lab.host(arg) : undefined;
        } catch {
          return undefined;
        }
      };
      const server = (n: LabHost) => cluster.cp.servers[cluster.lab.nodes.indexOf(n)]!;
      try {
        const n = node();
        if ((n && ['kill', 'stop', 'start', 'apidown', 'apiup', 'partition'].includes(cmd!)) || cmd === 'heal') marks.push({ at: Date.now(), label: line });
        if (cmd === 'quit' || cmd === 'exit') break;
        else if (!cmd || cmd === 'status') say(await table());
        else if (cmd === 'help') say(HELP);
        else if (cmd === 'timeline') say(timeline());
        else if (!n && ['kill', 'stop', 'start', 'apidown', 'apiup', 'partition'].includes(cmd)) say(`unknown node ${arg ?? ''}; nodes: ${cluster.lab.nodes.map((x) => x.name).join(', ')}`);
        else if (cmd === 'kill' && n) {
          await cluster.lab.killHost(n, 'SIGKILL');
          await server(n).stop();
        } else if (cmd === 'stop' && n) await cluster.agents.get(n.name)?.stop();
        else if (cmd === 'start' && n) {
          if (server(n).state !== 'running') await server(n).start();
          cluster.lab.spawn(n, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', n.name, '--port', String(TAG_PORT)]);
          cluster.startAgent(n);
        } else if (cmd === 'apidown' && n) await server(n).stop();
        else if (cmd === 'apiup' && n) await server(n).start();
        else if (cmd === 'partition' && n) await cluster.lab.partition([[n], cluster.lab.nodes.filter((x) => x !== n)]);
        else if (cmd === 'heal') await cluster.lab.heal();
        else say(`unknown command; ${HELP}`);
        if (cmd && cmd !== 'status' && cmd !== 'help') {
          await sleep(1500);
          say(await table());
        }
      } catch (err) {
        say(`error: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    rl.close();
    prober.close();
    say(`\n${timeline()}`);
    return 0;
  } finally {
    say('removing the lab …');
    await cleanup();
  }
}
