/**
 * The per-VIP wire behaviour: gratuitous ARP / unsolicited NA on takeover and on a refresh
 * interval, answering ARP requests / neighbour solicitations for the VIP (responder `agent`),
 * passive conflict detection, and the cold-start probe.
 *
 * Invariants:
 * - Every frame that claims the VIP (announcement or answer) is sent only while holding AND
 *   only if `mayAnswer()` returns true right before that frame is sent. After stopHolding()
 *   returns, nothing more claiming the VIP leaves (everything runs on the JS thread; the
 *   packet socket callback checks the same state).
 * - After kill -9 or SIGSTOP no JS runs, so no answer or announcement leaves: with responder
 *   `agent` the node is silent at once (the kernel is told not to answer; docs/design.md, rule 1).
 * - Probe frames (ARP SPA 0.0.0.0 / NS from ::) never claim the VIP; they may be sent at any time.
 * - Only requests a Linux host would accept are answered: addressed to broadcast, a multicast
 *   group, or our MAC; frames seen only because a switch flooded them (another host's unicast)
 *   are watched for conflicts but never answered.
 * - A conflict answer is one announcement (not a burst), at most once per conflictAnnounceMinMs,
 *   so two agents that both believe they hold cannot start a storm.
 * - The kernel filter asks only for claims on the VIP, plus questions about it while holding with
 *   responder `agent` (widened before the first announcement): a standby does not wake for the
 *   VIP's clients' ARP requests, and nobody wakes for other addresses (net/bpf.ts).
 */
import { EventEmitter } from 'node:events';
import { monotonicClock, type Clock } from '../util/clock.js';
import type { Logger } from '../observe/log.js';
import { metrics } from '../observe/metrics.js';
import {
  ARP_OP_REPLY,
  ARP_OP_REQUEST,
  arpProbe,
  arpReply,
  garpReply,
  garpRequest,
  neighborSolicitation,
  parseFrame,
  solicitedNa,
  solicitedNodeMac,
  unsolicitedNa,
  type ParsedFrame,
} from './frames.js';
import { canonicalIp, familyOf, type Family } from './ip.js';
import { openPacketSocket, type PacketSocket } from './packet.js';

/** Offsets (ms after takeover) of the announcements of a burst: at once, then four more within the first second. */
export const DEFAULT_BURST: readonly number[] = [0, 100, 300, 600, 1000];
/** kube-vip's vip_arpRate default. */
export const DEFAULT_REFRESH_MS = 3000;
export const DEFAULT_CONFLICT_ANNOUNCE_MIN_MS = 1000;

export type SentKind = 'garp-request' | 'garp-reply' | 'unsolicited-na' | 'arp-reply' | 'solicited-na' | 'arp-probe' | 'dad-ns';

/** How another MAC claimed the VIP. */
export type ClaimHow = 'garp' | 'arp-reply' | 'arp-request-from-vip' | 'na' | 'ns-from-vip';

export interface AnnouncerOptions {
  ifname: string;
  vip: string;
  /** Announcement refresh interval after the burst (vip_arpRate), ms. */
  refreshMs: number;
  /** Offsets in ms after takeover; must start at 0 and increase. Default DEFAULT_BURST. */
  burst?: readonly number[];
  /** Answer ARP requests / NS for the VIP ourselves (responder `agent`). */
  answer: boolean;
  log: Logger;
  clock?: Clock;
  /** Network namespace name or path for the socket (lab and tests); default the current one. */
  netns?: string;
  conflictAnnounceMinMs?: number;
}

export class AnnouncerConfigError extends Error {
  override name = 'AnnouncerConfigError';
}

/** Validates and returns the burst offsets (sorted, starting at 0). */
export function checkBurst(burst: readonly number[]): number[] {
  if (burst.length === 0) throw new AnnouncerConfigError('announce burst must have at least one offset (0 = at once)');
  for (let i = 0; i < burst.length; i++) {
    const v = burst[i]!;
    if (!Number.isFinite(v) || v < 0) throw new AnnouncerConfigError(`announce burst offset ${v} must be a finite number of ms >= 0`);
    if (i === 0 && v !== 0) throw new AnnouncerConfigError(`announce burst must start at 0 (the first announcement leaves at once), got ${v}`);
    if (i > 0 && v <= burst[i - 1]!) throw new AnnouncerConfigError(`announce burst offsets must increase, got ${burst[i - 1]} then ${v}`);
  }
  return [...burst];
}

/**
 * Delay from announcement number `n` (0-based, n = 0 is the one sent at takeover) to the next:
 * the gaps of the burst, then refreshMs forever.
 */
export function nextAnnounceDelay(n: number, burst: readonly number[], refreshMs: number): number {
  if (n + 1 < burst.length) return burst[n + 1]! - burst[n]!;
  return refreshMs;
}

/** The first `count` announcement offsets after takeover (ms); for docs and tests. */
export function announceOffsets(count: number, burst: readonly number[], refreshMs: number): number[] {
  const out: number[] = [];
  let t = 0;
  for (let n = 0; n < count; n++) {
    out.push(t);
    t += nextAnnounceDelay(n, burst, refreshMs);
  }
  return out;
}

/** A claim on `vip` by someone other than `ownMac` in this frame, if any. Pure. */
export function claimIn(f: ParsedFrame, vip: string, ownMac: string): { mac: string; how: ClaimHow } | null {
  if (f.kind === 'arp') {
    if (f.spa !== vip || f.sha === ownMac || f.ethSrc === ownMac) return null;
    if (f.tpa === vip) return { mac: f.sha, how: 'garp' };
    return { mac: f.sha, how: f.op === ARP_OP_REPLY ? 'arp-reply' : 'arp-request-from-vip' };
  }
  if (f.kind === 'na') {
    const mac = f.targetLinkAddr ?? f.ethSrc;
    if (f.target !== vip || mac === ownMac || f.ethSrc === ownMac) return null;
    return { mac, how: 'na' };
  }
  const mac = f.sourceLinkAddr ?? f.ethSrc;
  if (f.src !== vip || mac === ownMac || f.ethSrc === ownMac) return null;
  return { mac, how: 'ns-from-vip' };
}

/** Would Linux accept this frame as addressed to `ownMac` (broadcast, multicast, or ours)? */
function addressedToUs(ethDst: string, ownMac: string): boolean {
  if (ethDst === ownMac) return true;
  const first = parseInt(ethDst.slice(0, 2), 16);
  return (first & 1) === 1;
}

type HoldState = { kind: 'idle' } | { kind: 'holding'; mayAnswer: () => boolean; answerUntil: (() => number) | undefined; n: number; timer: NodeJS.Timeout | undefined };

export interface AnnouncerEvents {
  conflict: [mac: string, how: ClaimHow];
  sent: [kind: SentKind];
}

export class Announcer extends EventEmitter<AnnouncerEvents> {
  readonly vip: string;
  readonly family: Family;
  readonly mac: string;
  private readonly burst: number[];
  private readonly clock: Clock;
  private readonly log: Logger;
  private state: HoldState = { kind: 'idle' };
  private lastSeen: { mac: string; at: number } | null = null;
  private lastConflictAnnounce = -Infinity;
  private readonly sendErrorsLogged = new Map<string, number>();
  private readonly unsubscribe: () => void;
  private readonly group: string | null;
  private readonly probes = new Set<(mac: string | null) => void>();
  private closed = false;

  private constructor(
    private readonly opts: AnnouncerOptions,
    private readonly sock: PacketSocket,
  ) {
    super();
    const fam = familyOf(opts.vip);
    const vip = canonicalIp(opts.vip);
    if (fam === undefined || vip === undefined) throw new AnnouncerConfigError(`vip ${JSON.stringify(opts.vip)} is not an IP address`);
    this.family = fam;
    this.vip = vip;
    this.mac = sock.mac;
    this.burst = checkBurst(opts.burst ?? DEFAULT_BURST);
    this.clock = opts.clock ?? monotonicClock;
    this.log = opts.log;
    this.group = fam === 6 ? solicitedNodeMac(this.vip) : null;
    // Real NICs filter multicast in hardware: without this, NS for the VIP never reach us.
    if (this.group) sock.addMulticast(this.group);
    this.unsubscribe = sock.onFrame((frame) => this.onFrame(frame));
    this.narrow();
  }

  /**
   * The kernel filter (packet.ts, bpf.ts): claims on the VIP always (conflicts, the probe), and
   * questions about it only while we hold and answer. So a standby never wakes for the ARP
   * requests of the VIP's clients, and nobody wakes for other addresses' traffic.
   */
  private narrow(): void {
    const answering = this.opts.answer && this.state.kind === 'holding';
    this.sock.setInterest({ claims: [this.vip], questions: answering ? [this.vip] : [] });
  }

  static async open(opts: AnnouncerOptions): Promise<Announcer> {
    if (familyOf(opts.vip) === undefined) throw new AnnouncerConfigError(`vip ${JSON.stringify(opts.vip)} is not an IP address`);
    if (!Number.isFinite(opts.refreshMs) || opts.refreshMs < 10) {
      throw new AnnouncerConfigError(`announce refresh interval (vip_arpRate) must be at least 10 ms, got ${opts.refreshMs}`);
    }
    checkBurst(opts.burst ?? DEFAULT_BURST);
    const sock = await openPacketSocket(opts.ifname, opts.netns === undefined ? {} : { netns: opts.netns });
    try {
      return new Announcer(opts, sock);
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  get holding(): boolean {
    return this.state.kind === 'holding';
  }

  /**
   * Starts (or restarts, as a fresh takeover) announcing and, if configured, answering. The first
   * frame leaves before this returns. answerUntil (clock ms) is the grant's end: each frame then
   * carries it to the addon, which refuses to send at or past it, so a process descheduled between
   * mayAnswer() and send(2) cannot claim after its grant.
   */
  startHolding(mayAnswer: () => boolean, answerUntil?: () => number): void {
    if (this.closed) return;
    this.clearTimer();
    this.state = { kind: 'holding', mayAnswer, answerUntil, n: 0, timer: undefined };
    // Questions reach us before the first announcement sends clients our way.
    this.narrow();
    this.tick();
  }

  /** After this returns nothing more claiming the VIP is sent (no answers, no announcements). */
  stopHolding(): void {
    const was = this.state.kind;
    this.clearTimer();
    this.state = { kind: 'idle' };
    if (was === 'holding' && !this.closed) {
      try {
        this.narrow();
      } catch (e) {
        // A wider filter than needed stays attached: harmless, nothing is answered while idle.
        this.log.warn({ vip: this.vip, iface: this.opts.ifname, err: (e as Error).message }, 'could not narrow the packet filter');
      }
    }
  }

  /** A fresh burst (link came back, address re-added); ignored unless holding. */
  announceNow(reason: string): void {
    if (this.state.kind !== 'holding') return;
    this.log.info({ vip: this.vip, iface: this.opts.ifname, reason }, 'announcing again');
    this.clearTimer();
    this.state.n = 0;
    this.tick();
  }

  /**
   * Cold-start probe: a few ARP probes (SPA 0.0.0.0) or DAD NS (source ::) spread over durationMs;
   * resolves with the first other MAC that claims the VIP, or null. Sends nothing claiming the VIP.
   */
  probe(durationMs: number, signal?: AbortSignal): Promise<string | null> {
    if (this.closed || durationMs <= 0 || signal?.aborted) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timers: NodeJS.Timeout[] = [];
      const finish = (mac: string | null): void => {
        for (const t of timers) clearTimeout(t);
        this.probes.delete(onClaim);
        signal?.removeEventListener('abort', onAbort);
        resolve(mac);
      };
      const onClaim = (mac: string | null): void => finish(mac);
      const onAbort = (): void => finish(null);
      this.probes.add(onClaim);
      signal?.addEventListener('abort', onAbort, { once: true });
      const count = durationMs >= 150 ? 3 : 1;
      for (let i = 0; i < count; i++) {
        timers.push(setTimeout(() => this.sendProbe(), (durationMs * i) / count));
      }
      timers.push(setTimeout(() => finish(null), durationMs));
    });
  }

  /** The MAC most recently seen claiming the VIP other than ours, or null. */
  lastHolderSeen(): string | null {
    return this.lastSeen?.mac ?? null;
  }

  /** Stops holding, leaves the multicast group and releases the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.stopHolding();
    this.closed = true;
    for (const p of [...this.probes]) p(null);
    this.unsubscribe();
    try {
      if (this.group) this.sock.removeMulticast(this.group);
    } finally {
      this.sock.close();
    }
  }

  // --- internals ---------------------------------------------------------------------------

  private clearTimer(): void {
    if (this.state.kind === 'holding' && this.state.timer) clearTimeout(this.state.timer);
  }

  private tick(): void {
    const st = this.state;
    if (st.kind !== 'holding') return;
    this.announceOnce();
    const delay = nextAnnounceDelay(st.n, this.burst, this.opts.refreshMs);
    st.n++;
    st.timer = setTimeout(() => this.tick(), delay);
  }

  private announceOnce(): void {
    if (this.family === 4) {
      this.claimFrame('garp-request', garpRequest(this.mac, this.vip));
      this.claimFrame('garp-reply', garpReply(this.mac, this.vip));
    } else {
      this.claimFrame('unsolicited-na', unsolicitedNa(this.mac, this.vip));
    }
  }

  /** Sends a frame that claims the VIP, if and only if we hold and mayAnswer() says so right now. */
  private claimFrame(kind: SentKind, frame: Buffer): boolean {
    const st = this.state;
    if (this.closed || st.kind !== 'holding' || !st.mayAnswer()) return false;
    let deadlineNs: bigint | undefined;
    if (st.answerUntil) {
      // hrtime first: the budget read after it is the smaller one, so the deadline errs early.
      const hr = process.hrtime.bigint();
      const left = st.answerUntil() - this.clock.now();
      if (!(left > 0)) return false;
      if (Number.isFinite(left)) deadlineNs = hr + BigInt(Math.floor(left * 1e6));
    }
    if (!this.transmit(kind, frame, deadlineNs)) return false;
    if (kind === 'arp-reply' || kind === 'solicited-na') metrics.answers.inc({ vip: this.vip });
    else metrics.announcements.inc({ vip: this.vip, kind });
    return true;
  }

  private transmit(kind: SentKind, frame: Buffer, deadlineNs?: bigint): boolean {
    try {
      this.sock.send(frame, deadlineNs);
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'EIO';
      const now = this.clock.now();
      // A down link fails every send; one line per error kind per 10 s is enough.
      if (now - (this.sendErrorsLogged.get(code) ?? -Infinity) >= 10_000) {
        this.sendErrorsLogged.set(code, now);
        this.log.warn({ vip: this.vip, iface: this.opts.ifname, err: (e as Error).message, kind }, 'could not send frame');
      }
      return false;
    }
    this.emit('sent', kind);
    return true;
  }

  private sendProbe(): void {
    if (this.closed) return;
    if (this.family === 4) this.transmit('arp-probe', arpProbe(this.mac, this.vip));
    else this.transmit('dad-ns', neighborSolicitation({ mac: this.mac, srcIp: '::', target: this.vip }));
  }

  private onFrame(frame: Buffer): void {
    if (this.closed) return;
    const f = parseFrame(frame);
    if (!f || f.ethSrc === this.mac) return;
    const claim = claimIn(f, this.vip, this.mac);
    if (claim) this.onClaim(claim.mac, claim.how);
    if (this.opts.answer) this.maybeAnswer(f);
  }

  private onClaim(mac: string, how: ClaimHow): void {
    this.lastSeen = { mac, at: this.clock.now() };
    for (const p of [...this.probes]) p(mac);
    if (this.state.kind !== 'holding') return;
    metrics.conflicts.inc({ vip: this.vip });
    const now = this.clock.now();
    const answer = now - this.lastConflictAnnounce >= (this.opts.conflictAnnounceMinMs ?? DEFAULT_CONFLICT_ANNOUNCE_MIN_MS);
    if (answer) {
      this.lastConflictAnnounce = now;
      this.log.warn({ vip: this.vip, iface: this.opts.ifname, mac, how, reason: 'conflict' }, 'another MAC claims the VIP while we hold it; announcing again');
      this.announceOnce();
    }
    this.emit('conflict', mac, how);
  }

  private maybeAnswer(f: ParsedFrame): void {
    if (this.state.kind !== 'holding' || !addressedToUs(f.ethDst, this.mac)) return;
    if (f.kind === 'arp') {
      // A gratuitous ARP (SPA = TPA = VIP) is a claim, not a question.
      if (f.op !== ARP_OP_REQUEST || f.tpa !== this.vip || f.spa === this.vip) return;
      this.claimFrame('arp-reply', arpReply({ mac: this.mac, ip: this.vip, toMac: f.sha, toIp: f.spa }));
    } else if (f.kind === 'ns') {
      if (f.target !== this.vip || f.src === this.vip) return;
      this.claimFrame('solicited-na', solicitedNa({ mac: this.mac, target: this.vip, toMac: f.sourceLinkAddr ?? f.ethSrc, toIp: f.src }));
    }
  }
}
