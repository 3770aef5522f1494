/**
 * The one way a Holder is made: an Announcer on the uplink plus a Holder over the agent's shared
 * netlink handles, started (which removes a stale copy of the address first). The control-plane
 * VIPs and every service IP go through the same factory, so they bind, announce and release the
 * same way. In BGP mode the announcer is the one part that differs.
 */
import type { ResolvedInterface } from '../config/host.js';
import { Announcer } from '../net/announce.js';
import type { NetlinkWatcher, Rtnl } from '../net/netlink.js';
import type { Logger } from '../observe/log.js';
import type { Clock } from '../util/clock.js';
import { Holder, type AnnouncerPort, type VipSpec } from '../vip/holder.js';
import type { HolderSettings } from './options.js';

export type MakeHolder = (vip: VipSpec, log: Logger) => Promise<Holder>;

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
  return async (vip, log) => {
    const announcer = d.announcer ? await d.announcer(vip) : await Announcer.open({ ifname: d.iface.name, vip: vip.ip, refreshMs: s.refreshMs, answer: s.responder === 'agent', log, clock: d.clock });
    const holder = new Holder(
      {
        vip,
        ifname: d.iface.name,
        ifindex: d.iface.index,
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
