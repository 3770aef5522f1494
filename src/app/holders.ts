/**
 * The one way a Holder is made: an Announcer on the uplink plus a Holder over the agent's shared
 * netlink handles, started (which removes a stale copy of the address first). The control-plane
 * VIPs and every service IP go through the same factory, so they bind, announce and release the
 * same way. In BGP mode the announcer is the one part that differs.
 */
import { ensureStrictArp, type ResolvedInterface } from '../config/host.js';
import { Announcer } from '../net/announce.js';
import type { NetlinkWatcher, Rtnl } from '../net/netlink.js';
import type { Logger } from '../observe/log.js';
import type { Clock } from '../util/clock.js';
import { Holder, NoAnnounceInterfaceError, type AnnouncerPort, type MakeHolder, type VipSpec } from '../vip/holder.js';
import type { HolderSettings } from './options.js';

export type { MakeHolder } from '../vip/holder.js';

export interface HolderFactoryDeps {
  settings: HolderSettings;
  iface: ResolvedInterface;
  loIndex: number;
  rtnl: Rtnl;
  watcher: NetlinkWatcher;
  clock: Clock;
  /** BGP mode: the announcer per address (src/bgp/announcer.ts) instead of ARP/NA on the uplink. */
  announcer?: (vip: VipSpec) => Promise<AnnouncerPort>;
}

export function holderFactory(d: HolderFactoryDeps): MakeHolder {
  const s = d.settings;
  return async (vip, log, interfaces) => {
    // BGP announces routes, not frames on a segment: the interfaces do not apply there.
    const iface = interfaces && !d.announcer ? await firstPresent(d.rtnl, vip.ip, interfaces) : d.iface;
    // The agent's own interface was made ARP-strict at start; another one must be too, or its
    // kernel would answer for the address on lo as well (and keep answering after a kill).
    if (iface.name !== d.iface.name && s.responder === 'agent' && vip.family === 4) await ensureStrictArp(iface.name, log);
    const announcer = d.announcer ? await d.announcer(vip) : await Announcer.open({ ifname: iface.name, vip: vip.ip, refreshMs: s.refreshMs, answer: s.responder === 'agent', log, clock: d.clock });
    const holder = new Holder(
      {
        vip,
        ifname: iface.name,
        ifindex: iface.index,
        loIndex: d.loIndex,
        responder: s.responder,
        lifetimeSec: s.lifetimeSec,
        probeMs: s.probeMs,
        claimOnConflict: s.claimOnConflict,
        conflictRetryMs: s.conflictRetryMs,
      },
      { rtnl: d.rtnl, watcher: d.watcher, announcer, clock: d.clock, log },
    );
    try {
      await holder.start();
    } catch (err) {
      await holder.close('start failed');
      throw err;
    }
    return holder;
  };
}

/** The first of `wanted` this node has, in that order. */
async function firstPresent(rtnl: Rtnl, ip: string, wanted: readonly string[]): Promise<{ name: string; index: number }> {
  const links = await rtnl.links();
  for (const name of wanted) {
    const link = links.find((l) => l.name === name);
    if (link) return { name: link.name, index: link.index };
  }
  throw new NoAnnounceInterfaceError(ip, wanted, links.map((l) => l.name).filter((n) => n !== 'lo'));
}
