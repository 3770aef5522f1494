/**
 * The classic BPF program that narrows an AF_PACKET socket (native/afpacket.c) to the frames its
 * users asked for. Pure: addresses in, instructions out; packet.ts attaches the result.
 *
 * Why: a standby used to wake (poll, N-API callback, parse) for every ARP request on the segment,
 * and the holder for every request for any address: 100 requests a second for the VIP cost a
 * standby ~2 % of a core in the footprint benchmark (bench/README.md). With this program the
 * kernel drops what no user needs before anything wakes.
 *
 * What passes (on top of the open-time filter's rules: not outgoing, not VLAN-tagged):
 * - frames that claim an address in `claims`: ARP with that sender address (gratuitous ARP,
 *   replies, requests from it), NA with that target, NS from it;
 * - questions about an address in `questions`: ARP with that target address, NS with that target.
 * Everything else is dropped, other ethertypes included, as by the open-time filter.
 *
 * Invariants:
 * - Every jump is forward and shorter than 256 (classic BPF's 8-bit offsets), whatever the number
 *   of addresses: each comparison is followed by its own `ret accept`.
 * - The program is at most BPF_MAXINSNS (4096) instructions, or `programFor` returns null (the
 *   caller keeps the open-time filter, which passes a superset).
 * - ARP is matched at fixed offsets for Ethernet/IPv4 ARP (28 bytes); IPv6 only when ICMPv6 is the
 *   first next header, as parseFrame requires. A load past the frame's end drops it (kernel rule).
 */
import { endianness } from 'node:os';
import { familyOf, ipToBytes } from './ip.js';

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface FrameInterest {
  /** Addresses whose claims (and answers from them) the users need. */
  claims: readonly string[];
  /** Addresses whose questions (ARP requests, NS) the users answer. */
  questions: readonly string[];
}

/** linux/filter.h */
const BPF_LD = 0x00;
const BPF_JMP = 0x05;
const BPF_RET = 0x06;
const BPF_W = 0x00;
const BPF_H = 0x08;
const BPF_B = 0x10;
const BPF_ABS = 0x20;
const BPF_JA = 0x00;
const BPF_JEQ = 0x10;
const BPF_K = 0x00;
export const BPF_MAXINSNS = 4096;
const SKF_AD_OFF = -0x1000;
const SKF_AD_PKTTYPE = 4;
const SKF_AD_VLAN_TAG_PRESENT = 44;
const PACKET_OUTGOING = 4;

/** Snap length of an accepted frame, as the addon's receive buffer. */
export const ACCEPT_LEN = 65536;

export const OP = {
  ldw: BPF_LD | BPF_W | BPF_ABS,
  ldh: BPF_LD | BPF_H | BPF_ABS,
  ldb: BPF_LD | BPF_B | BPF_ABS,
  jeq: BPF_JMP | BPF_JEQ | BPF_K,
  ja: BPF_JMP | BPF_JA,
  ret: BPF_RET | BPF_K,
} as const;

/** Frame offsets (Ethernet header 14 bytes). */
export const OFF = {
  ethertype: 12,
  arpSpa: 14 + 14,
  arpTpa: 14 + 24,
  ip6NextHeader: 14 + 6,
  ip6Src: 14 + 8,
  icmp6Type: 14 + 40,
  ndTarget: 14 + 40 + 8,
} as const;

const ja = (k: number): Insn => ({ code: OP.ja, jt: 0, jf: 0, k: k >>> 0 });
const stmt = (code: number, k: number): Insn => ({ code, jt: 0, jf: 0, k: k >>> 0 });
const jeq = (k: number, jt: number, jf: number): Insn => ({ code: OP.jeq, jt, jf, k: k >>> 0 });
const ACCEPT = stmt(OP.ret, ACCEPT_LEN);
const DROP = stmt(OP.ret, 0);

/** The address as 32-bit words in network order, as BPF_W|BPF_ABS loads them. */
function words(ip: string): number[] {
  const b = ipToBytes(ip)!;
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 4) out.push(b.readUInt32BE(i));
  return out;
}

/** `ld [off]; jeq a, accept` for each IPv4 address: 2 instructions each, falls through when none matched. */
function match4(off: number, addrs: readonly string[]): Insn[] {
  if (addrs.length === 0) return [];
  const out: Insn[] = [stmt(OP.ldw, off)];
  for (const a of addrs) out.push(jeq(words(a)[0]!, 0, 1), ACCEPT);
  return out;
}

/** A 16-byte compare per IPv6 address (9 instructions each); falls through when none matched. */
function match6(off: number, addrs: readonly string[]): Insn[] {
  const out: Insn[] = [];
  for (const a of addrs) {
    const w = words(a);
    for (let i = 0; i < 4; i++) out.push(stmt(OP.ldw, off + 4 * i), jeq(w[i]!, 0, 7 - 2 * i));
    out.push(ACCEPT);
  }
  return out;
}

const uniq = (xs: readonly string[], fam: 4 | 6): string[] => [...new Set(xs.filter((x) => familyOf(x) === fam))];

/**
 * The program for these interests, or null when it would exceed BPF_MAXINSNS. `'all'` is the
 * addon's open-time filter: every ARP and NS/NA frame that is not outgoing and not VLAN-tagged.
 */
export function programFor(interest: FrameInterest | 'all'): Insn[] | null {
  let arp: Insn[] = [ACCEPT];
  let ns: Insn[] = [ACCEPT];
  let na: Insn[] = [ACCEPT];
  if (interest !== 'all') {
    const c4 = uniq(interest.claims, 4);
    const q4 = uniq(interest.questions, 4);
    const c6 = uniq(interest.claims, 6);
    const q6 = uniq(interest.questions, 6);
    arp = [...match4(OFF.arpSpa, c4), ...match4(OFF.arpTpa, q4), DROP];
    ns = [...match6(OFF.ip6Src, c6), ...match6(OFF.ndTarget, q6), DROP];
    na = [...match6(OFF.ndTarget, c6), DROP];
  }
  // Layout: checks, then NA body, NS body, ARP body. The dispatch reaches a body with `ja`
  // (32-bit offset), so bodies of any length are fine; inside them every jump is 1 to 7 long.
  const prog: Insn[] = [];
  prog.push(
    stmt(OP.ldw, SKF_AD_OFF + SKF_AD_PKTTYPE),
    jeq(PACKET_OUTGOING, 0, 1),
    DROP,
    stmt(OP.ldw, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
    jeq(0, 1, 0),
    DROP,
    stmt(OP.ldh, OFF.ethertype),
    jeq(0x0806, 0, 1),
  );
  const arpJump = prog.length;
  prog.push(ja(0)); // patched below: to the ARP body
  prog.push(
    jeq(0x86dd, 1, 0),
    DROP,
    stmt(OP.ldb, OFF.ip6NextHeader),
    jeq(58, 1, 0),
    DROP,
    stmt(OP.ldb, OFF.icmp6Type),
    jeq(135, 0, 1),
  );
  const nsJump = prog.length;
  prog.push(ja(0)); // to the NS body
  prog.push(jeq(136, 1, 0), DROP, ...na);
  const nsAt = prog.length;
  prog.push(...ns);
  const arpAt = prog.length;
  prog.push(...arp);
  prog[arpJump] = ja(arpAt - arpJump - 1);
  prog[nsJump] = ja(nsAt - nsJump - 1);
  return prog.length <= BPF_MAXINSNS ? prog : null;
}

/** struct sock_filter[] in host byte order, as SO_ATTACH_FILTER takes it. */
export function encodeProgram(prog: readonly Insn[]): Buffer {
  const le = endianness() === 'LE';
  const b = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    const o = i * 8;
    if (le) b.writeUInt16LE(p.code, o);
    else b.writeUInt16BE(p.code, o);
    b.writeUInt8(p.jt, o + 2);
    b.writeUInt8(p.jf, o + 3);
    if (le) b.writeUInt32LE(p.k >>> 0, o + 4);
    else b.writeUInt32BE(p.k >>> 0, o + 4);
  });
  return b;
}

/** The encoded `'all'` program. */
export const ALL_FRAMES: Buffer = encodeProgram(programFor('all')!);
