/**
 * A minimal real L2 segment for the wire tests: a Linux bridge in its own "switch" namespace and
 * three hosts (a, b, c) plugged into it with veth pairs. Names `vipd-<pid>-w<rand>-<x>`,
 * addresses 198.18.0.0/24 and 2001:db8::/64 only. destroy() deletes the namespaces (and with them
 * the veths and the bridge) and kills the captures it started; an 'exit' hook does the same if a
 * test run dies first.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePcap } from '../../lab/pcap.js';
import { parseFrame, type ParsedFrame } from '../../src/net/frames.js';

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

export interface WireHost {
  ns: string;
  mac: string;
  ip4: string;
  ip6: string;
}

export interface CapturedFrame {
  /** Wall-clock ms (pcap timestamp). */
  time: number;
  raw: Buffer;
  frame: ParsedFrame | null;
}

export interface Capture {
  stop(): Promise<CapturedFrame[]>;
}

export interface Wire {
  sw: string;
  a: WireHost;
  b: WireHost;
  c: WireHost;
  tmp: string;
  /** `ip netns exec <ns> argv...`, returns stdout; throws on failure unless allowFail. Blocks the event loop: only for set-up. */
  exec(ns: string, argv: string[], allowFail?: boolean): string;
  /** The same without blocking the event loop (needed whenever an in-process agent must answer meanwhile). */
  run(ns: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** tcpdump -U on the bridge (or `iface` in `ns`); resolves once it listens. */
  capture(opts?: { ns?: string; iface?: string; filter?: string }): Promise<Capture>;
  destroy(): void;
}

export const VIP4 = '198.18.0.100';
export const VIP6 = '2001:db8::100';

function ip(args: string[]): void {
  execFileSync(IP, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export async function createWire(): Promise<Wire> {
  const id = `vipd-${process.pid}-w${randomBytes(3).toString('hex')}`;
  const sw = `${id}-sw`;
  const mk = (x: string, n: number): WireHost => ({
    ns: `${id}-${x}`,
    mac: `02:00:00:00:01:${n.toString(16).padStart(2, '0')}`,
    ip4: `198.18.0.${n}`,
    ip6: `2001:db8::${n.toString(16)}`,
  });
  const hosts = { a: mk('a', 0x11), b: mk('b', 0x12), c: mk('c', 0x02) };
  const namespaces = [sw, hosts.a.ns, hosts.b.ns, hosts.c.ns];
  const children = new Set<ChildProcess>();
  const tmp = mkdtempSync(join(tmpdir(), 'vipd-wire-'));
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    for (const ch of children) ch.kill('SIGKILL');
    for (const ns of namespaces) {
      try {
        ip(['netns', 'del', ns]);
      } catch {
        // never created or already gone
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('exit', destroy);

  const exec = (ns: string, argv: string[], allowFail = false): string => {
    try {
      return execFileSync(IP, ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      if (allowFail) return '';
      throw e;
    }
  };

  const run = (ns: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(IP, ['netns', 'exec', ns, ...argv], { encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });

  try {
    for (const ns of namespaces) ip(['netns', 'add', ns]);
    ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    for (const [x, h] of Object.entries(hosts)) {
      ip(['-n', sw, 'link', 'add', `p-${x}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
      ip(['-n', sw, 'link', 'set', `p-${x}`, 'master', 'br0', 'up']);
      exec(h.ns, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
      ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', h.ns, 'link', 'set', 'eth0', 'address', h.mac, 'up']);
      ip(['-n', h.ns, 'addr', 'add', `${h.ip4}/24`, 'dev', 'eth0']);
      ip(['-n', h.ns, '-6', 'addr', 'add', `${h.ip6}/64`, 'dev', 'eth0', 'nodad']);
    }
  } catch (e) {
    destroy();
    throw e;
  }

  const capture = async (opts: { ns?: string; iface?: string; filter?: string } = {}): Promise<Capture> => {
    const file = join(tmp, `cap-${randomBytes(3).toString('hex')}.pcap`);
    const ch = spawn(
      IP,
      ['netns', 'exec', opts.ns ?? sw, 'tcpdump', '-n', '-i', opts.iface ?? 'br0', '-U', '--immediate-mode', '-Z', 'root', '-w', file, ...(opts.filter ?? 'arp or icmp6').split(' ')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.add(ch);
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
      ch.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('listening on')) {
          clearTimeout(t);
          resolve();
        }
      });
      ch.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`tcpdump exited ${code}: ${err}`));
      });
    });
    return {
      async stop(): Promise<CapturedFrame[]> {
        await new Promise((r) => setTimeout(r, 100)); // frames in flight reach the file
        const exited = new Promise((r) => ch.once('exit', r));
        ch.kill('SIGINT');
        await exited;
        children.delete(ch);
        return parsePcap(readFileSync(file)).records.map((r) => ({ time: r.time / 1000, raw: r.frame, frame: parseFrame(r.frame) }));
      },
    };
  };

  return { sw, ...hosts, tmp, exec, run, capture, destroy };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when `pred` is true (polled every 10 ms) or rejects after `ms`. */
export async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}
