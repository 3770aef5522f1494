/**
 * The host step: what only the host can answer, checked before anything is changed, so a bad
 * setting touches nothing. The composition root (src/app/agent.ts) runs it once, in this order:
 *   1. capabilities: NET_ADMIN (addresses, sysctls) and NET_RAW (the AF_PACKET socket);
 *   2. the interface: the one named, or the one whose connected subnet (or route) holds the VIP;
 *   3. the agent responder's strict-ARP sysctls (IPv4): read, and set when /proc/sys is writable.
 * 1 and 2 fail with the setting's name (ConfigError, exit 2) or the missing capability (exit 1);
 * 3 is the only step that writes, and only the two sysctls it names.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { ConfigError } from './settings.js';
import { familyBits, inPrefix } from '../net/ip.js';
import type { KernelAddress, KernelLink, Rtnl } from '../net/netlink.js';
import type { Logger } from '../observe/log.js';

export interface ResolvedInterface {
  name: string;
  index: number;
  /** How it was chosen, for the log. */
  how: 'configured' | 'connected subnet' | 'route lookup';
}

/** CAP_NET_ADMIN (12): addresses, sysctls. CAP_NET_RAW (13): the AF_PACKET socket. */
export function missingCapabilities(status: string): string[] {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return [];
  const eff = BigInt(`0x${m[1]}`);
  return [
    [12n, 'NET_ADMIN'],
    [13n, 'NET_RAW'],
  ].flatMap(([bit, name]) => ((eff >> (bit as bigint)) & 1n ? [] : [name as string]));
}

export class CapabilityError extends Error {
  override readonly name = 'CapabilityError';
}

export async function checkCapabilities(): Promise<void> {
  const missing = missingCapabilities(await readFile('/proc/self/status', 'utf8'));
  if (missing.length > 0) {
    throw new CapabilityError(
      `vipd needs the capabilities ${missing.join(' and ')} (NET_ADMIN: VIP addresses and sysctls; NET_RAW: the ARP/NDP socket); add them to the container's securityContext`,
    );
  }
}

function inSubnet(ip: string, a: KernelAddress): boolean {
  if (a.prefix >= familyBits(a.family)) return false; // a host address is no subnet
  return inPrefix(ip, a.ip, a.prefix);
}

export interface InterfaceChoice {
  /** vip_interface, when set. */
  configured: string | undefined;
  /** The first VIP, to find the interface from when none is configured. */
  vip: string | undefined;
}

export async function resolveInterface(choice: InterfaceChoice, rtnl: Rtnl): Promise<ResolvedInterface> {
  const links = await rtnl.links();
  if (choice.configured !== undefined) {
    const link = links.find((l) => l.name === choice.configured);
    if (!link) {
      const names = links.map((l) => l.name).filter((n) => n !== 'lo');
      throw new ConfigError('vip_interface', choice.configured, `no such interface on this host (have: ${names.join(', ') || 'none'})`);
    }
    return { name: link.name, index: link.index, how: 'configured' };
  }
  const vip = choice.vip;
  if (vip === undefined) throw new ConfigError('vip_interface', undefined, 'is required when there is no address to find the interface from');
  const byIndex = new Map<number, KernelLink>(links.map((l) => [l.index, l]));
  const connected = (await rtnl.addresses()).find((a) => byIndex.get(a.ifindex)?.name !== 'lo' && inSubnet(vip, a));
  if (connected) {
    const link = byIndex.get(connected.ifindex)!;
    return { name: link.name, index: link.index, how: 'connected subnet' };
  }
  const routed = await rtnl.routeInterface(vip).catch(() => undefined);
  const link = links.find((l) => l.name === routed);
  if (!link || link.name === 'lo') {
    throw new ConfigError('vip_interface', undefined, `is not set and no interface routes ${vip}; set it to the interface that faces the VIP's network`);
  }
  return { name: link.name, index: link.index, how: 'route lookup' };
}

/**
 * agent responder, IPv4: the kernel must not answer ARP for the VIP on `lo`, nor use it as the
 * source of its own ARP requests. arp_ignore 1 = answer only for addresses on the receiving
 * interface (0 and 3 would answer for `lo`'s VIP); arp_announce 2 = always use the best local
 * address of the outgoing interface. The effective value is the max of `all` and the interface.
 */
export class StrictArpError extends Error {
  override name = 'StrictArpError';
}

export async function ensureStrictArp(ifname: string, log: Logger): Promise<void> {
  const base = '/proc/sys/net/ipv4/conf';
  const read = async (path: string) => Number((await readFile(path, 'utf8')).trim());
  const write = async (path: string, value: number, current: number) => {
    try {
      await writeFile(path, String(value));
    } catch (err) {
      // Containers usually mount /proc/sys read-only; the host must then be set up once.
      const sysctl = path.replace('/proc/sys/', '').replaceAll('/', '.');
      throw new StrictArpError(
        `vip_responder=agent needs ${sysctl}=${value} (it is ${current}) and /proc/sys is not writable here (${(err as NodeJS.ErrnoException).code ?? String(err)}); set it on the host (sysctl.d), run the strict-arp init container, or use vip_responder=kernel`,
      );
    }
    log.info({ sysctl: path, from: current, to: value }, 'set so that only vipd answers ARP for the VIP');
  };
  // The kernel uses the larger of `all` and the interface's value.
  const ignore = { all: await read(`${base}/all/arp_ignore`), dev: await read(`${base}/${ifname}/arp_ignore`) };
  const answersLo = (v: number) => v === 0 || v === 3;
  if (answersLo(Math.max(ignore.all, ignore.dev))) {
    if (answersLo(ignore.dev)) await write(`${base}/${ifname}/arp_ignore`, 1, ignore.dev);
    if (answersLo(ignore.all)) await write(`${base}/all/arp_ignore`, 1, ignore.all);
  }
  const announce = { all: await read(`${base}/all/arp_announce`), dev: await read(`${base}/${ifname}/arp_announce`) };
  if (Math.max(announce.all, announce.dev) < 2) await write(`${base}/all/arp_announce`, 2, announce.all);
}
