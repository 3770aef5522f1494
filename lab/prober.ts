/**
 * The two-holder prober (docs/design.md, "How tests see two holders"): from a client, ask "who has the
 * VIP?" every intervalMs (ARP request for IPv4, NS to the solicited-node group for IPv6) and record
 * which MACs answer each request and when. It also records every other claim on the VIP it hears
 * (gratuitous ARP, unsolicited NA, replies to others that a switch flooded).
 *
 * - Times are wall-clock ms (performance.timeOrigin + performance.now()), so they line up with
 *   pcap timestamps and with events logged by other processes in the lab.
 * - An answer belongs to the latest request sent before it arrived (see twoholders.ts).
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
  current: ProbeRecord | null;
  sendErrors: number;
}

const wallNow = (): number => performance.timeOrigin + performance.now();

function ownAddress(ifname: string, family: Family): string | null {
  const list = networkInterfaces()[ifname] ?? [];
  const mine = list.filter((a) => a.family === familyName(family) && !a.internal);
  // A global IPv6 address over a link-local one: the answer then goes to an address the NS named.
  const best = mine.find((a) => !a.address.startsWith('fe80:')) ?? mine[0];
  return best ? best.address : null;
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
      return { vip, family, src, records: [], claims: [], current: null, sendErrors: 0 };
    });
  }

  static async open(opts: ProberOptions): Promise<Prober> {
    if (opts.vips.length === 0) throw new Error('prober: at least one --vip');
    if (!(opts.intervalMs >= 1)) throw new Error(`prober: --interval must be >= 1 ms, got ${opts.intervalMs}`);
    const sock = await openPacketSocket(opts.ifname, opts.netns === undefined ? {} : { netns: opts.netns });
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
    this.unsubscribe = this.sock.onFrame((b) => this.onFrame(b));
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
  }

  /** Stops sending; the last open record of each VIP is emitted. Idempotent. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const v of this.vips) this.closeCurrent(v);
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

  private closeCurrent(v: VipState): void {
    if (v.current) this.onLine?.({ type: 'request', vip: v.vip, ...v.current });
    v.current = null;
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
      this.closeCurrent(v);
      const rec: ProbeRecord = { seq: v.records.length, family: v.family, sentAt, answers: [] };
      v.records.push(rec);
      v.current = rec;
    }
  }

  private onFrame(b: Buffer): void {
    const f = parseFrame(b);
    if (!f || f.ethSrc === this.sock.mac) return;
    const at = this.now();
    for (const v of this.vips) {
      const claim = claimOf(f, v.vip);
      if (!claim) continue;
      const c: Claim = { at, ...claim };
      v.claims.push(c);
      if (this.isAnswerToUs(f, v) && v.current) v.current.answers.push({ mac: claim.mac, at });
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
