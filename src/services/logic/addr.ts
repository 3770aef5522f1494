/**
 * IP address arithmetic for service pools: addresses as (family, bigint) so a /64 is two numbers,
 * never a list. Text in, canonical text out (net/ip.ts spells it), so two spellings of one
 * address always compare equal.
 *
 * Strict on input, beyond what net/ip.ts already refuses (short or leading-zero IPv4, zone ids):
 * no IPv4-mapped IPv6 either: an address the user meant as IPv4 is rejected rather than guessed at.
 */
import { canonicalIp, familyBits, familyOf, ipFromBytes, ipToBytes, isIpv4Mapped, type Family } from '../../net/ip.js';

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

function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToBytes(v: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
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
  if (familyOf(text) === undefined) return 'not an IPv4 (a.b.c.d) or IPv6 address';
  // "::a.b.c.d" is IPv4-compatible (RFC 4291 §2.5.5.1, deprecated), not mapped, yet just as surely
  // an IPv4 address in disguise; pools have always refused it.
  if (isIpv4Mapped(text) || /^::\d+(\.\d+){3}$/.test(text)) return 'IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address';
  return undefined;
}

export function parseAddr(text: string): Addr | undefined {
  if (addrProblem(text) !== undefined) return undefined;
  const bytes = ipToBytes(text) as Buffer;
  return { family: bytes.length === 4 ? 4 : 6, value: bytesToBigint(bytes) };
}

export function formatAddr(a: Addr): string {
  return ipFromBytes(bigintToBytes(a.value, familyBits(a.family) / 8));
}

/** Canonical spelling of an address we accept (surrounding blanks ignored), or undefined. */
export function canonicalAddr(text: string): string | undefined {
  const t = text.trim();
  return addrProblem(t) === undefined ? canonicalIp(t) : undefined;
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
