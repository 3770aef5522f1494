/**
 * The holder's announcer in BGP mode. There are no frames to send: the address the holder puts on
 * lo is the announcement (FRR redistributes it, src/bgp/frr-config.ts), and removing it is the
 * withdrawal. What is left is telling the FRR driver what is held, so it can say whether a router
 * hears it, and never probing the wire: in BGP mode every healthy node holds the address at once.
 */
import type { AnnouncerPort } from '../vip/holder.js';
import type { FrrDriver } from './frr.js';

export class BgpAnnouncer implements AnnouncerPort {
  constructor(
    private readonly ip: string,
    private readonly frr: FrrDriver,
  ) {}

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

  close(): void {
    this.frr.setHeld(this.ip, false);
  }
}
