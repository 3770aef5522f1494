/**
 * The FRR configuration vipd needs, rendered from the settings: pure, no I/O.
 *
 * How announcing works (docs/bgp.md): vipd never sends a BGP UPDATE itself. The holder puts the
 * address on lo (as a /32 or /128), zebra sees a connected route, and bgpd redistributes connected
 * routes through a route map that lets only vipd's prefixes out. Announce and withdraw are
 * therefore one netlink address change each (FRR sends the UPDATE about 0.1 s later), the FRR
 * configuration never changes while the agent runs, and a crashed agent's address still expires
 * (vip_lo_address_lifetime) so FRR withdraws it without vipd.
 *
 * Invariants
 * - Nothing but the listed prefixes is ever sent: the route map ends in an implicit deny, the
 *   prefix lists name exact addresses (`/32`, `/128`), and every neighbour's outbound policy is
 *   that route map. The control-plane VIPs are fixed; service IPs are added to their own lists
 *   while held (servicePrefixLine) and removed after.
 * - An IPv4 neighbour carries only IPv4 prefixes and an IPv6 neighbour only IPv6 ones, so no
 *   session needs extended next hops.
 * - Applying the same configuration twice changes nothing (every line is idempotent in FRR), so an
 *   agent restarted inside its pod can apply it again without a session flap.
 */
import { canonicalIp, familyOf } from '../net/ip.js';

export interface FrrPeer {
  address: string;
  asn: number;
  password?: string;
  multihop?: boolean;
}

export interface FrrSettings {
  asn: number;
  routerId: string;
  peers: readonly FrrPeer[];
  sourceIp?: string;
  timers?: { keepaliveSec: number; holdSec: number };
  bfd: { intervalMs: number; multiplier: number } | false;
  /** The addresses vipd may announce (the control-plane VIPs). */
  prefixes: readonly string[];
}

/** What goes to which daemon, in order, and the same as one integrated frr.conf for people. */
export interface FrrConfig {
  /** Idempotent: safe to send again to a bgpd that has it, sessions stay up. */
  bgpd: string[];
  /** Stops redistributing (every vipd prefix is withdrawn at once, no route-map delay); bgpd lines put it back. */
  drain: string[];
  /**
   * For a bgpd without vipd's instance: the same with every neighbour held down until its address
   * families are activated. Sent line by line, a session could otherwise open between
   * `remote-as` and `activate` with nothing to negotiate (NOTIFICATION "AFI/SAFIs do not
   * overlap") and come back only after the connect timer.
   */
  bgpdFresh: string[];
  bfdd: string[];
  text: string;
}

export const ROUTE_MAP = 'VIPD-ANNOUNCE';
export const PREFIX_LIST = { 4: 'VIPD-V4', 6: 'VIPD-V6' } as const;
/** Service IPs come and go while the agent runs: their own lists, one entry per held address. */
export const SERVICE_PREFIX_LIST = { 4: 'VIPD-SVC-V4', 6: 'VIPD-SVC-V6' } as const;
export const BFD_PROFILE = 'vipd';

/** The prefix FRR shows for an address vipd announces. */
export function hostPrefix(ip: string): string {
  // FRR prints IPv6 in RFC 5952 form; a prefix list or a lookup written otherwise would not match.
  const c = canonicalIp(ip) ?? ip;
  return familyOf(c) === 6 ? `${c}/128` : `${c}/32`;
}

/** FRR's config lines are parsed by words: a value with a space or a quote cannot be written safely. */
function word(setting: string, v: string): string {
  if (!/^[\x21-\x7e]+$/.test(v) || v.includes('"')) throw new RangeError(`${setting}: ${JSON.stringify(v)} must be printable ASCII without spaces or quotes`);
  return v;
}

export function renderFrr(s: FrrSettings): FrrConfig {
  const bfdd: string[] = [];
  if (s.bfd) {
    bfdd.push('bfd', ` profile ${BFD_PROFILE}`, `  receive-interval ${s.bfd.intervalMs}`, `  transmit-interval ${s.bfd.intervalMs}`, `  detect-multiplier ${s.bfd.multiplier}`, ' exit', 'exit');
  }
  const bgpd: string[] = [];
  const byFamily = { 4: [] as string[], 6: [] as string[] };
  for (const p of s.prefixes) {
    const f = familyOf(p);
    if (f === undefined) throw new RangeError(`prefix ${JSON.stringify(p)} is not an IP address`);
    byFamily[f].push(hostPrefix(p));
  }
  for (const f of [4, 6] as const) {
    const kw = f === 4 ? 'ip' : 'ipv6';
    // A family without prefixes still gets a list that matches nothing, so its sessions send nothing.
    if (byFamily[f].length === 0) bgpd.push(`${kw} prefix-list ${PREFIX_LIST[f]} seq 5 deny any`);
    byFamily[f].forEach((prefix, i) => bgpd.push(`${kw} prefix-list ${PREFIX_LIST[f]} seq ${(i + 1) * 5} permit ${prefix}`));
  }
  bgpd.push(`route-map ${ROUTE_MAP} permit 10`, ` match ip address prefix-list ${PREFIX_LIST[4]}`, 'exit');
  bgpd.push(`route-map ${ROUTE_MAP} permit 20`, ` match ipv6 address prefix-list ${PREFIX_LIST[6]}`, 'exit');
  // A list that does not exist (yet) matches nothing, so these entries are safe with no Services.
  bgpd.push(`route-map ${ROUTE_MAP} permit 30`, ` match ip address prefix-list ${SERVICE_PREFIX_LIST[4]}`, 'exit');
  bgpd.push(`route-map ${ROUTE_MAP} permit 40`, ` match ipv6 address prefix-list ${SERVICE_PREFIX_LIST[6]}`, 'exit');
  bgpd.push(`router bgp ${s.asn}`, ` bgp router-id ${s.routerId}`, ' no bgp default ipv4-unicast', ' no bgp ebgp-requires-policy');
  if (s.timers) bgpd.push(` timers bgp ${s.timers.keepaliveSec} ${s.timers.holdSec}`);
  for (const p of s.peers) {
    const n = ` neighbor ${p.address}`;
    bgpd.push(`${n} remote-as ${p.asn}`, `${n} timers connect 5`);
    if (p.password) bgpd.push(`${n} password ${word('bgp_peerpass', p.password)}`);
    if (p.multihop) bgpd.push(`${n} ebgp-multihop`);
    if (s.sourceIp && familyOf(s.sourceIp) === familyOf(p.address)) bgpd.push(`${n} update-source ${s.sourceIp}`);
    if (s.bfd) bgpd.push(`${n} bfd profile ${BFD_PROFILE}`);
  }
  for (const f of [4, 6] as const) {
    const peers = s.peers.filter((p) => familyOf(p.address) === f);
    if (peers.length === 0) continue;
    bgpd.push(` address-family ipv${f} unicast`, `  redistribute connected route-map ${ROUTE_MAP}`);
    for (const p of peers) bgpd.push(`  neighbor ${p.address} activate`, `  neighbor ${p.address} route-map ${ROUTE_MAP} out`);
    bgpd.push(' exit-address-family');
  }
  bgpd.push('exit');
  const families = ([4, 6] as const).filter((f) => s.peers.some((p) => familyOf(p.address) === f));
  const drain = [`router bgp ${s.asn}`, ...families.flatMap((f) => [` address-family ipv${f} unicast`, `  no redistribute connected route-map ${ROUTE_MAP}`, ' exit-address-family']), 'exit'];
  const bgpdFresh = bgpd.flatMap((l) => (/^ neighbor \S+ remote-as /.test(l) ? [l, l.replace(/ remote-as .*/, ' shutdown')] : [l]));
  bgpdFresh.push(`router bgp ${s.asn}`, ...s.peers.map((p) => ` no neighbor ${p.address} shutdown`), 'exit');
  const text = ['! Rendered by vipd (docs/bgp.md); vipd applies it over the vty sockets at start.', 'frr defaults traditional', ...bfdd, ...bgpd, ''].join('\n');
  return { bgpd, bgpdFresh, drain, bfdd, text };
}

/**
 * The line that lets a service IP out (or, with `remove`, takes it back). It must be in place
 * before the address appears on lo: FRR re-evaluates an already redistributed route only after
 * its route-map delay timer (5 s by default), while a new route meets the current list at once.
 */
export function servicePrefixLine(ip: string, remove = false): string {
  const f = familyOf(ip) === 6 ? 6 : 4;
  return `${remove ? 'no ' : ''}${f === 4 ? 'ip' : 'ipv6'} prefix-list ${SERVICE_PREFIX_LIST[f]} permit ${hostPrefix(ip)}`;
}
