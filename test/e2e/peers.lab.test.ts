/**
 * Issue 5 end to end: the control-plane lab with peer voting on (vip_peers + a shared key). Real
 * agents, real API servers, a prober in the client namespace and a bridge capture checking for two
 * holders after every test (docs/design.md).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { labFile, startCluster, type Cluster } from '../../lab/controlplane.js';
import type { LabHost } from '../../lab/netns.js';
import { Prober } from '../../lab/prober.js';
import { findTwoHolderEvents, firstAnswerFrom } from '../../lab/twoholders.js';
import { watchWire, type WireWatch } from '../../lab/wirewatch.js';
import { describeWithApi } from '../lab/with-api.js';
import { readFile } from 'node:fs/promises';
import { parsePeerKey } from '../../src/config/peer-key.js';
import { decodeMessage } from '../../src/election/peers/codec.js';
import { agentStatus as agentStatusOf } from '../../lab/agents.js';
import { ipFromBytes } from '../../src/net/ip.js';

/** The UDP payload of an Ethernet + IPv4 frame, or null. */
function udpPayload(frame: Buffer): { src: string; dst: string; payload: Buffer } | null {
  if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) return null;
  const ip = frame.subarray(14);
  const ihl = (ip[0]! & 0x0f) * 4;
  if (ip[9] !== 17) return null;
  const total = ip.readUInt16BE(2);
  const udp = ip.subarray(ihl, total);
  return { src: ipFromBytes(ip.subarray(12, 16)), dst: ipFromBytes(ip.subarray(16, 20)), payload: udp.subarray(8) };
}

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/e2e/peers.lab.test.ts: skipped, network namespaces need root');

(isRoot ? describeWithApi : describe.skip)('peer voting with the Lease (3 nodes, real API servers)', () => {
  let cluster: Cluster;
  let prober: Prober;
  let wire: WireWatch;
  let peersEnv: Record<string, string>;

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 3, peers: true, startAgents: false });
    peersEnv = { ...cluster.peersEnv, prometheus_server: ':2112' };
    for (const n of cluster.lab.nodes) cluster.startAgent(n, peersEnv);
    await waitHolder();
  }, 180_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  beforeEach(async () => {
    wire = await watchWire(cluster.lab, [cluster.vip]);
    prober = wire.prober;
  });
  afterEach(async () => {
    const { events } = await wire.stop();
    expect(events, 'two holders seen on the wire').toEqual([]);
    await cluster.lab.heal();
    for (const s of cluster.cp.servers) if (s.state !== 'running') await s.start();
    for (const n of cluster.lab.nodes) {
      const a = cluster.agents.get(n.name);
      if (a && a.child.signalCode === null && a.child.exitCode === null) continue;
      cluster.startAgent(n, peersEnv);
    }
    await waitHolder();
  });

  const host = (name: string): LabHost => cluster.lab.host(name);
  const serverOf = (name: string) => cluster.cp.servers[cluster.lab.nodes.findIndex((n) => n.name === name)]!;

  /** `not`: a node that must not be the holder; `frozen`: a stopped agent whose last log line cannot be believed. */
  async function waitHolder(timeoutMs = 30_000, not?: string, frozen?: string): Promise<string> {
    const start = performance.now();
    let last = '';
    while (performance.now() - start < timeoutMs) {
      const holders = cluster.holders().filter((h) => h !== frozen);
      last = holders.join(',');
      if (holders.length === 1 && holders[0] !== not) return holders[0]!;
      await sleep(20);
    }
    throw new Error(`no single holder within ${timeoutMs} ms (holding: [${last}])`);
  }

  async function leaseHolder(): Promise<string | undefined> {
    const via = cluster.cp.servers.find((s) => s.state === 'running');
    const r = await cluster.cp.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-cp-lock', undefined, via);
    return r.status === 200 ? (JSON.parse(r.body) as { spec?: { holderIdentity?: string } }).spec?.holderIdentity || undefined : undefined;
  }

  /** Until every agent has logged for at least `ms` (its first log line is its start). */
  async function waitAllUp(ms: number): Promise<void> {
    for (;;) {
      const youngest = Math.max(...[...cluster.agents.values()].map((a) => a.logs[0]?.seenAt ?? performance.now()));
      if (performance.now() - youngest >= ms) return;
      await sleep(50);
    }
  }

  /** Every agent's peer events and VIP changes since `since` (performance.now()), in arrival order. */
  function peerLog(since: number): string {
    const lines = [...cluster.agents].flatMap(([name, a]) => a.logs.filter((l) => l.seenAt >= since && (l.msg.startsWith('peer ') || l.msg.endsWith(' VIP'))).map((l) => ({ name, l })));
    lines.sort((x, y) => x.l.seenAt - y.l.seenAt);
    return lines.map(({ name, l }) => `${(l.seenAt - since).toFixed(0)}ms ${name} ${l.msg} ${JSON.stringify(Object.fromEntries(Object.entries(l).filter(([k]) => !['level', 'time', 'msg', 'seenAt', 'pid', 'hostname'].includes(k))))}`).join('\n');
  }

  /** Wall ms from `since` until a MAC other than `oldMac` answered the prober. */
  function takeoverMs(oldMac: string, since: number): number | null {
    const records = prober.records(cluster.vip);
    let first: number | null = null;
    for (const n of cluster.lab.nodes) {
      if (n.mac === oldMac) continue;
      const t = firstAnswerFrom(records, n.mac, since);
      if (t !== null && (first === null || t < first)) first = t;
    }
    return first === null ? null : first - since;
  }

  it('one peer leader holds the VIP, and the Lease follows it', async () => {
    const holder = await waitHolder();
    const start = performance.now();
    while ((await leaseHolder()) !== holder && performance.now() - start < 10_000) await sleep(100);
    expect(await leaseHolder()).toBe(holder);
  });

  const agentStatus = (name: string) => agentStatusOf(cluster.lab, host(name));

  it('/status: the peer leader says it holds and leads, a follower says it does not, names the leader and has heard it', async () => {
    const holder = await waitHolder();
    const follower = cluster.lab.nodes.find((n) => n.name !== holder)!.name;
    let h = await agentStatus(holder);
    let f = await agentStatus(follower);
    for (let i = 0; i < 100 && !(h?.vips[0]?.holding && f?.peers?.leader === holder); i++) {
      await sleep(100);
      h = await agentStatus(holder);
      f = await agentStatus(follower);
    }
    expect(h).toMatchObject({ node: holder, election: 'hybrid', vips: [{ ip: cluster.vip, holding: true }], peers: { role: 'leader', leader: holder } });
    expect(h!.peers!.leaderGrantLeftMs).toBeGreaterThan(0);
    expect(f).toMatchObject({ node: follower, election: 'hybrid', vips: [{ ip: cluster.vip, holding: false }], peers: { role: 'follower', leader: holder, term: h!.peers!.term } });
    expect(f!.peers!.heard.map((x) => x.peer)).toContain(holder);
  });

  it('crash of the holder: the VIP moves in well under a second (peer evidence, not a Lease duration)', async () => {
    const old = await waitHolder();
    await sleep(500);
    const at = Date.now();
    cluster.agents.get(old)!.child.kill('SIGKILL');
    const next = await waitHolder(10_000, old);
    await sleep(1000);
    const ms = takeoverMs(host(old).mac, at);
    console.log(`peer crash failover ${old} → ${next}: first answer from the new holder after ${ms} ms`);
    expect(ms).not.toBeNull();
    expect(ms!).toBeLessThan(3000); // the Lease alone would take 3 s here; the bench measures the real number
  });

  it('SIGTERM of the leader: its release datagram reaches both peers on the wire before it exits and hands over to the follower it names', async () => {
    const old = await waitHolder();
    // The agent the previous test killed was just restarted: a successor named while it is still
    // starting up is a different case (docs/election.md, leader transfer).
    await waitAllUp(2000);
    await sleep(500);
    const parsed = parsePeerKey(await readFile(peersEnv.vip_peer_key_file!));
    if (!parsed.ok) throw parsed.error;
    const key = parsed.key;
    const names = cluster.lab.nodes.map((n) => n.name);
    const nameOf = new Map(cluster.lab.nodes.map((n) => [n.ipv4, n.name]));
    const capture = await cluster.lab.capture({ filter: `udp port 7946 and src host ${host(old).ipv4}` });
    const at = Date.now();
    const t0 = performance.now();
    const exit = await cluster.agents.get(old)!.stop();
    const next = await waitHolder(10_000, old);
    await sleep(300);
    const frames = await capture.stop();
    expect(exit.code).toBe(0);
    // What the old leader sent after the signal, decoded and authenticated as its peers would.
    const sent = frames
      .filter((r) => r.time / 1000 >= at)
      .map((r) => udpPayload(r.frame))
      .filter((u): u is NonNullable<typeof u> => u !== null)
      .map((u) => decodeMessage(u.payload, { key, self: nameOf.get(u.dst) ?? '', peers: names }))
      .filter((d) => d.ok)
      .map((d) => d.msg);
    const releases = sent.flatMap((m) => (m.body.type === 'release' ? [{ to: m.to, transferTo: m.body.transferTo }] : []));
    expect(new Set(releases.map((r) => r.to)), `release datagrams from ${old} after SIGTERM (sent: ${sent.map((m) => `${m.body.type}→${m.to}`).join(', ')})`).toEqual(new Set(names.filter((n) => n !== old)));
    // Leader transfer: every release names the same healthy follower, and that node took over.
    const targets = new Set(releases.map((r) => r.transferTo));
    expect(targets.size).toBe(1);
    expect([...targets][0], `the named successor took over; what the agents logged:\n${peerLog(t0 - 2000)}`).toBe(next);
    const ms = takeoverMs(host(old).mac, at);
    console.log(`peer graceful handover ${old} → ${next}: first answer from the new holder ${ms} ms after SIGTERM`);
    expect(ms).not.toBeNull();
  });

  it('health gate with peers: the holder\'s own API server stops, the agent runs on, and the VIP moves to a node whose API works', async () => {
    const old = await waitHolder();
    await serverOf(old).stop();
    const next = await waitHolder(15_000, old);
    expect(next).not.toBe(old);
    const oldAgent = cluster.agents.get(old)!;
    expect(oldAgent.child.exitCode).toBeNull();
  });

  it('all API servers stopped: the VIP stays up, and still moves when its holder crashes', async () => {
    for (const s of cluster.cp.servers) await s.stop();
    await sleep(3000); // several health probes: every node sees its own API server down, and all the others too
    const holder = await waitHolder();
    const at = Date.now();
    cluster.agents.get(holder)!.child.kill('SIGKILL');
    const next = await waitHolder(10_000, holder);
    expect(next).not.toBe(holder);
    await sleep(500);
    expect(takeoverMs(host(holder).mac, at)).not.toBeNull();
  });

  it('partition 1 | 2: only the majority side holds; the isolated holder unbinds by its deadline', async () => {
    const old = await waitHolder();
    const others = cluster.lab.nodes.filter((n) => n.name !== old);
    await cluster.lab.partition([[host(old)], others]); // the client is in no group: it still sees both sides
    const next = await waitHolder(10_000, old);
    expect(others.map((n) => n.name)).toContain(next);
    const bound = performance.now();
    while ((await cluster.lab.exec(host(old), ['ip', '-o', 'addr', 'show', 'dev', 'lo'])).stdout.includes(cluster.vip)) {
      if (performance.now() - bound > 5000) throw new Error('the isolated node kept its VIP');
      await sleep(50);
    }
  });

  it('SIGSTOP of the holder longer than the election timeout, then SIGCONT: it does not hold alongside the new holder', async () => {
    const old = await waitHolder();
    const agent = cluster.agents.get(old)!;
    agent.child.kill('SIGSTOP');
    let next: string;
    try {
      next = await waitHolder(10_000, old, old);
      await sleep(1000);
    } finally {
      agent.child.kill('SIGCONT');
    }
    await sleep(2000);
    expect(cluster.holders()).toEqual([next]);
    // The wire check in afterEach proves no request was answered by both while it thawed.
  });

  it('a peer with the wrong key is ignored: it never holds and the holder stays', async () => {
    const holder = await waitHolder();
    const victim = cluster.lab.nodes.find((n) => n.name !== holder)!;
    await cluster.agents.get(victim.name)!.stop();
    const wrong = await labFile(cluster.lab, 'wrong.key', randomBytes(32).toString('base64'));
    const a = cluster.startAgent(victim, { ...peersEnv, vip_peer_key_file: wrong });
    await sleep(3000);
    expect(a.logs.some((l) => l.msg === 'holding VIP')).toBe(false);
    expect(cluster.holders()).toEqual([holder]);
    // The others drop its packets and count them (whichever of them it sent to first).
    const badMac = async (n: LabHost): Promise<number> => {
      const text = (await cluster.lab.exec(n, [process.execPath, '-e', "fetch('http://127.0.0.1:2112/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"])).stdout;
      return Number(/vipd_peer_messages_total\{outcome="bad-mac"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const counted = async () => (await Promise.all(cluster.lab.nodes.filter((n) => n !== victim).map(badMac))).reduce((x, y) => x + y, 0);
    const start = performance.now();
    while ((await counted()) === 0 && performance.now() - start < 10_000) await sleep(200);
    expect(await counted()).toBeGreaterThan(0);
    expect(cluster.holders()).toEqual([holder]);
    await a.stop();
    cluster.startAgent(victim, peersEnv);
  });
});

(isRoot ? describeWithApi : describe.skip)('first kubeadm init: single-node bootstrap, then two nodes join', () => {
  let cluster: Cluster;
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('holds with no API and no peers, keeps the VIP while the API comes up and peers join, without flapping', async () => {
    cluster = await startCluster({ nodes: 3, peers: true, startAgents: false });
    const env = cluster.peersEnv;
    for (const s of cluster.cp.servers) await s.stop(); // before `kubeadm init` there is no API server
    const [n1, n2, n3] = cluster.lab.nodes as [LabHost, LabHost, LabHost];
    const prober = await Prober.open({ ifname: 'eth0', vips: [cluster.vip], intervalMs: 10, netns: cluster.lab.client.ns, srcIp4: cluster.lab.client.ipv4 });
    try {
      const first = cluster.startAgent(n1, { ...env, vip_peer_bootstrap: 'true' });
      await first.waitForLog((l) => l.msg === 'holding VIP', 20_000);
      prober.start();
      await sleep(500);
      await cluster.cp.servers[0]!.start(); // kubeadm init brings the API up behind the VIP
      await sleep(1500);
      await cluster.cp.servers[1]!.start();
      await cluster.cp.servers[2]!.start();
      cluster.startAgent(n2, env); // kubeadm join --control-plane, twice
      cluster.startAgent(n3, env);
      await sleep(5000);
      prober.stop();
      expect(cluster.holders()).toEqual(['n1']);
      const records = prober.records(cluster.vip);
      const answered = records.filter((r) => r.answers.length > 0);
      expect(new Set(answered.flatMap((r) => r.answers.map((a) => a.mac)))).toEqual(new Set([n1.mac]));
      // No flap: the VIP never stopped answering while the cluster formed (a lost probe or two on a
      // busy machine is not a flap; a flap is the holder releasing, which the logs would show).
      expect(first.logs.filter((l) => l.msg === 'released VIP')).toEqual([]);
      expect(findTwoHolderEvents({ vip: cluster.vip, records, claims: prober.claims(cluster.vip) })).toEqual([]);
      // Normal operation: the bootstrap rule has ended and the Lease follows the holder.
      await first.waitForLog((l) => l.event === 'bootstrap-ended', 10_000);
    } finally {
      prober.close();
    }
  }, 120_000);
});
