/**
 * Wire format of the service-IP grant messages (logic/grants.ts), HMAC-SHA256 with the peer key.
 * Pure apart from node:crypto. Receiving never throws.
 *
 * Packet (big-endian), at most MAX_GRANT_PACKET bytes (IP fragmentation carries the large ones;
 * the voters and members share a LAN):
 *   'V' 'G'  version:u8  type:u8 (1 claim, 2 claim-resp)  flags:u8(=0)
 *   fromLen:u8 from:utf8   toLen:u8 to:utf8
 *   epoch:8 bytes   counter:u64   wallMs:u64
 *   payloadLen:u16 payload   mac:32 = HMAC-SHA256(key, every byte before it)
 * claim:      round:f64  flags:u8 (1 leaving, 2 liveSeen follows, 4 candidate)  [liveSeen: epoch:8 version:u32]
 *             n:u16  n × ip
 * claim-resp: reqEpoch:8  round:f64  quiet:u8  n:u16  n × ip  liveVersion:u32
 *             hasLive:u8  [m:u16  m × (len:u8 name:utf8)]
 * ip: len:u8 (4 or 16) bytes
 *
 * The magic differs from the peer election's ('V' 'P') so that no datagram of one protocol is
 * ever read as the other's, even with the same key. Replays are filtered as the peers' are
 * (ReplayGuard: per-sender epoch + counter, wall stamp within W); the grant core stays safe
 * without that filter (reordering and duplication are part of its simulation), the filter keeps a
 * replayed claim of a dead member from keeping its IPs.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ipFromBytes, ipToBytes } from '../net/ip.js';
import type { DropReason, WireHeader } from '../election/peers/codec.js';
import type { ClaimMsg, ClaimRespMsg, GrantMsg, LiveVersion } from './logic/grants.js';

export const GRANT_WIRE_VERSION = 1;
/** About 3,000 IPv4 or 900 IPv6 addresses per member and 1,000 live member names per answer. */
export const MAX_GRANT_PACKET = 16_384;
const MAGIC0 = 0x56; // 'V'
const MAGIC1 = 0x47; // 'G'
const MAC_LEN = 32;
const EPOCH_RE = /^[0-9a-f]{16}$/;
const TYPE_CLAIM = 1;
const TYPE_RESP = 2;

export type GrantDecodeResult = { ok: true; msg: GrantMsg; header: WireHeader } | { ok: false; reason: DropReason };

class Writer {
  private parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError('u32 out of range');
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  f64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  short(b: Buffer, what: string): this {
    if (b.length > 255) throw new RangeError(`${what} must be at most 255 bytes`);
    return this.u8(b.length).bytes(b);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function ipList(w: Writer, ips: readonly string[]): void {
  if (ips.length > 0xffff) throw new RangeError('too many addresses for one packet');
  w.u16(ips.length);
  for (const ip of ips) {
    const b = ipToBytes(ip);
    if (b === undefined) throw new RangeError(`not an IP address: ${ip}`);
    w.short(b, 'address');
  }
}

function payloadOf(m: GrantMsg): Buffer {
  const w = new Writer();
  if (m.type === 'claim') {
    w.f64(m.round).u8((m.leaving ? 1 : 0) | (m.liveSeen ? 2 : 0) | (m.candidate ? 4 : 0));
    if (m.liveSeen) {
      if (!EPOCH_RE.test(m.liveSeen.epoch)) throw new RangeError('liveSeen.epoch must be 16 lowercase hex digits');
      w.bytes(Buffer.from(m.liveSeen.epoch, 'hex')).u32(m.liveSeen.version);
    }
    ipList(w, m.ips);
  } else {
    if (!EPOCH_RE.test(m.reqEpoch)) throw new RangeError('reqEpoch must be 16 lowercase hex digits');
    w.bytes(Buffer.from(m.reqEpoch, 'hex')).f64(m.round).u8(m.quiet ? 1 : 0);
    ipList(w, m.granted);
    w.u32(m.liveVersion).u8(m.live === null ? 0 : 1);
    if (m.live !== null) {
      if (m.live.length > 0xffff) throw new RangeError('too many members for one packet');
      w.u16(m.live.length);
      for (const n of m.live) w.short(Buffer.from(n, 'utf8'), 'member name');
    }
  }
  return w.done();
}

export function encodeGrant(m: GrantMsg, meta: { counter: number; wallMs: number }, key: Buffer): Buffer {
  if (!EPOCH_RE.test(m.epoch)) throw new RangeError('epoch must be 16 lowercase hex digits');
  for (const v of [meta.counter, meta.wallMs]) if (!Number.isSafeInteger(v) || v < 0) throw new RangeError('counter and wallMs must be non-negative safe integers');
  const from = Buffer.from(m.from, 'utf8');
  const to = Buffer.from(m.to, 'utf8');
  if (from.length === 0 || to.length === 0) throw new RangeError('names must not be empty');
  const payload = payloadOf(m);
  if (payload.length > 0xffff) throw new RangeError('packet too large');
  const head = new Writer()
    .u8(MAGIC0)
    .u8(MAGIC1)
    .u8(GRANT_WIRE_VERSION)
    .u8(m.type === 'claim' ? TYPE_CLAIM : TYPE_RESP)
    .u8(0)
    .short(from, 'node name')
    .short(to, 'node name')
    .bytes(Buffer.from(m.epoch, 'hex'))
    .u64(meta.counter)
    .u64(meta.wallMs)
    .u16(payload.length)
    .bytes(payload)
    .done();
  if (head.length + MAC_LEN > MAX_GRANT_PACKET) throw new RangeError(`packet too large (${head.length + MAC_LEN} > ${MAX_GRANT_PACKET} bytes)`);
  return Buffer.concat([head, createHmac('sha256', key).update(head).digest()]);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A bounds-checked reader: every read returns null past the end. */
class Reader {
  o = 0;
  constructor(private readonly b: Buffer) {}
  left(): number {
    return this.b.length - this.o;
  }
  u8(): number | null {
    return this.o + 1 <= this.b.length ? this.b[this.o++]! : null;
  }
  u32(): number | null {
    if (this.o + 4 > this.b.length) return null;
    const v = this.b.readUInt32BE(this.o);
    this.o += 4;
    return v;
  }
  u16(): number | null {
    if (this.o + 2 > this.b.length) return null;
    const v = this.b.readUInt16BE(this.o);
    this.o += 2;
    return v;
  }
  take(n: number): Buffer | null {
    if (this.o + n > this.b.length) return null;
    const v = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return v;
  }
  short(): Buffer | null {
    const n = this.u8();
    return n === null ? null : this.take(n);
  }
  f64(): number | null {
    const b = this.take(8);
    return b === null ? null : b.readDoubleBE(0);
  }
}

function text(b: Buffer | null): string | null {
  if (b === null || b.length === 0) return null;
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

function readIps(r: Reader): string[] | null {
  const n = r.u16();
  if (n === null) return null;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = r.short();
    if (b === null || (b.length !== 4 && b.length !== 16)) return null;
    out.push(ipFromBytes(b));
  }
  return out;
}

function goodRound(v: number | null): v is number {
  return v !== null && Number.isFinite(v);
}

export interface GrantDecodeContext {
  key: Buffer;
  self: string;
  /** Who may send this kind of message to us: the voters (a member's view), or anyone (a voter's). */
  accept: (from: string, type: GrantMsg['type']) => boolean;
}

/** Never throws; returns the message or why it was dropped. */
export function decodeGrant(buf: Uint8Array, ctx: GrantDecodeContext): GrantDecodeResult {
  const drop = (reason: DropReason): GrantDecodeResult => ({ ok: false, reason });
  try {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    if (b.length > MAX_GRANT_PACKET) return drop('oversized');
    if (b.length < 5 + MAC_LEN) return drop('truncated');
    if (b[0] !== MAGIC0 || b[1] !== MAGIC1) return drop('malformed');
    if (b[2] !== GRANT_WIRE_VERSION) return drop('wrong-version');
    const macAt = b.length - MAC_LEN;
    const mac = createHmac('sha256', ctx.key).update(b.subarray(0, macAt)).digest();
    if (!timingSafeEqual(mac, b.subarray(macAt))) return drop('bad-mac');
    const r = new Reader(b.subarray(0, macAt));
    r.o = 3;
    const type = r.u8();
    const flags = r.u8();
    const from = text(r.short());
    const to = text(r.short());
    const epochB = r.take(8);
    const counterB = r.take(8);
    const wallB = r.take(8);
    const plen = r.u16();
    if (type === null || flags !== 0 || from === null || to === null || epochB === null || counterB === null || wallB === null || plen === null) return drop('malformed');
    if (plen !== r.left()) return drop('malformed');
    const counter = counterB.readBigUInt64BE(0);
    const wall = wallB.readBigUInt64BE(0);
    const MAX = BigInt(Number.MAX_SAFE_INTEGER);
    if (counter < 1n || counter > MAX || wall > MAX) return drop('malformed');
    const epoch = epochB.toString('hex');
    let msg: GrantMsg;
    if (type === TYPE_CLAIM) {
      const round = r.f64();
      const flags = r.u8();
      if (!goodRound(round) || flags === null || (flags & ~7) !== 0) return drop('malformed');
      let liveSeen: LiveVersion | undefined;
      if (flags & 2) {
        const e = r.take(8);
        const version = r.u32();
        if (e === null || version === null) return drop('malformed');
        liveSeen = { epoch: e.toString('hex'), version };
      }
      const ips = readIps(r);
      if (ips === null || r.left() !== 0) return drop('malformed');
      msg = { type: 'claim', from, to, epoch, round, ips, candidate: (flags & 4) !== 0, ...(flags & 1 ? { leaving: true } : {}), ...(liveSeen ? { liveSeen } : {}) } satisfies ClaimMsg;
    } else if (type === TYPE_RESP) {
      const reqEpoch = r.take(8);
      const round = r.f64();
      const quiet = r.u8();
      const granted = readIps(r);
      const liveVersion = r.u32();
      const hasLive = r.u8();
      if (reqEpoch === null || !goodRound(round) || (quiet !== 0 && quiet !== 1) || granted === null || liveVersion === null || (hasLive !== 0 && hasLive !== 1)) return drop('malformed');
      let live: string[] | null = null;
      if (hasLive === 1) {
        const n = r.u16();
        if (n === null) return drop('malformed');
        live = [];
        for (let i = 0; i < n; i++) {
          const name = text(r.short());
          if (name === null) return drop('malformed');
          live.push(name);
        }
      }
      if (r.left() !== 0) return drop('malformed');
      msg = { type: 'claim-resp', from, to, epoch, reqEpoch: reqEpoch.toString('hex'), round, quiet: quiet === 1, granted, live, liveVersion } satisfies ClaimRespMsg;
    } else {
      return drop('malformed');
    }
    // A control-plane node is both a voter and a member: its member talks to its own voter.
    if (!ctx.accept(from, msg.type)) return drop('unknown-sender');
    if (to !== ctx.self) return drop('wrong-recipient');
    return { ok: true, msg, header: { from, to, epoch, counter: Number(counter), wallMs: Number(wall), term: 0 } };
  } catch {
    // Unreachable by construction (every read is bounds-checked); a parser bug must not take the agent down.
    return drop('malformed');
  }
}

/** Encoder side: owns this process's epoch and counter. */
export class GrantCodec {
  private counter = 0;
  constructor(private readonly o: { key: Buffer; epoch: string }) {}
  encode(m: GrantMsg, wallMs: number): Buffer {
    this.counter += 1;
    return encodeGrant({ ...m, epoch: this.o.epoch }, { counter: this.counter, wallMs: Math.max(0, Math.floor(wallMs)) }, this.o.key);
  }
}
