/**
 * The two-holder prober (docs/design.md, "How tests see two holders"): from a client, ask "who has the
 * VIP?" every intervalMs (ARP request for IPv4, NS to the solicited-node group for IPv6) and record
 * which MACs answer each request and when. It also records every other claim on the VIP it hears
 * (gratuitous ARP, unsolicited NA, replies to others that a switch flooded).
 *
 * - Times are wall-clock ms, so they line up with pcap timestamps and with events logged by other
 *   processes in the lab. A frame's time is the kernel's receive stamp, not when this process read
 *   it: on a loaded machine the read can come 100 ms or more later, and a holder's last claim read
 *   that late lands inside its successor's first claims, which looks like two holders.
 * - An answer belongs to the latest request sent before it arrived (see twoholders.ts), by those
 *   stamps; a request's record is therefore emitted (onLine) only once the request after the next
 *   has gone out, so an answer read late still finds it.
 * - Requests carry the client's own address (a normal client, as a kernel would ask) unless none
 *   is known, then the probe forms (ARP SPA 0.0.0.0 / DAD NS from ::), whose answers go to
 *   everyone; answers are then told apart from announcements only by their kind.
 */
import { networkInterfaces } from 'node:os';
import {
  ARP_OP_REPLY,
  arpRequest,
  neighborSolicitation,
  parseFrame,
  type ParsedFrame,
} from '../src/net/frames.js';
import { canonicalIp, familyName, familyOf, type Family } from '../src/net/ip.js';
import { openPacketSocket, type PacketSocket } from '../src/net/packet.js';
import { wallNow } from './wallclock.js';
import { claimOf, findTwoHolderEvents, summarize, type Claim, type ProbeRecord, type ProbeSummary, type TwoHolderEvent } from './twoholders.js';

export interface ProberOptions {
  ifname: string;
  vips: readonly string[];
  intervalMs: number;
  /** Source addresses of the requests; default the interface's own (found only in the current netns), else 0.0.0.0 / ::. */
  srcIp4?: string;
  srcIp6?: string;
  /** Open the socket in this network namespace (name or path) instead of running under `ip netns exec`. */
  netns?: string;
  /** Wall-clock ms; injectable for tests. */
  now?: () => number;
}

export type ProberLine =
  | ({ type: 'request'; vip: string } & ProbeRecord)
  | ({ type: 'claim'; vip: string } & Claim);

export interface VipSummary extends ProbeSummary {
  type: 'summary';
  vip: string;
  intervalMs: number;
  sendErrors: number;
  events: TwoHolderEvent[];
}

interface VipState {
  vip: string;
  family: Family;
  src: string;
  records: ProbeRecord[];
  /** Every claim heard, answers to us included (for the interleaving analysis). */
  claims: Claim[];
  /** The newest requests (at most two) whose answers may still be read. */
  open: ProbeRecord[];
  sendErrors: number;
}

function ownAddress(ifname: string, family: Family): string | null {
  const list = networkInterfaces()[ifname] ?? [];
  const mine = list.filter((a) => a.family === familyName(family) && !a.internal);
  // A global IPv6 address over a link-local one: the answer then goes to an address the NS named.
  const best = mine.find((a) => !a.address.startsWith('fe80:')) ?? mine[0];
  return best ? best.address : null;
}

/**
 * Sends are stamped by this process's clock, receives by the kernel's: they agree to well under
 * this, and an answer cannot come back faster than a request interval (>= 1 ms).
 */
const CLOCK_SLACK_MS = 0.5;

/** The newest of `open` sent before `at`: a later request cannot have been answered yet. */
export function answeredRequest(open: readonly ProbeRecord[], at: number): ProbeRecord | undefined {
  for (let i = open.length - 1; i >= 0; i--) if (open[i]!.sentAt <= at + CLOCK_SLACK_MS) return open[i];
  return undefined;
}

export class Prober {
  private readonly vips: VipState[];
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private onLine: ((l: ProberLine) => void) | undefined;
  private readonly now: () => number;
  private closed = false;

  private constructor(
    private readonly opts: ProberOptions,
    private readonly sock: PacketSocket,
  ) {
    this.now = opts.now ?? wallNow;
    this.vips = opts.vips.map((v) => {
      const family = familyOf(v);
      const vip = canonicalIp(v);
      if (family === undefined || vip === undefined) throw new Error(`prober: ${JSON.stringify(v)} is not an IP address`);
      const given = family === 4 ? opts.srcIp4 : opts.srcIp6;
      const found = opts.netns === undefined ? ownAddress(opts.ifname, family) : null;
      const srcText = given ?? found ?? (family === 4 ? '0.0.0.0' : '::');
      const src = canonicalIp(srcText);
      if (src === undefined) throw new Error(`prober: source address ${JSON.stringify(srcText)} is not an IP address`);
      return { vip, family, src, records: [], claims: [], open: [], sendErrors: 0 };
    });
  }

  static async open(opts: ProberOptions): Promise<Prober> {
    if (opts.vips.length === 0) throw new Error('prober: at least one --vip');
    if (!(opts.intervalMs >= 1)) throw new Error(`prober: --interval must be >= 1 ms, got ${opts.intervalMs}`);
    const sock = await openPacketSocket(opts.ifname, { receiveTimestamps: true, ...(opts.netns === undefined ? {} : { netns: opts.netns }) });
    try {
      return new Prober(opts, sock);
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  get mac(): string {
    return this.sock.mac;
  }

  /** Source address used for each VIP's requests. */
  sources(): Record<string, string> {
    return Object.fromEntries(this.vips.map((v) => [v.vip, v.src]));
  }

  /** Starts probing; `onLine` gets each request record once the next request supersedes it, and each claim heard. */
  start(onLine?: (l: ProberLine) => void): void {
    if (this.closed || this.timer) return;
    this.onLine = onLine;
    this.unsubscribe = this.sock.onFrame((b, receivedAt) => this.onFrame(b, receivedAt));
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
  }

  /** Stops sending; the last open record of each VIP is emitted. Idempotent. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const v of this.vips) while (v.open.length > 0) this.emitOldest(v);
  }

  close(): void {
    if (this.closed) return;
    this.stop();
    this.closed = true;
    this.sock.close();
  }

  records(vip: string): ProbeRecord[] {
    return this.state(vip).records;
  }

  claims(vip: string): Claim[] {
    return this.state(vip).claims;
  }

  summary(spanGapMs = 4000): VipSummary[] {
    return this.vips.map((v) => ({
      type: 'summary',
      vip: v.vip,
      intervalMs: this.opts.intervalMs,
      sendErrors: v.sendErrors,
      ...summarize(v.records),
      events: findTwoHolderEvents({ vip: v.vip, records: v.records, claims: v.claims, spanGapMs }),
    }));
  }

  private state(vip: string): VipState {
    const n = canonicalIp(vip);
    const v = this.vips.find((x) => x.vip === n);
    if (!v) throw new Error(`prober: not probing ${vip}`);
    return v;
  }

  private emitOldest(v: VipState): void {
    const r = v.open.shift();
    if (r) this.onLine?.({ type: 'request', vip: v.vip, ...r });
  }

  private tick(): void {
    for (const v of this.vips) {
      const frame =
        v.family === 4
          ? arpRequest({ mac: this.sock.mac, senderIp: v.src, target: v.vip })
          : neighborSolicitation({ mac: this.sock.mac, srcIp: v.src, target: v.vip });
      const sentAt = this.now();
      try {
        this.sock.send(frame);
      } catch {
        v.sendErrors++;
        continue;
      }
      const rec: ProbeRecord = { seq: v.records.length, family: v.family, sentAt, answers: [] };
      v.records.push(rec);
      v.open.push(rec);
      if (v.open.length > 2) this.emitOldest(v);
    }
  }

  private onFrame(b: Buffer, receivedAt: number | undefined): void {
    const f = parseFrame(b);
    if (!f || f.ethSrc === this.sock.mac) return;
    const at = receivedAt ?? this.now();
    for (const v of this.vips) {
      const claim = claimOf(f, v.vip);
      if (!claim) continue;
      const c: Claim = { at, ...claim };
      v.claims.push(c);
      const to = this.isAnswerToUs(f, v) ? answeredRequest(v.open, at) : undefined;
      if (to) to.answers.push({ mac: claim.mac, at });
      else this.onLine?.({ type: 'claim', vip: v.vip, ...c });
    }
  }

  private isAnswerToUs(f: ParsedFrame, v: VipState): boolean {
    const me = this.sock.mac;
    if (f.kind === 'arp') return f.op === ARP_OP_REPLY && f.tpa !== v.vip && (f.tha === me || f.ethDst === me);
    if (f.kind !== 'na') return false;
    // Asked from ::, the answer goes to ff02::1 with S=0 and looks like an announcement.
    if (v.src === '::') return f.dst === 'ff02::1';
    return f.solicited && (f.dst === v.src || f.ethDst === me);
  }
}
