/**
 * The router side of the BGP lab (tor's FRR configuration) and what tests read back: the kernel's
 * next hops for a prefix, the BGP sessions, the BFD sessions.
 *
 * - tor runs eBGP to every node, each node in its own private AS, and installs up to 16 equal
 *   paths: multipath-relax, because paths from different neighbour ASes are never "equal" otherwise.
 * - An IPv4 neighbour carries only IPv4 and an IPv6 neighbour only IPv6 (`no bgp default
 *   ipv4-unicast`, explicit activates), the same split vipd's node configuration makes.
 * - IPv6 routes use the neighbour's global next hop, not its link-local one, so next hops read as
 *   the node's lab address (2001:db8::11) in `ip route` and assertions.
 */
import { inNs, runOk, tool } from './exec.js';
import type { FrrInstance } from './frr.js';
import type { HostRef, Lab } from './netns.js';

export const BFD_PROFILE = 'vipd-lab';
const V6_GLOBAL_MAP = 'vipd-lab-v6-global';

export interface TorNeighbor {
  address: string;
  asn: number;
}

export interface TorConfigOptions {
  asn: number;
  routerId: string;
  neighbors: TorNeighbor[];
  /** Default { intervalMs: 100, multiplier: 3 }: a dead node is noticed in 300 ms. */
  bfd?: { intervalMs: number; multiplier: number } | false;
  /** `timers bgp`: without BFD, the hold time is what notices a silent node (FRR's default 60/180 s). */
  timers?: { keepaliveS: number; holdS: number };
}

/** Private 2-byte AS numbers, the only ones the lab uses. */
export function checkPrivateAsn(asn: number, what = 'AS'): number {
  if (!Number.isInteger(asn) || asn < 64512 || asn > 65534) throw new RangeError(`${what} ${asn} is not a private AS number (64512-65534)`);
  return asn;
}

const isV6 = (address: string): boolean => address.includes(':');

/** FRR integrated configuration for tor, applied with `frr.apply()` or `startFrr(..., { config })`. */
export function torFrrConfig(o: TorConfigOptions): string {
  checkPrivateAsn(o.asn, 'tor AS');
  const bfd = o.bfd === undefined ? { intervalMs: 100, multiplier: 3 } : o.bfd;
  const lines: string[] = [];
  if (bfd) lines.push('bfd', ` profile ${BFD_PROFILE}`, `  receive-interval ${bfd.intervalMs}`, `  transmit-interval ${bfd.intervalMs}`, `  detect-multiplier ${bfd.multiplier}`, ' exit', 'exit', '!');
  lines.push(`route-map ${V6_GLOBAL_MAP} permit 10`, ' set ipv6 next-hop prefer-global', 'exit', '!');
  // ipv4-unicast off must come before the neighbours, or each is activated in IPv4 on creation.
  lines.push(`router bgp ${o.asn}`, ` bgp router-id ${o.routerId}`, ' bgp log-neighbor-changes', ' no bgp ebgp-requires-policy', ' no bgp default ipv4-unicast', ' bgp bestpath as-path multipath-relax');
  if (o.timers) lines.push(` timers bgp ${o.timers.keepaliveS} ${o.timers.holdS}`);
  for (const n of o.neighbors) {
    checkPrivateAsn(n.asn, `neighbor ${n.address} AS`);
    lines.push(` neighbor ${n.address} remote-as ${n.asn}`, ` neighbor ${n.address} timers connect 1`);
    if (bfd) lines.push(` neighbor ${n.address} bfd profile ${BFD_PROFILE}`);
  }
  for (const v6 of [false, true]) {
    lines.push(` address-family ${v6 ? 'ipv6' : 'ipv4'} unicast`, '  maximum-paths 16');
    for (const n of o.neighbors.filter((x) => isV6(x.address) === v6)) {
      lines.push(`  neighbor ${n.address} activate`);
      if (v6) lines.push(`  neighbor ${n.address} route-map ${V6_GLOBAL_MAP} in`);
    }
    lines.push(' exit-address-family');
  }
  lines.push('exit', '');
  return lines.join('\n');
}

export interface NextHop {
  /** Absent for a directly connected route (dev only). */
  gateway?: string;
  dev?: string;
}

/**
 * The kernel's next hops of exactly `prefix` (an address means /32 or /128) in a host's main
 * table: [] when there is no such route, two entries for a two-way ECMP route.
 */
export function routesTo(frr: FrrInstance, prefix: string): Promise<NextHop[]>;
export function routesTo(on: Lab | FrrInstance, host: HostRef, prefix: string): Promise<NextHop[]>;
export async function routesTo(on: Lab | FrrInstance, a: HostRef, b?: string): Promise<NextHop[]> {
  const frr = 'vtyDir' in on ? on : undefined;
  const lab = frr ? frr.lab : (on as Lab);
  const [host, prefix] = b === undefined ? [frr!.host, a as string] : [a, b];
  const r = await runOk(inNs(lab.host(host).ns, [tool('ip'), isV6(prefix) ? '-6' : '-4', '-j', 'route', 'show', prefix]));
  return nextHopsOf(r.stdout);
}

/** The next hops of the first route in `ip -j route show PREFIX`'s output (none: no route). */
export function nextHopsOf(ipJson: string): NextHop[] {
  type Hop = { gateway?: string; dev?: string };
  const routes = JSON.parse(ipJson.trim() || '[]') as Array<Hop & { nexthops?: Hop[] }>;
  const first = routes[0];
  if (!first) return [];
  const pick = (h: Hop): NextHop => ({ ...(h.gateway !== undefined ? { gateway: h.gateway } : {}), ...(h.dev !== undefined ? { dev: h.dev } : {}) });
  return first.nexthops ? first.nexthops.map(pick) : [pick(first)];
}

export interface BgpPeer {
  address: string;
  family: 'ipv4' | 'ipv6';
  /** FRR's state: Established, Active, Connect, Idle, OpenSent, ... */
  state: string;
  pfxRcd: number;
  remoteAs: number;
}

interface SummaryFamily {
  peers?: Record<string, { state?: string; pfxRcd?: number; remoteAs?: number }>;
}

/** Every session in `show bgp summary json`, IPv4 unicast then IPv6 unicast. */
export async function bgpPeers(frr: FrrInstance): Promise<BgpPeer[]> {
  const j = (await frr.json<{ ipv4Unicast?: SummaryFamily; ipv6Unicast?: SummaryFamily } | null>('show bgp summary json')) ?? {};
  const out: BgpPeer[] = [];
  for (const [family, sum] of [['ipv4', j.ipv4Unicast], ['ipv6', j.ipv6Unicast]] as const) {
    for (const [address, p] of Object.entries(sum?.peers ?? {})) out.push({ address, family, state: p.state ?? 'Unknown', pfxRcd: p.pfxRcd ?? 0, remoteAs: p.remoteAs ?? 0 });
  }
  return out;
}

export interface BfdPeer {
  peer: string;
  /** up, down, init, shutdown */
  status: string;
}

export async function bfdPeers(frr: FrrInstance): Promise<BfdPeer[]> {
  const j = (await frr.json<Array<{ peer?: string; status?: string }> | null>('show bfd peers json')) ?? [];
  return j.map((s) => ({ peer: s.peer ?? '', status: s.status ?? 'unknown' }));
}
