/**
 * Ethernet frame codecs for ARP and IPv6 neighbour discovery (NS / NA). Pure: bytes in, bytes out.
 *
 * Invariants:
 * - Builders return complete Ethernet frames, ready for an AF_PACKET SOCK_RAW socket, padded to
 *   the 60-byte Ethernet minimum (the wire adds the FCS). What the golden tests pin is what leaves.
 * - `parseFrame` never throws, whatever the bytes; anything it does not fully understand or that a
 *   Linux receiver would drop (ND with hop limit != 255, bad ICMPv6 checksum, zero-length option,
 *   multicast target, solicited flag on a multicast NA, ...) is `null`.
 * - Addresses come out normalised (MAC lower-case colon form, IPs as net/ip.ts spells them), so
 *   string equality is address equality. Builders accept what net/ip.ts accepts.
 *
 * Frame choices (docs/net.md says why):
 * - Gratuitous ARP request: THA 00:00:00:00:00:00 (RFC 5227 §3 announcement).
 * - Gratuitous ARP reply: THA = SHA. Linux treats a reply as gratuitous (and lets it override an
 *   entry younger than locktime) only when THA == SHA (net/ipv4/arp.c arp_is_garp).
 * - NA source address = the target address itself, as Linux's own ndisc_send_na does.
 */
import { ipFromBytes, ipToBytes } from './ip.js';

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;
export const ICMPV6_NS = 135;
export const ICMPV6_NA = 136;
export const ND_HOP_LIMIT = 255;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';
export const ALL_NODES_IPV6 = 'ff02::1';
export const ALL_NODES_MAC = '33:33:00:00:00:01';
export const MIN_FRAME_LEN = 60;

const ETH_HDR = 14;
const ARP_LEN = 28;
const IPV6_HDR = 40;
const ND_BASE = 24; // ICMPv6 header (4) + flags/reserved (4) + target (16)
const NEXT_HEADER_ICMPV6 = 58;
const OPT_SOURCE_LL = 1;
const OPT_TARGET_LL = 2;

export class AddressError extends Error {
  override name = 'AddressError';
}

// ---------------------------------------------------------------------------------------------
// Address helpers

/** Parses `aa:bb:cc:dd:ee:ff` (also `-` separated, any case) into 6 bytes; throws AddressError. */
export function macToBytes(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new AddressError(`not a MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** Six bytes at `off` as `aa:bb:cc:dd:ee:ff`. */
export function macToString(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const v = b[off + i] ?? 0;
    s += (i ? ':' : '') + (v < 16 ? '0' : '') + v.toString(16);
  }
  return s;
}

export function normalizeMac(mac: string): string {
  return macToString(macToBytes(mac));
}

/** ff02::1:ffXX:XXXX for an IPv6 unicast address (RFC 4291 §2.7.1). */
export function solicitedNodeAddress(ip6: string): string {
  const b = ipv6Bytes(ip6);
  const out = Buffer.alloc(16);
  out[0] = 0xff;
  out[1] = 0x02;
  out[11] = 0x01;
  out[12] = 0xff;
  out[13] = b[13] ?? 0;
  out[14] = b[14] ?? 0;
  out[15] = b[15] ?? 0;
  return ipFromBytes(out);
}

/** 33:33 + the low 32 bits of an IPv6 multicast address (RFC 2464 §7). */
export function ipv6MulticastMac(group: string): string {
  const b = ipv6Bytes(group);
  return macToString(Buffer.from([0x33, 0x33, b[12] ?? 0, b[13] ?? 0, b[14] ?? 0, b[15] ?? 0]));
}

/** 33:33:ff:XX:XX:XX, the Ethernet group a node must accept to hear NS for `ip6`. */
export function solicitedNodeMac(ip6: string): string {
  return ipv6MulticastMac(solicitedNodeAddress(ip6));
}

function ipv4Bytes(ip: string): Buffer {
  const b = ipToBytes(ip);
  if (b?.length !== 4) throw new AddressError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return b;
}

function ipv6Bytes(ip: string): Buffer {
  const b = ipToBytes(ip);
  if (b?.length !== 16) throw new AddressError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  return b;
}

function isIpv6Multicast(b: Uint8Array, off: number): boolean {
  return b[off] === 0xff;
}

function isIpv6Unspecified(b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (b[off + i] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// ARP

function ethernet(dst: string, src: string, ethertype: number, payloadLen: number): Buffer {
  const f = Buffer.alloc(Math.max(MIN_FRAME_LEN, ETH_HDR + payloadLen));
  macToBytes(dst).copy(f, 0);
  macToBytes(src).copy(f, 6);
  f.writeUInt16BE(ethertype, 12);
  return f;
}

export interface ArpFields {
  /** Ethernet destination. */
  ethDst: string;
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

/** Any Ethernet/IPv4 ARP frame; Ethernet source is SHA. */
export function arpFrame(a: ArpFields): Buffer {
  const f = ethernet(a.ethDst, a.sha, ETHERTYPE_ARP, ARP_LEN);
  let o = ETH_HDR;
  f.writeUInt16BE(1, o); // htype Ethernet
  f.writeUInt16BE(0x0800, o + 2); // ptype IPv4
  f[o + 4] = 6;
  f[o + 5] = 4;
  f.writeUInt16BE(a.op, o + 6);
  o += 8;
  macToBytes(a.sha).copy(f, o);
  ipv4Bytes(a.spa).copy(f, o + 6);
  macToBytes(a.tha).copy(f, o + 10);
  ipv4Bytes(a.tpa).copy(f, o + 16);
  return f;
}

/** Gratuitous ARP, request form: broadcast, op 1, SPA = TPA = vip, THA zero (RFC 5227 announcement). */
export function garpRequest(mac: string, vip: string): Buffer {
  return arpFrame({ ethDst: BROADCAST_MAC, op: ARP_OP_REQUEST, sha: mac, spa: vip, tha: ZERO_MAC, tpa: vip });
}

/** Gratuitous ARP, reply form: broadcast, op 2, SPA = TPA = vip, THA = SHA (what Linux calls a GARP reply). */
export function garpReply(mac: string, vip: string): Buffer {
  return arpFrame({ ethDst: BROADCAST_MAC, op: ARP_OP_REPLY, sha: mac, spa: vip, tha: mac, tpa: vip });
}

/** ARP reply to one requester, unicast to its hardware address (TPA 0.0.0.0 answers an RFC 5227 probe). */
export function arpReply(o: { mac: string; ip: string; toMac: string; toIp: string }): Buffer {
  return arpFrame({ ethDst: o.toMac, op: ARP_OP_REPLY, sha: o.mac, spa: o.ip, tha: o.toMac, tpa: o.toIp });
}

/** Broadcast ARP request "who has target"; senderIp 0.0.0.0 makes it an RFC 5227 probe. */
export function arpRequest(o: { mac: string; senderIp: string; target: string }): Buffer {
  return arpFrame({ ethDst: BROADCAST_MAC, op: ARP_OP_REQUEST, sha: o.mac, spa: o.senderIp, tha: ZERO_MAC, tpa: o.target });
}

/** RFC 5227 §2.1.1 probe: SPA 0.0.0.0 so no receiver learns anything from it. */
export function arpProbe(mac: string, target: string): Buffer {
  return arpRequest({ mac, senderIp: '0.0.0.0', target });
}

// ---------------------------------------------------------------------------------------------
// IPv6 neighbour discovery

/** One's-complement sum folded to 16 bits (RFC 1071), starting from `acc`. */
function sum16(b: Uint8Array, start: number, end: number, acc: number): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
  if (i < end) s += (b[i] ?? 0) << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * ICMPv6 checksum over the pseudo-header and `msg` (whose checksum field must be zero, or the
 * result is 0 when the stored checksum is right).
 */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): number {
  const pseudo = Buffer.alloc(40);
  Buffer.from(src.buffer, src.byteOffset, 16).copy(pseudo, 0);
  Buffer.from(dst.buffer, dst.byteOffset, 16).copy(pseudo, 16);
  pseudo.writeUInt32BE(msg.length, 32);
  pseudo[39] = NEXT_HEADER_ICMPV6;
  let s = sum16(pseudo, 0, 40, 0);
  s = sum16(msg, 0, msg.length, s);
  return ~s & 0xffff;
}

interface NdBuild {
  ethDst: string;
  ethSrc: string;
  src: string;
  dst: string;
  type: typeof ICMPV6_NS | typeof ICMPV6_NA;
  flags: number; // first byte after the checksum: R|S|O for NA, 0 for NS
  target: string;
  option: { type: number; mac: string } | null;
}

function ndFrame(n: NdBuild): Buffer {
  const icmpLen = ND_BASE + (n.option ? 8 : 0);
  const f = ethernet(n.ethDst, n.ethSrc, ETHERTYPE_IPV6, IPV6_HDR + icmpLen);
  const ip = ETH_HDR;
  f.writeUInt32BE(0x60000000, ip); // version 6, traffic class 0, flow label 0
  f.writeUInt16BE(icmpLen, ip + 4);
  f[ip + 6] = NEXT_HEADER_ICMPV6;
  f[ip + 7] = ND_HOP_LIMIT;
  const src = ipv6Bytes(n.src);
  const dst = ipv6Bytes(n.dst);
  src.copy(f, ip + 8);
  dst.copy(f, ip + 24);
  const m = ip + IPV6_HDR;
  f[m] = n.type;
  f[m + 1] = 0;
  f[m + 4] = n.flags;
  ipv6Bytes(n.target).copy(f, m + 8);
  if (n.option) {
    f[m + 24] = n.option.type;
    f[m + 25] = 1; // length in units of 8 octets
    macToBytes(n.option.mac).copy(f, m + 26);
  }
  f.writeUInt16BE(icmpv6Checksum(src, dst, f.subarray(m, m + icmpLen)), m + 2);
  return f;
}

const NA_R = 0x80;
const NA_S = 0x40;
const NA_O = 0x20;

/** Unsolicited NA (RFC 4861 §7.2.6): to ff02::1, S=0 O=1, target = vip, target link-layer option. */
export function unsolicitedNa(mac: string, vip: string): Buffer {
  return ndFrame({
    ethDst: ALL_NODES_MAC,
    ethSrc: mac,
    src: vip,
    dst: ALL_NODES_IPV6,
    type: ICMPV6_NA,
    flags: NA_O,
    target: vip,
    option: { type: OPT_TARGET_LL, mac },
  });
}

/**
 * NA answering an NS for `target`. To the solicitor's unicast address with S=1 O=1; when the NS came
 * from :: (DAD) it goes to ff02::1 with S=0 (RFC 4861 §7.2.4), so a prober learns it is taken.
 */
export function solicitedNa(o: { mac: string; target: string; toMac: string; toIp: string }): Buffer {
  const dad = isIpv6Unspecified(ipv6Bytes(o.toIp), 0);
  return ndFrame({
    ethDst: dad ? ALL_NODES_MAC : o.toMac,
    ethSrc: o.mac,
    src: o.target,
    dst: dad ? ALL_NODES_IPV6 : o.toIp,
    type: ICMPV6_NA,
    flags: dad ? NA_O : NA_S | NA_O,
    target: o.target,
    option: { type: OPT_TARGET_LL, mac: o.mac },
  });
}

/**
 * NS for `target` to its solicited-node group. With srcIp :: it is the DAD form (RFC 4862 §5.4.2),
 * which must carry no source link-layer option; otherwise the option tells the target where to answer.
 */
export function neighborSolicitation(o: { mac: string; srcIp: string; target: string }): Buffer {
  const dad = isIpv6Unspecified(ipv6Bytes(o.srcIp), 0);
  const group = solicitedNodeAddress(o.target);
  return ndFrame({
    ethDst: ipv6MulticastMac(group),
    ethSrc: o.mac,
    src: o.srcIp,
    dst: group,
    type: ICMPV6_NS,
    flags: 0,
    target: o.target,
    option: dad ? null : { type: OPT_SOURCE_LL, mac: o.mac },
  });
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface EthHead {
  ethDst: string;
  ethSrc: string;
}

export interface ParsedArp extends EthHead {
  kind: 'arp';
  op: typeof ARP_OP_REQUEST | typeof ARP_OP_REPLY;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

interface NdHead extends EthHead {
  src: string;
  dst: string;
  hopLimit: number;
  target: string;
}

export interface ParsedNs extends NdHead {
  kind: 'ns';
  /** Source link-layer address option, if present. */
  sourceLinkAddr: string | null;
}

export interface ParsedNa extends NdHead {
  kind: 'na';
  router: boolean;
  solicited: boolean;
  override: boolean;
  /** Target link-layer address option, if present. */
  targetLinkAddr: string | null;
}

export type ParsedFrame = ParsedArp | ParsedNs | ParsedNa;

/** Parses an Ethernet ARP or IPv6 NS/NA frame; null for anything else or anything malformed. Never throws. */
export function parseFrame(buf: Uint8Array): ParsedFrame | null {
  try {
    if (!(buf instanceof Uint8Array) || buf.length < ETH_HDR) return null;
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    const head: EthHead = { ethDst: macToString(b, 0), ethSrc: macToString(b, 6) };
    const type = b.readUInt16BE(12);
    if (type === ETHERTYPE_ARP) return parseArp(b, head);
    if (type === ETHERTYPE_IPV6) return parseNd(b, head);
    return null;
  } catch {
    // Every read above is bounds-checked; this only guards the promise made to callers.
    return null;
  }
}

function parseArp(b: Buffer, head: EthHead): ParsedArp | null {
  if (b.length < ETH_HDR + ARP_LEN) return null;
  const o = ETH_HDR;
  if (b.readUInt16BE(o) !== 1 || b.readUInt16BE(o + 2) !== 0x0800 || b[o + 4] !== 6 || b[o + 5] !== 4) return null;
  const op = b.readUInt16BE(o + 6);
  if (op !== ARP_OP_REQUEST && op !== ARP_OP_REPLY) return null;
  return {
    kind: 'arp',
    ...head,
    op,
    sha: macToString(b, o + 8),
    spa: ipFromBytes(b.subarray(o + 14, o + 18)),
    tha: macToString(b, o + 18),
    tpa: ipFromBytes(b.subarray(o + 24, o + 28)),
  };
}

function parseNd(b: Buffer, head: EthHead): ParsedNs | ParsedNa | null {
  const ip = ETH_HDR;
  if (b.length < ip + IPV6_HDR + ND_BASE) return null;
  if ((b[ip] ?? 0) >> 4 !== 6) return null;
  if (b[ip + 6] !== NEXT_HEADER_ICMPV6) return null; // ND never needs extension headers
  const payloadLen = b.readUInt16BE(ip + 4);
  const m = ip + IPV6_HDR;
  if (payloadLen < ND_BASE || m + payloadLen > b.length) return null;
  const msg = b.subarray(m, m + payloadLen);
  const type = msg[0];
  if (type !== ICMPV6_NS && type !== ICMPV6_NA) return null;
  const hopLimit = b[ip + 7] ?? 0;
  // RFC 4861 §7.1: a receiver drops ND with hop limit != 255 or code != 0.
  if (hopLimit !== ND_HOP_LIMIT || msg[1] !== 0) return null;
  const srcB = b.subarray(ip + 8, ip + 24);
  const dstB = b.subarray(ip + 24, ip + 40);
  if (icmpv6Checksum(srcB, dstB, msg) !== 0) return null;
  if (isIpv6Multicast(msg, 8)) return null;

  let sll: string | null = null;
  let tll: string | null = null;
  for (let o = ND_BASE; o < msg.length; ) {
    if (msg.length - o < 2) return null;
    const optType = msg[o] ?? 0;
    const optLen = (msg[o + 1] ?? 0) * 8;
    if (optLen === 0 || o + optLen > msg.length) return null;
    if (optLen >= 8) {
      if (optType === OPT_SOURCE_LL && sll === null) sll = macToString(msg, o + 2);
      if (optType === OPT_TARGET_LL && tll === null) tll = macToString(msg, o + 2);
    }
    o += optLen;
  }

  const nd: NdHead = {
    ...head,
    src: ipFromBytes(srcB),
    dst: ipFromBytes(dstB),
    hopLimit,
    target: ipFromBytes(msg.subarray(8, 24)),
  };
  if (type === ICMPV6_NS) {
    const srcUnspecified = isIpv6Unspecified(srcB, 0);
    // RFC 4861 §7.1.1: a DAD NS goes to a solicited-node group and carries no source link-layer option.
    if (srcUnspecified && (sll !== null || !(dstB[0] === 0xff && dstB[1] === 0x02 && dstB[11] === 0x01 && dstB[12] === 0xff))) return null;
    return { kind: 'ns', ...nd, sourceLinkAddr: sll };
  }
  const flags = msg[4] ?? 0;
  const solicited = (flags & NA_S) !== 0;
  // RFC 4861 §7.1.2: a multicast NA must not claim to be solicited.
  if (solicited && isIpv6Multicast(dstB, 0)) return null;
  return {
    kind: 'na',
    ...nd,
    router: (flags & NA_R) !== 0,
    solicited,
    override: (flags & NA_O) !== 0,
    targetLinkAddr: tll,
  };
}
