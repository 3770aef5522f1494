/**
 * IP address text: the one place vipd parses it and decides its canonical spelling and family.
 * Config, the kernel (netlink), the wire (ARP/ND frames) and Service pools all meet here, so an
 * address that comes back from any of them compares equal, as a string, to the one that went in.
 *
 * Canonical text: IPv4 dotted quad; IPv6 per RFC 5952 §4 (lower case, no leading zeros, the
 * longest run of two or more zero groups as `::`, the leftmost on a tie), IPv4-mapped addresses
 * included (`::ffff:c612:1`, not the §5 mixed notation: the kernel and the frames spell them so).
 *
 * Accepted text: what `node:net` accepts, which is RFC 4291 §2.2 text with a strict dotted quad
 * (no leading zeros, no short or hex forms), minus IPv6 zone ids: a zone names an interface,
 * not an address, and neither the kernel's address list nor the wire carries one.
 *
 * Failure convention: text that is not an IP address gives `undefined`, never a throw or null;
 * callers that must fail say so in their own terms. Bytes are different: every 4 or 16 bytes
 * are an address, so `ipFromBytes` throws a RangeError only for a caller's wrong length.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export const familyBits = (f: Family): 32 | 128 => (f === 4 ? 32 : 128);
export const familyName = (f: Family): 'IPv4' | 'IPv6' => (f === 4 ? 'IPv4' : 'IPv6');

function parse(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const v = isIP(text);
  if (v === 4) return ipaddr.IPv4.parse(text);
  if (v !== 6 || text.includes('%')) return undefined;
  if (!text.includes('.')) return ipaddr.IPv6.parse(text);
  // ipaddr.js reads "::a.b.c.d" (RFC 4291 §2.5.5.1, IPv4-compatible) as ::ffff:a.b.c.d; the
  // tail spelled as two hex groups keeps its value.
  const colon = text.lastIndexOf(':');
  const [a = 0, b = 0, c = 0, d = 0] = ipaddr.IPv4.parse(text.slice(colon + 1)).toByteArray();
  return ipaddr.IPv6.parse(`${text.slice(0, colon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`);
}

/** The canonical spelling of `text` (see the module comment), or undefined if it is no IP address. */
export function canonicalIp(text: string): string | undefined {
  return parse(text)?.toString();
}

/** 4 or 6, or undefined if `text` is no IP address. */
export function familyOf(text: string): Family | undefined {
  const ip = parse(text);
  return ip && (ip.kind() === 'ipv4' ? 4 : 6);
}

/** The 4 or 16 bytes of `text` in network order, or undefined if it is no IP address. */
export function ipToBytes(text: string): Buffer | undefined {
  const ip = parse(text);
  return ip && Buffer.from(ip.toByteArray());
}

/** Canonical text of 4 (IPv4) or 16 (IPv6) bytes in network order. */
export function ipFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new RangeError(`an IP address is 4 or 16 bytes, not ${bytes.length}`);
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

/** True for ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) in any spelling. */
export function isIpv4Mapped(text: string): boolean {
  const ip = parse(text);
  return ip !== undefined && ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress();
}

/** True when `ip` and `network` are one family and agree in their first `prefix` bits. */
export function inPrefix(ip: string, network: string, prefix: number): boolean {
  const a = parse(ip);
  const n = parse(network);
  return a !== undefined && n !== undefined && a.kind() === n.kind() && a.match(n, prefix);
}

/** `host:port` for a URL or a dial string, an IPv6 literal in brackets (RFC 3986 §3.2.2). */
export function hostPort(host: string, port: number): string {
  // Only an IPv6 literal (zone id and all) has a colon; names and IPv4 never do.
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
