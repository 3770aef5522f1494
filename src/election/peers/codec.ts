/**
 * Peer wire format with HMAC-SHA256 authentication. Pure apart from node:crypto.
 *
 * Packet (big-endian), at most MAX_PACKET bytes:
 *   'V' 'P'  version:u8  type:u8  flags:u8(=0)
 *   fromLen:u8 from:utf8   toLen:u8 to:utf8
 *   epoch:8 bytes   counter:u64   wallMs:u64   term:u64
 *   payloadLen:u16 payload   mac:32 = HMAC-SHA256(key, every byte before it)
 * Version 2 added the responder's eligibility to heartbeat-resp and the transfer target to release
 * (len:u8 name:utf8, 0 = none); peers of different versions drop each other's packets as
 * 'wrong-version', so all peers of a cluster run one version (docs/election.md, upgrades).
 *
 * Receiving never throws: `decodeMessage` returns a message or a drop reason. Checks run in this
 * order: size, magic/version, structure (lengths), MAC, then meaning (type, fields, ranges), then
 * sender/recipient. Nothing after the MAC check is trusted before it passes; the structure walk
 * before it only reads lengths, within bounds.
 *
 * Replays (ReplayGuard): a sender has a random 8-byte epoch per process start and a counter that
 * starts at 1 and only grows within that epoch, so nothing needs to be persisted: a restarted sender
 * is a new epoch. The receiver keeps, per sender, the highest counter of each epoch seen recently
 * and drops anything not above it (also reordered datagrams: cheaper than a window, and losing one
 * on a LAN costs nothing). Epochs are forgotten after 2·W; to stop an old epoch's messages from
 * being replayed after that, each packet carries the sender's wall clock and is dropped when it is
 * more than W (default 30 s) away from ours. Peers' wall clocks must therefore agree within W.
 * Safety never depends on this filter (the core is safe under duplicated, delayed, reordered
 * messages); liveness does: a replayed heartbeat of a dead leader would otherwise keep voters
 * promising it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { REJECT_REASONS, type Body, type BodyType, type PeerMessage, type RejectReason } from './messages.js';

export const WIRE_VERSION = 2;
export const MAX_PACKET = 1024;
const MAGIC0 = 0x56; // 'V'
const MAGIC1 = 0x50; // 'P'
const MAC_LEN = 32;
/** Smallest possible packet: header with one-byte names, empty payload, MAC. */
export const MIN_PACKET = 5 + 2 + 2 + 8 + 8 + 8 + 8 + 2 + MAC_LEN;

export type DropReason =
  | 'oversized'
  | 'truncated'
  | 'malformed'
  | 'wrong-version'
  | 'bad-mac'
  | 'unknown-sender'
  | 'wrong-recipient'
  | 'replay'
  /** Wall-clock stamp further than the replay window from ours (old replay, or a badly set clock). */
  | 'stale';

export const DROP_REASONS: readonly DropReason[] = ['oversized', 'truncated', 'malformed', 'wrong-version', 'bad-mac', 'unknown-sender', 'wrong-recipient', 'replay', 'stale'];

const TYPES: readonly BodyType[] = ['prevote', 'prevote-resp', 'vote', 'vote-resp', 'heartbeat', 'heartbeat-resp', 'release'];
const PAYLOAD_LEN: Record<BodyType, number> = {
  prevote: 1,
  'prevote-resp': 2,
  vote: 8,
  'vote-resp': 18,
  heartbeat: 9,
  'heartbeat-resp': 19,
  // Plus the transfer target's name.
  release: 9,
};

export interface WireHeader {
  from: string;
  to: string;
  epoch: string;
  counter: number;
  wallMs: number;
  term: number;
}

export type DecodeResult = { ok: true; msg: PeerMessage; header: WireHeader } | { ok: false; reason: DropReason };

export interface DecodeContext {
  key: Buffer;
  self: string;
  peers: readonly string[];
}

const EPOCH_RE = /^[0-9a-f]{16}$/;

export function encodeMessage(msg: PeerMessage, meta: { counter: number; wallMs: number }, key: Buffer): Buffer {
  const from = Buffer.from(msg.from, 'utf8');
  const to = Buffer.from(msg.to, 'utf8');
  if (from.length === 0 || from.length > 255 || to.length === 0 || to.length > 255) throw new RangeError('peer name must be 1..255 bytes');
  if (!EPOCH_RE.test(msg.epoch)) throw new RangeError('epoch must be 16 lowercase hex digits');
  for (const [n, v] of [
    ['counter', meta.counter],
    ['wallMs', meta.wallMs],
    ['term', msg.term],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${n} must be a non-negative safe integer`);
  }
  const payload = encodePayload(msg.body);
  const len = 5 + 1 + from.length + 1 + to.length + 8 + 8 + 8 + 8 + 2 + payload.length + MAC_LEN;
  if (len > MAX_PACKET) throw new RangeError('packet too large');
  const b = Buffer.alloc(len);
  let o = 0;
  b[o++] = MAGIC0;
  b[o++] = MAGIC1;
  b[o++] = WIRE_VERSION;
  b[o++] = TYPES.indexOf(msg.body.type);
  b[o++] = 0;
  b[o++] = from.length;
  o += from.copy(b, o);
  b[o++] = to.length;
  o += to.copy(b, o);
  o += Buffer.from(msg.epoch, 'hex').copy(b, o);
  b.writeBigUInt64BE(BigInt(meta.counter), o);
  o += 8;
  b.writeBigUInt64BE(BigInt(meta.wallMs), o);
  o += 8;
  b.writeBigUInt64BE(BigInt(msg.term), o);
  o += 8;
  b.writeUInt16BE(payload.length, o);
  o += 2;
  o += payload.copy(b, o);
  createHmac('sha256', key).update(b.subarray(0, o)).digest().copy(b, o);
  return b;
}

function encodePayload(body: Body): Buffer {
  const p = Buffer.alloc(PAYLOAD_LEN[body.type]);
  switch (body.type) {
    case 'prevote':
      p[0] = body.bootstrap ? 1 : 0;
      break;
    case 'prevote-resp':
      p[0] = body.granted ? 1 : 0;
      p[1] = REJECT_REASONS.indexOf(body.reason);
      break;
    case 'vote':
      p.writeDoubleBE(body.round, 0);
      break;
    case 'release': {
      const target = Buffer.from(body.transferTo ?? '', 'utf8');
      if (target.length > 255) throw new RangeError('peer name must be 1..255 bytes');
      const r = Buffer.alloc(PAYLOAD_LEN.release + target.length);
      r.writeDoubleBE(body.round, 0);
      r[8] = target.length;
      target.copy(r, 9);
      return r;
    }
    case 'heartbeat':
      p.writeDoubleBE(body.round, 0);
      p[8] = body.bootstrap ? 1 : 0;
      break;
    case 'vote-resp':
    case 'heartbeat-resp':
      p[0] = body.granted ? 1 : 0;
      p[1] = REJECT_REASONS.indexOf(body.reason);
      Buffer.from(body.reqEpoch, 'hex').copy(p, 2);
      p.writeDoubleBE(body.round, 10);
      // 1 keeps its meaning from before apiHealthy existed (a good successor); 2 (eligible only)
      // reads as "not eligible" to an older leader, which is the cautious side during an upgrade.
      if (body.type === 'heartbeat-resp') p[18] = !body.eligible ? 0 : body.apiHealthy ? 1 : 2;
      break;
  }
  return p;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function name(b: Buffer): string | null {
  try {
    const s = utf8.decode(b);
    return s.length > 0 ? s : null;
  } catch {
    return null;
  }
}

/** Never throws; returns the message or why it was dropped. */
export function decodeMessage(buf: Uint8Array, ctx: DecodeContext): DecodeResult {
  try {
    return decodeUnsafe(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength), ctx);
  } catch {
    // Unreachable by construction (every read is bounds-checked); a parser bug must not take the agent down.
    return { ok: false, reason: 'malformed' };
  }
}

function decodeUnsafe(b: Buffer, ctx: DecodeContext): DecodeResult {
  const drop = (reason: DropReason): DecodeResult => ({ ok: false, reason });
  if (b.length > MAX_PACKET) return drop('oversized');
  if (b.length < 3) return drop('truncated');
  if (b[0] !== MAGIC0 || b[1] !== MAGIC1) return drop('malformed');
  if (b[2] !== WIRE_VERSION) return drop('wrong-version');
  if (b.length < MIN_PACKET) return drop('truncated');

  // Structure: lengths only.
  let o = 5;
  const fromLen = b[o++]!;
  const fromAt = o;
  o += fromLen;
  if (o + 1 > b.length) return drop('truncated');
  const toLen = b[o++]!;
  const toAt = o;
  o += toLen;
  const fixedAt = o;
  o += 8 + 8 + 8 + 8;
  if (o + 2 > b.length) return drop('truncated');
  const payloadLen = b.readUInt16BE(o);
  o += 2;
  const payloadAt = o;
  const macAt = payloadAt + payloadLen;
  const total = macAt + MAC_LEN;
  if (b.length < total) return drop('truncated');
  if (b.length > total) return drop('malformed');

  const mac = createHmac('sha256', ctx.key).update(b.subarray(0, macAt)).digest();
  if (!timingSafeEqual(mac, b.subarray(macAt, total))) return drop('bad-mac');

  // Meaning.
  const type = TYPES[b[3]!];
  if (type === undefined || b[4] !== 0) return drop('malformed');
  const from = fromLen === 0 ? null : name(b.subarray(fromAt, fromAt + fromLen));
  const to = toLen === 0 ? null : name(b.subarray(toAt, toAt + toLen));
  if (from === null || to === null) return drop('malformed');
  const epoch = b.subarray(fixedAt, fixedAt + 8).toString('hex');
  const counter = b.readBigUInt64BE(fixedAt + 8);
  const wall = b.readBigUInt64BE(fixedAt + 16);
  const term = b.readBigUInt64BE(fixedAt + 24);
  const MAX = BigInt(Number.MAX_SAFE_INTEGER);
  if (counter < 1n || counter > MAX || wall > MAX || term > MAX) return drop('malformed');
  const payload = b.subarray(payloadAt, macAt);
  const expected = type === 'release' && payloadLen >= PAYLOAD_LEN.release ? PAYLOAD_LEN.release + payload[8]! : PAYLOAD_LEN[type];
  if (payloadLen !== expected) return drop('malformed');
  const body = decodePayload(type, payload, ctx.peers);
  if (body === null) return drop('malformed');

  if (!ctx.peers.includes(from) || from === ctx.self) return drop('unknown-sender');
  if (to !== ctx.self) return drop('wrong-recipient');
  const header: WireHeader = { from, to, epoch, counter: Number(counter), wallMs: Number(wall), term: Number(term) };
  return { ok: true, header, msg: { from, to, epoch, term: Number(term), body } };
}

function reasonAt(p: Buffer): { granted: boolean; reason: RejectReason } | null {
  const g = p[0];
  const reason = REJECT_REASONS[p[1]!];
  if ((g !== 0 && g !== 1) || reason === undefined) return null;
  // A grant carries no reason and a refusal always has one.
  if ((g === 1) !== (reason === 'none')) return null;
  return { granted: g === 1, reason };
}

function round(p: Buffer, at: number): number | null {
  const r = p.readDoubleBE(at);
  return Number.isFinite(r) && r >= 0 ? r : null;
}

function decodePayload(type: BodyType, p: Buffer, peers: readonly string[]): Body | null {
  switch (type) {
    case 'prevote':
      return p[0] === 0 || p[0] === 1 ? { type, bootstrap: p[0] === 1 } : null;
    case 'prevote-resp': {
      const gr = reasonAt(p);
      return gr === null ? null : { type, ...gr };
    }
    case 'vote': {
      const r = round(p, 0);
      return r === null ? null : { type, round: r };
    }
    case 'release': {
      const r = round(p, 0);
      if (r === null) return null;
      if (p[8] === 0) return { type, round: r, transferTo: null };
      const target = name(p.subarray(9));
      return target === null || !peers.includes(target) ? null : { type, round: r, transferTo: target };
    }
    case 'heartbeat': {
      const r = round(p, 0);
      return r === null || (p[8] !== 0 && p[8] !== 1) ? null : { type, round: r, bootstrap: p[8] === 1 };
    }
    case 'vote-resp': {
      const gr = reasonAt(p);
      const r = round(p, 10);
      if (gr === null || r === null) return null;
      return { type, ...gr, reqEpoch: p.subarray(2, 10).toString('hex'), round: r };
    }
    case 'heartbeat-resp': {
      const gr = reasonAt(p);
      const r = round(p, 10);
      if (gr === null || r === null || (p[18] !== 0 && p[18] !== 1 && p[18] !== 2)) return null;
      return { type, ...gr, reqEpoch: p.subarray(2, 10).toString('hex'), round: r, eligible: p[18] !== 0, apiHealthy: p[18] === 1 };
    }
  }
}

/** Encoder side: owns this process's epoch and counter. */
export class PeerCodec {
  private counter = 0;
  constructor(private readonly o: { self: string; peers: readonly string[]; key: Buffer; epoch: string }) {}
  encode(msg: PeerMessage, wallMs: number): Buffer {
    this.counter += 1;
    return encodeMessage({ ...msg, epoch: this.o.epoch }, { counter: this.counter, wallMs: Math.max(0, Math.floor(wallMs)) }, this.o.key);
  }
  decode(buf: Uint8Array): DecodeResult {
    return decodeMessage(buf, this.o);
  }
}

export interface ReplayGuardOptions {
  peers: readonly string[];
  /**
   * Also admit senders not in `peers`, up to this many, forgetting the longest silent first (the
   * service-IP voters hear from every member, workers included, with no list to check against).
   */
  openSenders?: number;
  /** W: accepted distance between the sender's wall stamp and ours. */
  windowMs?: number;
  /** Epochs remembered per sender (an authenticated sender restarting in a loop). */
  maxEpochs?: number;
}

/**
 * Per-sender replay filter. Deterministic: times are arguments. `admit` records the message as
 * seen only when it passes.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, Map<string, { counter: number; lastSeen: number }>>();
  private readonly windowMs: number;
  private readonly maxEpochs: number;
  private readonly fixed: ReadonlySet<string>;
  private readonly openSenders: number;
  constructor(o: ReplayGuardOptions) {
    this.windowMs = o.windowMs ?? 30_000;
    this.maxEpochs = o.maxEpochs ?? 8;
    this.fixed = new Set(o.peers);
    this.openSenders = o.openSenders ?? 0;
    for (const p of o.peers) this.seen.set(p, new Map());
  }
  admit(h: WireHeader, monoNow: number, wallNow: number): { ok: true } | { ok: false; reason: DropReason } {
    let epochs = this.seen.get(h.from);
    if (epochs === undefined) {
      if (this.seen.size - this.fixed.size >= this.openSenders) {
        if (!this.evictSilentSender()) return { ok: false, reason: 'unknown-sender' };
      }
      epochs = new Map();
      this.seen.set(h.from, epochs);
    }
    if (Math.abs(wallNow - h.wallMs) > this.windowMs) return { ok: false, reason: 'stale' };
    const e = epochs.get(h.epoch);
    if (e !== undefined && h.counter <= e.counter) return { ok: false, reason: 'replay' };
    for (const [k, v] of epochs) if (monoNow - v.lastSeen > 2 * this.windowMs) epochs.delete(k);
    epochs.set(h.epoch, { counter: h.counter, lastSeen: monoNow });
    if (epochs.size > this.maxEpochs) {
      let oldest: string | undefined;
      let t = Number.POSITIVE_INFINITY;
      for (const [k, v] of epochs) if (v.lastSeen < t && k !== h.epoch) [oldest, t] = [k, v.lastSeen];
      if (oldest !== undefined) epochs.delete(oldest);
    }
    return { ok: true };
  }

  /** Forgets the open sender heard from longest ago; false when there is none to forget. */
  private evictSilentSender(): boolean {
    let victim: string | undefined;
    let t = Number.POSITIVE_INFINITY;
    for (const [sender, epochs] of this.seen) {
      if (this.fixed.has(sender)) continue;
      let last = Number.NEGATIVE_INFINITY;
      for (const v of epochs.values()) last = Math.max(last, v.lastSeen);
      if (last < t) [victim, t] = [sender, last];
    }
    if (victim === undefined) return false;
    this.seen.delete(victim);
    return true;
  }
}
