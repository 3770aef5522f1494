/**
 * IP address arithmetic for service pools: addresses as (family, bigint) so a /64 is two numbers,
 * never a list. Text in, canonical text out: IPv4 dotted quad, IPv6 RFC 5952 (lower case,
 * longest zero run compressed), so two spellings of one address always compare equal.
 *
 * Strict on input: no leading-zero IPv4 octets, no short forms ("1.2.3"), no IPv6 zone ids, no
 * IPv4-mapped IPv6 — each of those is rejected rather than guessed at.
 */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Addr {
  readonly family: Family;
  readonly value: bigint;
}

/** Inclusive range of one family, first ≤ last. */
export interface AddrRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export const familyBits = (f: Family): number => (f === 4 ? 32 : 128);
export const familyName = (f: Family): 'IPv4' | 'IPv6' => (f === 4 ? 'IPv4' : 'IPv6');

function bytesToBigint(bytes: readonly number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToBytes(v: bigint, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Why `text` is not an address we accept, or undefined when it is one. */
export function addrProblem(text: string): string | undefined {
  if (text === '') return 'empty address';
  if (text.includes('%')) return 'IPv6 zone ids are not allowed';
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  if (ipaddr.IPv6.isValid(text)) {
    if (ipaddr.IPv6.parse(text).isIPv4MappedAddress()) return 'IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address';
    return undefined;
  }
  return 'not an IPv4 (a.b.c.d) or IPv6 address';
}

export function parseAddr(text: string): Addr | undefined {
  if (addrProblem(text) !== undefined) return undefined;
  const ip = ipaddr.parse(text);
  return { family: ip.kind() === 'ipv4' ? 4 : 6, value: bytesToBigint(ip.toByteArray()) };
}

export function formatAddr(a: Addr): string {
  const ip = ipaddr.fromByteArray(bigintToBytes(a.value, a.family === 4 ? 4 : 16));
  return ip.kind() === 'ipv6' ? (ip as ipaddr.IPv6).toRFC5952String() : ip.toString();
}

/** Canonical spelling of an address, or undefined if it is not one. */
export function canonicalAddr(text: string): string | undefined {
  const a = parseAddr(text.trim());
  return a && formatAddr(a);
}

export function rangeSize(r: AddrRange): bigint {
  return r.last - r.first + 1n;
}

export function rangeContains(r: AddrRange, a: Addr): boolean {
  return r.family === a.family && a.value >= r.first && a.value <= r.last;
}

export function formatRange(r: AddrRange): string {
  const f = formatAddr({ family: r.family, value: r.first });
  return r.first === r.last ? f : `${f}-${formatAddr({ family: r.family, value: r.last })}`;
}

/** Sorted, overlapping and adjacent ranges merged; each family kept apart (IPv4 first). */
export function normalizeRanges(ranges: readonly AddrRange[]): AddrRange[] {
  const sorted = [...ranges].sort((a, b) => a.family - b.family || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: AddrRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.family === r.family && r.first <= prev.last + 1n) {
      if (r.last > prev.last) out[out.length - 1] = { family: prev.family, first: prev.first, last: r.last };
    } else {
      out.push(r);
    }
  }
  return out;
}

export function compareAddr(a: Addr, b: Addr): number {
  return a.family - b.family || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0);
}

/** Family of a canonical or raw address string (undefined if not an address). */
export function familyOf(text: string): Family | undefined {
  return parseAddr(text)?.family;
}
