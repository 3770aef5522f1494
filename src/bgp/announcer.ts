/**
 * The holder's announcer in BGP mode. There are no frames to send: the address the holder puts on
 * lo is the announcement (FRR redistributes it, src/bgp/frr-config.ts), and removing it is the
 * withdrawal. What is left is telling the FRR driver what is held, so it can say whether a router
 * hears it, and never probing the wire: in BGP mode every healthy node holds the address at once.
 */
import type { AnnouncerPort } from '../vip/holder.js';
import type { FrrDriver } from './frr.js';

export class BgpAnnouncer implements AnnouncerPort {
  private constructor(
    private readonly ip: string,
    private readonly frr: FrrDriver,
    private readonly service: boolean,
  ) {}

  /** A service IP's prefix-list entry goes in here, before the holder can bind the address. */
  static async open(ip: string, frr: FrrDriver, service: boolean): Promise<BgpAnnouncer> {
    if (service) await frr.allow(ip);
    return new BgpAnnouncer(ip, frr, service);
  }

  startHolding(): void {
    this.frr.setHeld(this.ip, true);
  }

  stopHolding(): void {
    this.frr.setHeld(this.ip, false);
  }

  announceNow(): void {}

  probe(): Promise<string | null> {
    return Promise.resolve(null);
  }

  /** The holder calls this after it removed the address. */
  close(): void {
    this.frr.setHeld(this.ip, false);
    if (this.service) void this.frr.disallow(this.ip);
  }
}
