import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createLab, removeStaleLabs, VIP4, VIP6, type Lab, type LabHost } from '../../lab/netns.js';
import { run } from '../../lab/exec.js';
import { distEntry } from '../../lab/agents.js';
import type { PcapRecord } from '../../lab/pcap.js';
import type { ProbeSummary } from '../../lab/tcpprobe.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/lab/netns.test.ts: skipped, network namespaces need root');

const distCli = (name: string): string => distEntry(`lab/${name}`);

async function namespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

// A zombie (killed, not yet reaped by its parent) counts as dead.
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function ping(lab: Lab, from: LabHost, to: string, tries = 1): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    const r = await lab.exec(from, ['ping', '-n', '-c', '1', '-W', '1', to]);
    if (r.code === 0) return true;
  }
  return false;
}

// Minimal Ethernet/ARP/ICMP reading, enough to recognise our own pings on the wire.
interface Seen {
  src: string;
  dst: string;
  kind: 'arp-request' | 'arp-reply' | 'icmp-echo' | 'icmp-reply' | 'icmp6-echo' | 'icmp6-reply' | 'other';
  target?: string;
}
const mac = (b: Buffer, o: number): string => [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
function classify(r: PcapRecord): Seen {
  const f = r.frame;
  const base = { src: mac(f, 6), dst: mac(f, 0) };
  const type = f.readUInt16BE(12);
  if (type === 0x0806) return { ...base, kind: f.readUInt16BE(20) === 1 ? 'arp-request' : 'arp-reply', target: [...f.subarray(38, 42)].join('.') };
  if (type === 0x0800 && f[23] === 1) {
    const ihl = (f[14]! & 0x0f) * 4;
    const t = f[14 + ihl];
    return { ...base, kind: t === 8 ? 'icmp-echo' : t === 0 ? 'icmp-reply' : 'other' };
  }
  if (type === 0x86dd && f[20] === 58) {
    const t = f[54];
    return { ...base, kind: t === 128 ? 'icmp6-echo' : t === 129 ? 'icmp6-reply' : 'other' };
  }
  return { ...base, kind: 'other' };
}

describe.skipIf(!isRoot)('network lab', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await createLab({ nodes: 3 });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('builds namespaces, a bridge in the switch namespace and the documented addresses', async () => {
    const ns = await namespaces();
    for (const h of [...lab.hosts.map((x) => x.ns), lab.switchNs]) expect(ns).toContain(h);
    expect(lab.nodes.map((n) => [n.name, n.ipv4, n.ipv6, n.mac])).toEqual([
      ['n1', '198.18.0.11', '2001:db8::11', '02:00:00:00:00:11'],
      ['n2', '198.18.0.12', '2001:db8::12', '02:00:00:00:00:12'],
      ['n3', '198.18.0.13', '2001:db8::13', '02:00:00:00:00:13'],
    ]);
    expect([lab.client.ipv4, lab.client.ipv6, lab.vip4, lab.vip6]).toEqual(['198.18.0.2', '2001:db8::2', VIP4, VIP6]);
    const addr = JSON.parse((await lab.exec(lab.nodes[1]!, ['ip', '-j', 'addr', 'show', 'eth0'], { check: true })).stdout) as Array<{
      address: string;
      addr_info: Array<{ local: string; prefixlen: number; tentative?: boolean }>;
    }>;
    expect(addr[0]!.address).toBe('02:00:00:00:00:12');
    expect(addr[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['198.18.0.12/24', '2001:db8::12/64']));
    expect(addr[0]!.addr_info.some((a) => a.tentative)).toBe(false);
    const br = JSON.parse((await lab.exec('sw', ['ip', '-j', '-d', 'link', 'show', lab.bridge], { check: true })).stdout) as Array<{
      linkinfo: { info_data: { stp_state: number; forward_delay: number; mcast_snooping: number } };
    }>;
    expect(br[0]!.linkinfo.info_data).toMatchObject({ stp_state: 0, forward_delay: 0, mcast_snooping: 0 });
    expect((await lab.exec(lab.client, ['cat', '/proc/sys/net/ipv4/conf/eth0/arp_accept'])).stdout.trim()).toBe('1');
    expect((await lab.exec(lab.client, ['cat', '/proc/sys/net/ipv6/conf/eth0/accept_untracked_na'])).stdout.trim()).toBe('1');
    expect((await lab.exec(lab.nodes[0]!, ['cat', '/proc/sys/net/ipv6/conf/eth0/accept_dad'])).stdout.trim()).toBe('0');
    // Nothing of the lab in the root namespace.
    const rootLinks = (await run(['ip', '-o', 'link', 'show'])).stdout;
    expect(rootLinks).not.toContain('sw-n1');
  });

  it('client reaches every node over IPv4 and IPv6', async () => {
    for (const n of lab.nodes) {
      expect(await ping(lab, lab.client, n.ipv4), n.ipv4).toBe(true);
      expect(await ping(lab, lab.client, n.ipv6), n.ipv6).toBe(true);
    }
  });

  it('a TCP connection from the client to a tag server in n2 answers "n2", on v4 and v6 (tagserver and tcpprobe CLIs)', async () => {
    const n2 = lab.nodes[1]!;
    const server = lab.spawn(n2, [process.execPath, distCli('tagserver-cli.js'), '--name', 'n2', '--port', '8080']);
    const [line] = (await once(server.stdout!, 'data')) as [Buffer];
    expect(JSON.parse(line.toString())).toMatchObject({ listening: { port: 8080 }, name: 'n2' });
    for (const target of [n2.ipv4, n2.ipv6]) {
      const r = await lab.exec(lab.client, [process.execPath, distCli('tcpprobe-cli.js'), '--target', target, '--port', '8080', '--interval', '20', '--timeout', '2000', '--duration', '400'], { check: true });
      const s = JSON.parse(r.stdout) as ProbeSummary;
      expect(s.ok).toBeGreaterThan(5);
      expect(s.failed).toBe(0);
      expect(s.perNode).toEqual({ n2: s.ok });
    }
    // Nothing listens on n1: refused, and the summary says so.
    const r = await lab.exec(lab.client, [process.execPath, distCli('tcpprobe-cli.js'), '--target', lab.nodes[0]!.ipv4, '--port', '8080', '--interval', '50', '--duration', '200'], { check: true });
    const s = JSON.parse(r.stdout) as ProbeSummary;
    expect(s.ok).toBe(0);
    expect(s.errors.ECONNREFUSED).toBe(s.attempts);
    server.kill('SIGTERM');
    const [code] = (await once(server, 'exit')) as [number | null];
    expect(code).toBe(0);
  });

  it('linkDown cuts a node off (its eth0 loses carrier) and linkUp restores it', async () => {
    const n1 = lab.nodes[0]!;
    await lab.linkDown(n1);
    const link = JSON.parse((await lab.exec(n1, ['ip', '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ flags: string[] }>;
    expect(link[0]!.flags).toContain('NO-CARRIER');
    expect(await ping(lab, lab.client, n1.ipv4)).toBe(false);
    expect(await ping(lab, lab.nodes[1]!, n1.ipv6)).toBe(false);
    await lab.linkUp(n1);
    expect(await ping(lab, lab.client, n1.ipv4, 3)).toBe(true);
    expect(await ping(lab, lab.nodes[1]!, n1.ipv6, 3)).toBe(true);
  });

  it('partition drops frames between groups only; heal restores', async () => {
    const [n1, n2, n3] = lab.nodes as [LabHost, LabHost, LabHost];
    await lab.partition([[n1], [n2, n3, lab.client]]);
    expect(await ping(lab, n1, n2.ipv4)).toBe(false);
    expect(await ping(lab, n2, n1.ipv6)).toBe(false);
    expect(await ping(lab, lab.client, n1.ipv4)).toBe(false);
    expect(await ping(lab, n2, n3.ipv4)).toBe(true);
    expect(await ping(lab, n3, n2.ipv6)).toBe(true);
    expect(await ping(lab, lab.client, n3.ipv4)).toBe(true);
    // Client in no group reaches both sides.
    await lab.partition([['n1'], ['n2', 'n3']]);
    expect(await ping(lab, lab.client, n1.ipv4)).toBe(true);
    expect(await ping(lab, lab.client, n2.ipv4)).toBe(true);
    expect(await ping(lab, n1, n2.ipv4)).toBe(false);
    await lab.heal();
    expect(await ping(lab, n1, n2.ipv4, 3)).toBe(true);
    expect(await ping(lab, n2, n1.ipv6, 3)).toBe(true);
    await expect(lab.partition([[n1], [n1, n2]])).rejects.toThrow(/two partition groups/);
  });

  it('block is one-way: requests arrive, replies are dropped', async () => {
    const [n1, n2] = lab.nodes as [LabHost, LabHost];
    await lab.block([n1], [n2]);
    const cap = await lab.capture({ host: n1, filter: 'icmp' });
    expect(await ping(lab, n2, n1.ipv4)).toBe(false);
    const seen = (await cap.stop()).map(classify);
    expect(seen.some((s) => s.kind === 'icmp-echo' && s.src === n2.mac)).toBe(true);
    await lab.heal();
    expect(await ping(lab, n2, n1.ipv4, 3)).toBe(true);
  });

  it('a capture on the bridge sees ARP, ICMP and ICMPv6 echo between client and node', async () => {
    const n1 = lab.nodes[0]!;
    await lab.exec(lab.client, ['ip', 'neigh', 'flush', 'all'], { check: true });
    const cap = await lab.capture({ filter: 'arp or icmp or icmp6' });
    expect(await ping(lab, lab.client, n1.ipv4)).toBe(true);
    expect(await ping(lab, lab.client, n1.ipv6)).toBe(true);
    const frames = await cap.stop();
    const seen = frames.map(classify);
    const c = lab.client.mac;
    expect(seen).toContainEqual({ src: c, dst: 'ff:ff:ff:ff:ff:ff', kind: 'arp-request', target: n1.ipv4 });
    expect(seen).toContainEqual({ src: n1.mac, dst: c, kind: 'arp-reply', target: lab.client.ipv4 });
    expect(seen).toContainEqual({ src: c, dst: n1.mac, kind: 'icmp-echo' });
    expect(seen).toContainEqual({ src: n1.mac, dst: c, kind: 'icmp-reply' });
    expect(seen).toContainEqual({ src: c, dst: n1.mac, kind: 'icmp6-echo' });
    expect(seen).toContainEqual({ src: n1.mac, dst: c, kind: 'icmp6-reply' });
    const now = Date.now() * 1000;
    for (const f of frames) expect(Math.abs(now - f.time)).toBeLessThan(60_000_000);
    expect(cap.stats()?.captured).toBe(frames.length);
  });
});

describe.skipIf(!isRoot)('lab cleanup', () => {
  it('destroy() leaves no namespace and no process, even ones not spawned through the lab', async () => {
    const lab = await createLab({ nodes: 1, ipv6: false, id: 'cleanup' });
    expect(lab.id).toBe(`${process.pid}-cleanup`);
    expect(await ping(lab, lab.client, lab.nodes[0]!.ipv4)).toBe(true);
    const v6 = (await lab.exec(lab.nodes[0]!, ['ip', '-6', 'addr', 'show', 'dev', 'eth0'])).stdout;
    expect(v6.trim()).toBe('');
    const child = lab.spawn(lab.nodes[0]!, ['sleep', '1000']);
    // A daemon that left our process group: only the namespace sweep finds it.
    await lab.exec(lab.client, ['sh', '-c', 'setsid sleep 1001 >/dev/null 2>&1 < /dev/null &'], { check: true });
    const cap = await lab.capture();
    const inClient = (await run(['ip', 'netns', 'pids', lab.client.ns])).stdout.split('\n').filter(Boolean).map(Number);
    expect(inClient.length).toBeGreaterThan(0);
    const names = [...lab.hosts.map((h) => h.ns), lab.switchNs];
    await lab.destroy();
    await lab.destroy(); // idempotent
    const left = await namespaces();
    for (const n of names) expect(left).not.toContain(n);
    expect(pidAlive(child.pid!)).toBe(false);
    expect(pidAlive(cap.pid)).toBe(false);
    for (const pid of inClient) expect(pidAlive(pid)).toBe(false);
    expect(existsSync(lab.tmpDir)).toBe(false);
    expect(() => lab.spawn('n1', ['true'])).toThrow(/destroyed/);
  });

  it('removeStaleLabs removes a namespace whose creator died, with its processes, and keeps live ones', async () => {
    const dead = spawn('true');
    await once(dead, 'exit');
    const deadPid = dead.pid!;
    expect(pidAlive(deadPid)).toBe(false);
    const stale = `vipd-${deadPid}-x-n1`;
    const live = `vipd-${process.pid}-keep-n1`;
    await run(['ip', 'netns', 'add', stale], { check: true });
    await run(['ip', 'netns', 'add', live], { check: true });
    try {
      const sleeper = spawn('ip', ['netns', 'exec', stale, 'sleep', '1000'], { stdio: 'ignore', detached: true });
      await new Promise((r) => setTimeout(r, 200));
      expect(pidAlive(sleeper.pid!)).toBe(true);
      await removeStaleLabs();
      // Another worker's createLab may have swept it first; what matters is that it is gone.
      const left = await namespaces();
      expect(left).not.toContain(stale);
      expect(left).toContain(live);
      await new Promise((r) => setTimeout(r, 50));
      expect(pidAlive(sleeper.pid!)).toBe(false);
    } finally {
      await run(['ip', 'netns', 'del', stale]);
      await run(['ip', 'netns', 'del', live]);
    }
  });
});
