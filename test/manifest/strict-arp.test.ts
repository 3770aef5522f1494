/**
 * The manifests' strict-ARP init container, for real: in a network namespace of its own, with
 * /proc/sys read-only the way an unprivileged container sees it, the agent's own check
 * (ensureStrictArp) fails before the init script ran and passes after, without writing anything.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strictArpScript } from '../../src/manifest/generate.js';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const HOST = join(ROOT, 'dist/src/config/host.js');
const LOG = join(ROOT, 'dist/src/observe/log.js');
const isRoot = process.getuid?.() === 0;

async function sh(ns: string, script: string): Promise<string> {
  return (await exec('ip', ['netns', 'exec', ns, 'sh', '-c', script])).stdout;
}

async function sysctl(ns: string, path: string): Promise<number> {
  return Number((await sh(ns, `cat /proc/sys/net/ipv4/conf/${path}`)).trim());
}

/** ensureStrictArp(ifname) in the namespace, under a read-only /proc/sys like a container's. */
async function agentCheck(ns: string, ifname: string): Promise<string> {
  const js = `const { ensureStrictArp } = await import(${JSON.stringify(HOST)});
const { createLogger } = await import(${JSON.stringify(LOG)});
try { await ensureStrictArp(${JSON.stringify(ifname)}, createLogger('silent')); console.log('OK'); }
catch (e) { console.log('ERR ' + e.message); }`;
  const ro = `mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" --input-type=module -e "$1"`;
  const r = await exec('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', ro, process.execPath, js]);
  return r.stdout.trim();
}

describe.skipIf(!isRoot || !existsSync(HOST))('strict-ARP init container script (network namespace, read-only /proc/sys)', () => {
  const ns = `vipd-${process.pid}-${randomBytes(3).toString('hex')}-sysctl`;

  beforeAll(async () => {
    await exec('ip', ['netns', 'add', ns]);
    // Both ends of one veth pair, inside the namespace: two interfaces, no traffic anywhere.
    await exec('ip', ['-n', ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  });

  afterAll(async () => {
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  it('the agent cannot fix the sysctls itself in a container, and says which one to set', async () => {
    expect(await sysctl(ns, 'all/arp_ignore')).toBe(0);
    const r = await agentCheck(ns, 'd0');
    expect(r).toMatch(/^ERR vip_responder=agent needs net\.ipv4\.conf\.(all|d0)\.arp_ignore=1 \(it is 0\) and \/proc\/sys is not writable here \(EROFS\)/);
    expect(await sysctl(ns, 'all/arp_ignore')).toBe(0);
  });

  it('with vip_interface set, it raises `all` and that interface only, keeps stricter values, and the agent check then passes', async () => {
    await sh(ns, 'echo 2 > /proc/sys/net/ipv4/conf/d1/arp_ignore');
    const out = await sh(ns, strictArpScript('d0'));
    expect(out.trim().split('\n').sort()).toEqual(['/proc/sys/net/ipv4/conf/all/arp_announce: 0 -> 2', '/proc/sys/net/ipv4/conf/all/arp_ignore: 0 -> 1', '/proc/sys/net/ipv4/conf/d0/arp_ignore: 0 -> 1']);
    expect([await sysctl(ns, 'all/arp_ignore'), await sysctl(ns, 'd0/arp_ignore'), await sysctl(ns, 'all/arp_announce')]).toEqual([1, 1, 2]);
    expect([await sysctl(ns, 'lo/arp_ignore'), await sysctl(ns, 'd1/arp_ignore'), await sysctl(ns, 'default/arp_ignore')]).toEqual([0, 2, 0]);
    expect(await agentCheck(ns, 'd0')).toBe('OK');
    // Idempotent: a second run (pod restart) changes and prints nothing.
    expect(await sh(ns, strictArpScript('d0'))).toBe('');
  });

  it('without vip_interface, it covers every interface (arp_ignore 3 is not strict enough either)', async () => {
    await sh(ns, 'echo 3 > /proc/sys/net/ipv4/conf/d1/arp_ignore');
    expect(await agentCheck(ns, 'd1')).toMatch(/^ERR .*net\.ipv4\.conf\.d1\.arp_ignore=1 \(it is 3\)/);
    const out = await sh(ns, strictArpScript(undefined));
    expect(out).toContain('/proc/sys/net/ipv4/conf/d1/arp_ignore: 3 -> 1');
    expect(out).toContain('/proc/sys/net/ipv4/conf/default/arp_ignore: 0 -> 1');
    expect(await agentCheck(ns, 'd1')).toBe('OK');
  });
});
