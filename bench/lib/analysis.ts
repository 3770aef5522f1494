/**
 * What one failover run looked like from the client: the outage, the takeover, and every
 * two-holder event. Pure: prober records and claims in, numbers out.
 *
 * Definitions (times are wall-clock ms, shared by both probers and the bridge capture):
 * - outage: the longest gap between consecutive successful TCP connections (attempt start
 *   times) inside the run's window, an unfinished gap at the end included. The prober starts an
 *   attempt every 10 ms, so 10 ms means "no outage"; a failed or absent attempt stretches it.
 * - takeover: from the event to the first successful connection served by another node.
 * - two-holder event (docs/design.md, "How tests see two holders"): an ARP request answered by two MACs,
 *   claims (announcements/replies) from two MACs interleaved, or TCP answers from two nodes
 *   interleaved (A, B, A: a node answers again after another one took over). One holder
 *   answering both ARP requests and connections for a while and then another one is a clean
 *   handover, never an event.
 * - episode: events closer than `episodeGapMs` to each other, merged. The prober asks every
 *   10 ms, so two holders that last a second produce ~100 double answers: one episode.
 */
import { findTwoHolderEvents, type Claim, type ProbeRecord as ArpRecord, type TwoHolderEvent } from '../../lab/twoholders.js';
import { outageWindows, type ProbeRecord as TcpRecord } from '../../lab/tcpprobe.js';

export type { ArpRecord, TcpRecord };

export interface TcpInterleave {
  kind: 'tcp-interleave';
  at: number;
  /** The node that answered again after `displacedBy` had answered. */
  node: string;
  displacedBy: string;
}

export type BenchEvent = TwoHolderEvent | TcpInterleave;

export interface Episode {
  from: number;
  to: number;
  /** Events by kind inside the episode. */
  kinds: Partial<Record<BenchEvent['kind'], number>>;
}

/**
 * TCP answers from two nodes interleaved: collapse consecutive successes by node into runs; a
 * run by a node that already had an earlier run is one event (A, B, A → 1; A, B, C → 0).
 */
export function tcpInterleaves(records: readonly TcpRecord[]): TcpInterleave[] {
  const rs = [...records].filter((r) => r.ok && r.node !== null).sort((a, b) => a.t - b.t);
  const seen = new Set<string>();
  const out: TcpInterleave[] = [];
  let current: string | null = null;
  for (const r of rs) {
    const node = r.node!;
    if (node === current) continue;
    if (current !== null && seen.has(node)) out.push({ kind: 'tcp-interleave', at: r.t, node, displacedBy: current });
    seen.add(node);
    current = node;
  }
  return out;
}

/** Events merged into episodes: an event within `gapMs` of the previous one extends its episode. */
export function episodes(events: readonly BenchEvent[], gapMs = 1000): Episode[] {
  const sorted = [...events].sort((a, b) => a.at - b.at);
  const out: Episode[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && e.at - last.to <= gapMs) {
      last.to = e.at;
      last.kinds[e.kind] = (last.kinds[e.kind] ?? 0) + 1;
    } else {
      out.push({ from: e.at, to: e.at, kinds: { [e.kind]: 1 } });
    }
  }
  return out;
}

export interface RunInput {
  vip: string;
  /** Wall-clock ms of the disruptive action. */
  eventAt: number;
  /** Node that held the VIP before the event. */
  oldHolder: string;
  /** Window of the run; records outside it are ignored. */
  from: number;
  to: number;
  tcp: readonly TcpRecord[];
  arp: readonly ArpRecord[];
  /** Claims heard on the bridge (capture) and by the prober. */
  claims: readonly Claim[];
  /** Default 4000 ms (above kube-vip's 3 s refresh; vipd and keepalived refresh less often or not at all once settled). */
  spanGapMs?: number;
  episodeGapMs?: number;
}

export interface RunResult {
  /** Longest gap between successful connections in the window; null when nothing succeeded. */
  outageMs: number | null;
  /** Event → first success from another node; null when no other node answered in the window. */
  takeoverMs: number | null;
  newHolder: string | null;
  /** Connection attempts in the window, and how many failed. */
  attempts: number;
  failed: number;
  events: BenchEvent[];
  episodes: Episode[];
  /** Per MAC that answered the ARP prober in the window: first and last answer relative to the event (ms), and how many. */
  arpBy: Record<string, { firstMs: number; lastMs: number; answers: number }>;
}

export function analyzeRun(input: RunInput): RunResult {
  const inWin = <T>(t: number, x: T): T | undefined => (t >= input.from && t <= input.to ? x : undefined);
  const tcp = input.tcp.filter((r) => inWin(r.t, r) !== undefined).sort((a, b) => a.t - b.t);
  const arp = input.arp.filter((r) => inWin(r.sentAt, r) !== undefined);
  const claims = input.claims.filter((c) => inWin(c.at, c) !== undefined);
  const { longestGapMs } = outageWindows(tcp);
  const firstOther = tcp.find((r) => r.ok && r.t >= input.eventAt && r.node !== null && r.node !== input.oldHolder);
  const twoHolder = findTwoHolderEvents({ vip: input.vip, records: arp, claims, spanGapMs: input.spanGapMs ?? 4000 });
  const events: BenchEvent[] = [...twoHolder, ...tcpInterleaves(tcp)].sort((a, b) => a.at - b.at);
  const arpBy: RunResult['arpBy'] = {};
  for (const r of arp) {
    for (const a of r.answers) {
      const rel = a.at - input.eventAt;
      const m = arpBy[a.mac];
      if (m) {
        m.firstMs = Math.min(m.firstMs, rel);
        m.lastMs = Math.max(m.lastMs, rel);
        m.answers++;
      } else arpBy[a.mac] = { firstMs: rel, lastMs: rel, answers: 1 };
    }
  }
  return {
    outageMs: longestGapMs,
    takeoverMs: firstOther ? firstOther.t - input.eventAt : null,
    newHolder: firstOther?.node ?? null,
    attempts: tcp.length,
    failed: tcp.filter((r) => !r.ok).length,
    events,
    episodes: episodes(events, input.episodeGapMs ?? 1000),
    arpBy,
  };
}

/**
 * Observation after the event may end once another node has served connections for `settleMs`
 * without a failure since its first success (or the caller's timeout passes).
 */
export function takeoverSettled(tcp: readonly TcpRecord[], eventAt: number, oldHolder: string, now: number, settleMs: number): boolean {
  const after = tcp.filter((r) => r.t >= eventAt).sort((a, b) => a.t - b.t);
  const first = after.find((r) => r.ok && r.node !== null && r.node !== oldHolder);
  if (!first) return false;
  const since = after.filter((r) => r.t >= first.t);
  const lastFail = since.filter((r) => !r.ok).at(-1);
  const stableFrom = lastFail ? lastFail.t : first.t;
  return now - stableFrom >= settleMs;
}

/**
 * The one node that holds the VIP steadily: over the last `windowMs` before `now`, every ARP
 * request (but the newest, which may still be waiting) was answered by the same single MAC, every
 * connection succeeded and was served by the node owning that MAC. Null otherwise.
 */
export function stableHolder(arp: readonly ArpRecord[], tcp: readonly TcpRecord[], macToNode: ReadonlyMap<string, string>, now: number, windowMs: number): string | null {
  const from = now - windowMs;
  const reqs = arp.filter((r) => r.sentAt >= from && r.sentAt <= now - 50);
  const conns = tcp.filter((r) => r.t >= from && r.t <= now - 200);
  // Both probers ask every 10 ms: demand most of the window is covered, or we judge on nothing.
  if (reqs.length < windowMs / 20 || conns.length < windowMs / 40) return null;
  const macs = new Set<string>();
  for (const r of reqs) {
    if (r.answers.length === 0) return null;
    for (const a of r.answers) macs.add(a.mac);
  }
  if (macs.size !== 1) return null;
  const node = macToNode.get([...macs][0]!);
  if (node === undefined) return null;
  return conns.every((r) => r.ok && r.node === node) ? node : null;
}
