/**
 * Checks of the configuration that need the host (read-only): the interface exists, or which one
 * carries the VIP's subnet. Runs before anything is changed, so a bad setting touches nothing.
 */
import { ConfigError, type Config } from './index.js';
import { familyBits, inPrefix } from '../net/ip.js';
import type { KernelAddress, KernelLink, Rtnl } from '../net/netlink.js';

export interface ResolvedInterface {
  name: string;
  index: number;
  /** How it was chosen, for the log. */
  how: 'configured' | 'connected subnet' | 'route lookup';
}

function inSubnet(ip: string, a: KernelAddress): boolean {
  if (a.prefix >= familyBits(a.family)) return false; // a host address is no subnet
  return inPrefix(ip, a.ip, a.prefix);
}

export async function resolveInterface(config: Config, rtnl: Rtnl): Promise<ResolvedInterface> {
  const links = await rtnl.links();
  if (config.interface !== undefined) {
    const link = links.find((l) => l.name === config.interface);
    if (!link) {
      const names = links.map((l) => l.name).filter((n) => n !== 'lo');
      throw new ConfigError('vip_interface', config.interface, `no such interface on this host (have: ${names.join(', ') || 'none'})`);
    }
    return { name: link.name, index: link.index, how: 'configured' };
  }
  const vip = config.vips[0]?.ip;
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
