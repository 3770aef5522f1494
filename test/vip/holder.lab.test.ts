/**
 * The holder on a real network: lab namespaces on a bridge, the compiled agent in a node
 * namespace, tcpdump on the bridge, the project's own frame parser reading the capture.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { distEntry, startAgentProcess, type AgentProcess } from '../../lab/agents.js';
import { createLab, type Lab, type LabHost } from '../../lab/netns.js';
import type { Capture } from '../../lab/netns.js';
import { parseFrame, garpRequest, type ParsedFrame } from '../../src/net/frames.js';
import { openPacketSocket } from '../../src/net/packet.js';
import { Prober } from '../../lab/prober.js';
import { lastAnswerFrom, linger } from '../../lab/twoholders.js';
import { wallNow } from '../../lab/wallclock.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/vip/holder.lab.test.ts: skipped, network namespaces need root');

interface Seen {
  t: number; // ms since epoch
  f: ParsedFrame;
}

async function frames(cap: Capture): Promise<Seen[]> {
  const recs = await cap.stop();
  return recs.flatMap((r) => {
    const f = parseFrame(r.frame);
    return f ? [{ t: r.time / 1000, f }] : [];
  });
}

/** Gratuitous ARP (either form) or unsolicited NA for `vip` sent by `mac`. */
function isAnnouncement(s: Seen, vip: string, mac: string): boolean {
  const f = s.f;
  if (f.kind === 'arp') return f.sha === mac && f.spa === vip && f.tpa === vip && f.ethDst === 'ff:ff:ff:ff:ff:ff';
  if (f.kind === 'na') return f.ethSrc === mac && f.target === vip && !f.solicited && f.dst === 'ff02::1';
  return false;
}

async function addresses(lab: Lab, host: LabHost, dev: string): Promise<string> {
  return (await lab.exec(host, ['ip', '-o', 'addr', 'show', 'dev', dev])).stdout;
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await cond()) return performance.now() - start;
    await sleep(stepMs);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe.skipIf(!isRoot)('holder on a real network (agent responder)', () => {
  let lab: Lab;
  let n1: LabHost;
  let n2: LabHost;
  let agent: AgentProcess | undefined;
  let vip4: string;
  let vip6: string;

  beforeAll(async () => {
    lab = await createLab({ nodes: 2 });
    n1 = lab.nodes[0]!;
    n2 = lab.nodes[1]!;
    vip4 = lab.vip4;
    vip6 = lab.vip6;
  });
  afterEach(async () => {
    if (agent) await agent.stop();
    agent = undefined;
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const start = (env: Record<string, string> = {}): AgentProcess => {
    agent = startAgentProcess(lab, n1, { address: `${vip4},${vip6}`, vip_arpRate: '1000', ...env });
    return agent;
  };
  const holding = (a: AgentProcess, vip: string) => a.waitForLog((l) => l.msg === 'holding VIP' && l.vip === vip);

  it('binds the VIP, announces a burst of both gARP forms and unsolicited NAs, and the client reaches it', async () => {
    const cap = await lab.capture();
    const server = lab.spawn(n1, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', 'n1', '--port', '6443']);
    const a = start();
    await holding(a, vip4);
    await holding(a, vip6);
    await sleep(1500); // the burst lasts one second

    expect(await addresses(lab, n1, 'lo')).toContain(`${vip4}/32`);
    expect(await addresses(lab, n1, 'lo')).toContain(`${vip6}/128`);
    // The kernel answers nothing for the VIP on eth0; the agent does, so the client can connect.
    const conn4 = await lab.exec('client', [process.execPath, '-e', `require('net').connect(6443, '${vip4}').on('data', d => { process.stdout.write(d); process.exit(0) }).on('error', e => { console.error(e.message); process.exit(1) })`]);
    expect(conn4.stdout.trim()).toBe('n1');
    const conn6 = await lab.exec('client', [process.execPath, '-e', `require('net').connect(6443, '${vip6}').on('data', d => { process.stdout.write(d); process.exit(0) }).on('error', e => { console.error(e.message); process.exit(1) })`]);
    expect(conn6.stdout.trim()).toBe('n1');
    server.kill('SIGTERM');

    const neigh = (await lab.exec('client', ['ip', 'neigh', 'show'])).stdout;
    expect(neigh).toMatch(new RegExp(`^${vip4.replaceAll('.', '\\.')} dev eth0 lladdr ${n1.mac}`, 'm'));
    expect(neigh).toMatch(new RegExp(`^${vip6} dev eth0 lladdr ${n1.mac}`, 'm'));

    const seen = await frames(cap);
    const garps = seen.filter((s) => s.f.kind === 'arp' && isAnnouncement(s, vip4, n1.mac));
    const requests = garps.filter((s) => s.f.kind === 'arp' && s.f.op === 1);
    const replies = garps.filter((s) => s.f.kind === 'arp' && s.f.op === 2);
    // Burst: immediately, then more within the first second (default offsets 0,100,300,600,1000 ms).
    expect(requests.length).toBeGreaterThanOrEqual(5);
    expect(replies.length).toBeGreaterThanOrEqual(5);
    const t0 = requests[0]!.t;
    const offsets = requests.slice(0, 5).map((s) => Math.round(s.t - t0));
    for (const [i, want] of [0, 100, 300, 600, 1000].entries()) expect(Math.abs(offsets[i]! - want)).toBeLessThan(150);
    for (const s of requests) if (s.f.kind === 'arp') expect(s.f.tha).toBe('00:00:00:00:00:00');

    const nas = seen.filter((s) => isAnnouncement(s, vip6, n1.mac));
    expect(nas.length).toBeGreaterThanOrEqual(5);
    for (const s of nas) {
      if (s.f.kind !== 'na') continue;
      expect(s.f.ethDst).toBe('33:33:00:00:00:01');
      expect(s.f.hopLimit).toBe(255);
      expect(s.f.override).toBe(true);
      expect(s.f.targetLinkAddr).toBe(n1.mac);
    }
  });

  it('puts back a VIP someone deletes, within a second, and announces it again', async () => {
    const a = start();
    await holding(a, vip4);
    await sleep(1200);
    const cap = await lab.capture();
    const deletedAt = Date.now();
    await lab.exec(n1, ['ip', 'addr', 'del', `${vip4}/32`, 'dev', 'lo'], { check: true });
    const back = await waitFor(async () => (await addresses(lab, n1, 'lo')).includes(`${vip4}/32`), 1000, 10);
    await sleep(300);
    const seen = await frames(cap);
    expect(back).toBeLessThan(1000);
    expect(seen.some((s) => s.t >= deletedAt && isAnnouncement(s, vip4, n1.mac))).toBe(true);
  });

  it('announces again when the link comes back', async () => {
    const a = start({ vip_arpRate: '60000' }); // no refresh inside the window: only link-up can announce
    await holding(a, vip4);
    await sleep(1200); // burst over
    await lab.linkDown(n1);
    await sleep(200);
    const cap = await lab.capture();
    const upAt = Date.now();
    await lab.linkUp(n1);
    await sleep(500);
    const seen = await frames(cap);
    expect(seen.some((s) => s.t >= upAt && isAnnouncement(s, vip4, n1.mac))).toBe(true);
    expect(seen.some((s) => s.t >= upAt && isAnnouncement(s, vip6, n1.mac))).toBe(true);
  });

  it('on SIGTERM removes the VIP, stops announcing and exits 0', async () => {
    const a = start();
    await holding(a, vip4);
    const cap = await lab.capture();
    const exit = await a.stop();
    agent = undefined;
    const stoppedAt = Date.now();
    await sleep(1500); // more than one refresh period
    const seen = await frames(cap);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(await addresses(lab, n1, 'lo')).not.toContain(vip4);
    expect(await addresses(lab, n1, 'lo')).not.toContain(vip6);
    expect(seen.filter((s) => s.t > stoppedAt && (isAnnouncement(s, vip4, n1.mac) || isAnnouncement(s, vip6, n1.mac)))).toEqual([]);
  });

  it('after kill -9, a restarted agent removes the stale VIP before anything else', async () => {
    const a = start();
    await holding(a, vip4);
    a.child.kill('SIGKILL');
    await a.exited;
    agent = undefined;
    expect(await addresses(lab, n1, 'lo')).toContain(vip4); // left behind by the crash
    const b = start({ vip_leaderelection: 'false' });
    const stale = await b.waitForLog((l) => l.reason === 'stale' && l.vip === vip4);
    const held = await holding(b, vip4);
    expect(b.logs.indexOf(stale)).toBeLessThan(b.logs.indexOf(held));
  });

  it('after kill -9 with no restart (kubeadm reset), the address on lo expires by its kernel lifetime', async () => {
    const a = start({ vip_lo_address_lifetime: '2' });
    await holding(a, vip4);
    await holding(a, vip6);
    await sleep(1200); // refreshed at least once: the lifetime runs from the last refresh
    a.child.kill('SIGKILL');
    await a.exited;
    agent = undefined;
    expect(await addresses(lab, n1, 'lo')).toContain(vip4); // still there right after the kill
    const ms = await waitFor(async () => {
      const lo = await addresses(lab, n1, 'lo');
      return !lo.includes(vip4) && !lo.includes(vip6);
    }, 5_000, 100);
    console.log(`VIPs gone from lo ${Math.round(ms)} ms after kill -9 (lifetime 2 s)`);
  });

  it('reports and does not claim a VIP another MAC already answers for at cold start', async () => {
    // n2 answers for the VIP the ordinary way: the address on its interface.
    await lab.exec(n2, ['ip', 'addr', 'add', `${vip4}/32`, 'dev', 'eth0'], { check: true });
    try {
      agent = startAgentProcess(lab, n1, { address: vip4, vip_conflict_retry_ms: '300' });
      const line = await agent.waitForLog((l) => l.reason === 'conflict');
      expect(line.owner).toBe(n2.mac);
      await sleep(500);
      expect(await addresses(lab, n1, 'lo')).not.toContain(vip4);
      expect(agent.logs.some((l) => l.msg === 'holding VIP')).toBe(false);
    } finally {
      await lab.exec(n2, ['ip', 'addr', 'del', `${vip4}/32`, 'dev', 'eth0']);
    }
    // Once the other owner is gone, the retry claims it.
    await agent.waitForLog((l) => l.msg === 'holding VIP', 5000);
  });

  it('reports a second MAC announcing the VIP while we hold it, and answers with a fresh announcement', async () => {
    const a = start({ vip_arpRate: '60000' });
    await holding(a, vip4);
    await sleep(1200);
    const cap = await lab.capture();
    const intruder = await openPacketSocket('eth0', { netns: n2.ns });
    const claimedAt = Date.now();
    try {
      intruder.send(garpRequest(n2.mac, vip4));
    } finally {
      intruder.close();
    }
    const line = await a.waitForLog((l) => l.msg.includes('conflict') || l.reason === 'conflict');
    await sleep(300);
    const seen = await frames(cap);
    expect(JSON.stringify(line)).toContain(n2.mac);
    expect(seen.some((s) => s.t >= claimedAt && isAnnouncement(s, vip4, n1.mac))).toBe(true);
  });
});

describe.skipIf(!isRoot)('bad input touches nothing', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await createLab({ nodes: 1, ipv6: false });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it.each([
    [{ address: '198.18.0.300' }, /^vipd: invalid setting address="198\.18\.0\.300": "198\.18\.0\.300" is not an IPv4 or IPv6 address/],
    [{ address: '198.18.0.100', vip_interface: 'eth9' }, /^vipd: invalid setting vip_interface="eth9": no such interface on this host \(have: eth0\)/],
    [{ address: '198.18.0.100', vip_subnet: '33' }, /^vipd: invalid setting vip_subnet="33": prefix length for 198\.18\.0\.100 \(IPv4\) must be from 1 to 32/],
    [{ address: '198.18.0.100', vip_frobnicate: '1' }, /^vipd: invalid setting vip_frobnicate="1": unknown setting/],
  ])('%j exits 2 with one line and adds no address', async (env, message) => {
    const n1 = lab.nodes[0]!;
    const before = (await lab.exec(n1, ['ip', '-o', 'addr'])).stdout;
    const a = startAgentProcess(lab, n1, env);
    const exit = await a.exited;
    expect(exit.code).toBe(2);
    const text = a.stderrText().trim();
    expect(text.split('\n')).toHaveLength(1);
    expect(text).toMatch(message);
    expect((await lab.exec(n1, ['ip', '-o', 'addr'])).stdout).toBe(before);
    expect(await lab.exec(n1, ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore'])).toMatchObject({ stdout: '0\n' });
  });
});

describe.skipIf(!isRoot)('a killed or frozen agent stops answering (docs/design.md, rule 1)', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await createLab({ nodes: 1 });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /**
   * Runs the agent, probes the VIP every 10 ms from the client, applies `signal` and returns how
   * long after it the node still answered (ms) for each VIP.
   */
  async function lingerAfter(signal: 'SIGKILL' | 'SIGSTOP', env: Record<string, string>): Promise<Record<string, number>> {
    const n1 = lab.nodes[0]!;
    const vips = [lab.vip4, lab.vip6];
    const a = startAgentProcess(lab, n1, { address: vips.join(','), ...env });
    const prober = await Prober.open({ ifname: 'eth0', vips, intervalMs: 10, netns: lab.client.ns, srcIp4: lab.client.ipv4, srcIp6: lab.client.ipv6 });
    try {
      for (const vip of vips) await a.waitForLog((l) => l.msg === 'holding VIP' && l.vip === vip);
      prober.start();
      await sleep(500);
      for (const vip of vips) expect(lastAnswerFrom(prober.records(vip), n1.mac)).not.toBeNull();
      const at = wallNow();
      a.child.kill(signal);
      await sleep(4000);
      prober.stop();
      return Object.fromEntries(vips.map((vip) => [vip, linger(prober.records(vip), n1.mac, at)]));
    } finally {
      prober.close();
      if (signal === 'SIGSTOP') a.child.kill('SIGCONT');
      await a.stop();
      // kill -9 leaves the VIP behind by design; the next start (or this) cleans it.
      await lab.exec(n1, ['ip', 'addr', 'flush', 'dev', 'lo', 'scope', 'global']);
      await lab.exec(n1, ['ip', 'addr', 'del', `${lab.vip4}/32`, 'dev', 'eth0']);
      await lab.exec(n1, ['ip', 'addr', 'del', `${lab.vip6}/128`, 'dev', 'eth0']);
    }
  }

  it.each(['SIGKILL', 'SIGSTOP'] as const)('agent responder: %s silences the node at once', async (signal) => {
    const l = await lingerAfter(signal, {});
    console.log(`linger after ${signal}, responder agent (ms):`, JSON.stringify(l));
    // Nothing but the agent answers, so the bound is the prober's own resolution.
    for (const ms of Object.values(l)) expect(ms).toBeLessThan(50);
  });

  it.each(['SIGKILL', 'SIGSTOP'] as const)('kernel responder: %s is bounded by the address lifetime', async (signal) => {
    const l = await lingerAfter(signal, { vip_responder: 'kernel', vip_address_lifetime: '1' });
    console.log(`linger after ${signal}, responder kernel, lifetime 1 s (ms):`, JSON.stringify(l));
    // The kernel expires addresses on whole seconds from the last refresh (refreshed every 250 ms),
    // checked by a timer with up to a second of slack: lifetime + 1 s.
    for (const ms of Object.values(l)) expect(ms).toBeLessThan(2000);
  });
});
