/**
 * Kernel address and link state through rtnetlink (npm `netlink`), nothing else.
 *
 * - Requests and notifications use separate sockets: a socket that joins multicast groups would
 *   interleave notifications with request replies.
 * - Adds use NLM_F_CREATE|NLM_F_REPLACE, so re-adding an address that is already there refreshes it
 *   (and its lifetime) instead of failing with EEXIST.
 * - Deleting an address that is not there is not an error: the caller wanted it gone.
 */
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import type { RtNetlinkSocket, rt } from 'netlink';
import { ipFromBytes, ipToBytes, type Family } from './ip.js';

const require = createRequire(import.meta.url);
const netlink = require('netlink') as typeof import('netlink');
const { createRtNetlink } = netlink;
const { parseAddressMessage, parseLinkMessage } = netlink.rt;

const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;
const RTM_NEWLINK = 16;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const AF_INET = 2;
const AF_INET6 = 10;
/** The kernel's "forever" for address lifetimes. */
const INFINITY_LIFE_TIME = 0xffffffff;

export interface AddressSpec {
  ifindex: number;
  ip: string;
  prefix: number;
  /**
   * Kernel-enforced lifetime in whole seconds (valid_lft = preferred_lft); the kernel deletes the
   * address when it runs out unless it is added again. Omitted: permanent.
   */
  lifetimeSec?: number;
}

export interface KernelAddress {
  ifindex: number;
  ip: string;
  prefix: number;
  family: Family;
  /** Remaining valid lifetime in seconds, undefined when permanent. */
  validSec?: number;
}

export interface KernelLink {
  index: number;
  name: string;
  /** Administratively up and carrier present. */
  up: boolean;
  mac: string;
}

export type NetlinkEvent =
  | { type: 'addr-new' | 'addr-del'; address: KernelAddress }
  | { type: 'link'; link: KernelLink };

/** The address family and bytes a request carries; an address the kernel cannot take throws. */
function kernelIp(ip: string): { family: typeof AF_INET | typeof AF_INET6; bytes: Buffer } {
  const bytes = ipToBytes(ip);
  if (bytes === undefined) throw new Error(`rtnetlink: ${JSON.stringify(ip)} is not an IP address`);
  return { family: bytes.length === 16 ? AF_INET6 : AF_INET, bytes };
}

function macText(buf: Buffer | undefined): string {
  return buf ? [...buf].map((b) => b.toString(16).padStart(2, '0')).join(':') : '';
}

function toKernelAddress(msg: rt.AddressMessage): KernelAddress | null {
  const raw = msg.attrs.local ?? msg.attrs.address;
  if (!raw || msg.data.index === undefined || msg.data.prefixlen === undefined) return null;
  const family: Family = msg.data.family === AF_INET6 ? 6 : 4;
  const valid = msg.attrs.cacheInfo?.ifaValid;
  return {
    ifindex: msg.data.index,
    ip: ipFromBytes(raw),
    prefix: msg.data.prefixlen,
    family,
    ...(valid !== undefined && valid !== INFINITY_LIFE_TIME ? { validSec: valid } : {}),
  };
}

function toKernelLink(msg: rt.LinkMessage): KernelLink | null {
  if (msg.data.index === undefined || msg.attrs.ifname === undefined) return null;
  const f = msg.data.flags ?? {};
  return { index: msg.data.index, name: msg.attrs.ifname, up: Boolean(f.up && f.lowerUp), mac: macText(msg.attrs.address) };
}

function isErrno(err: unknown, ...names: string[]): boolean {
  const text = err instanceof Error ? err.message : String(err);
  return names.some((n) => text.includes(n));
}

export class Rtnl {
  private readonly sock: RtNetlinkSocket;
  /**
   * One request at a time: the socket cannot run two dumps (or a dump and a change) at once; the
   * second fails with EBUSY or a torn multipart reply. Holders (one per VIP and service IP) share it.
   */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor() {
    this.sock = createRtNetlink();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  static open(): Rtnl {
    return new Rtnl();
  }

  async links(): Promise<KernelLink[]> {
    const msgs = await this.serial(() => this.sock.getLinks());
    return msgs.map(toKernelLink).filter((l): l is KernelLink => l !== null);
  }

  async linkByName(name: string): Promise<KernelLink | undefined> {
    return (await this.links()).find((l) => l.name === name);
  }

  async addresses(): Promise<KernelAddress[]> {
    const msgs = await this.serial(() => this.sock.getAddresses());
    return msgs.map(toKernelAddress).filter((a): a is KernelAddress => a !== null);
  }

  async addAddress(spec: AddressSpec): Promise<void> {
    const { family, bytes } = kernelIp(spec.ip);
    const life = spec.lifetimeSec ?? INFINITY_LIFE_TIME;
    await this.serial(() =>
      this.sock.newAddress(
        { family, prefixlen: spec.prefix, index: spec.ifindex },
        {
          local: bytes,
          address: bytes,
          // NODAD: during a handover the old holder may still have the address for a moment; DAD
          // would then mark ours dadfailed and leave it dead.
          ...(family === AF_INET6 ? { flags: { nodad: true } } : {}),
          cacheInfo: { ifaPrefered: life, ifaValid: life },
        },
        { flags: NLM_F_CREATE | NLM_F_REPLACE },
      ),
    );
  }

  /** Returns false when the address was not there. */
  async delAddress(spec: Omit<AddressSpec, 'lifetimeSec'>): Promise<boolean> {
    const { family, bytes } = kernelIp(spec.ip);
    try {
      await this.serial(() => this.sock.delAddress({ family, prefixlen: spec.prefix, index: spec.ifindex }, { local: bytes }));
      return true;
    } catch (err) {
      if (isErrno(err, 'EADDRNOTAVAIL', 'ENOENT', 'ENODEV')) return false;
      throw err;
    }
  }

  /** The interface the kernel would use to reach `ip` (a route lookup, like `ip route get`). */
  async routeInterface(ip: string): Promise<string | undefined> {
    const { family, bytes } = kernelIp(ip);
    const routes = await this.serial(() => this.sock.getRoute({ family }, { dst: bytes }));
    const oif = routes[0]?.attrs.oif;
    if (oif === undefined) return undefined;
    return (await this.links()).find((l) => l.index === oif)?.name;
  }

  close(): void {
    this.sock.socket.close();
  }
}

/**
 * Address and link notifications. Emits 'event' with a NetlinkEvent.
 */
export class NetlinkWatcher extends EventEmitter {
  private readonly sock: RtNetlinkSocket;

  constructor() {
    super();
    this.sock = createRtNetlink();
    this.sock.addMembership('IPV4_IFADDR');
    this.sock.addMembership('IPV6_IFADDR');
    this.sock.addMembership('LINK');
    // The parsed 'message' event drops the netlink header, and with it NEWADDR vs DELADDR,
    // so read the raw messages and parse the payload ourselves.
    this.sock.socket.on('message', (msgs) => {
      for (const msg of msgs) {
        try {
          this.dispatch(msg.type, msg.data);
        } catch {
          // A payload we cannot parse tells us nothing we act on.
        }
      }
    });
  }

  private dispatch(type: number, data: Buffer): void {
    if (type === RTM_NEWADDR || type === RTM_DELADDR) {
      const address = toKernelAddress(parseAddressMessage(data));
      if (address) this.emit('event', { type: type === RTM_DELADDR ? 'addr-del' : 'addr-new', address } satisfies NetlinkEvent);
    } else if (type === RTM_NEWLINK) {
      const link = toKernelLink(parseLinkMessage(data));
      if (link) this.emit('event', { type: 'link', link } satisfies NetlinkEvent);
    }
  }

  close(): void {
    this.sock.socket.close();
  }
}
