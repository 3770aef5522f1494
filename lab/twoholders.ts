/**
 * Two-holder analysis (docs/design.md, "How tests see two holders"). Pure: records and parsed frames in,
 * events and numbers out; no I/O.
 *
 * Definitions (times are wall-clock ms, so prober records and pcap timestamps compare):
 * - double answer: one prober request window (from a request until the next request) answered by
 *   two or more MACs. Answers are attributed to the latest request sent before they arrived, so a
 *   thawed agent answering old queued requests also counts: clients would have believed it.
 * - claim: a frame in which a MAC says "the VIP is here": gratuitous ARP (SPA = TPA = VIP), any
 *   ARP with SPA = VIP, any NA with target = VIP.
 * - holding span: a run of claims from one MAC with no gap longer than `spanGapMs` (choose it a
 *   little above the announcement refresh interval, which a live holder never exceeds).
 * - interleaved claims: a claim by MAC Y inside a holding span of MAC X (X claimed before and
 *   after it, at most spanGapMs apart). A clean handover X → Y never does that: X's last claim
 *   comes before Y's first. A frozen holder that thaws and claims once inside Y's span does.
 * - With prober records, a span also ends where a request was answered by others and not by X:
 *   X was not answering then, so it was not holding. Without that, a clean X → Y → X within
 *   spanGapMs (a flap: X released, Y held, Y released, X won again, each in turn) looked like an
 *   intrusion; the kubeadm lab's logs showed exactly that sequence behind such "events". A request
 *   nobody answered does not end a span (a starved holder stays a holder), so a thawed claim in
 *   the silence of a live holder is still caught.
 */
import type { ParsedFrame } from '../src/net/frames.js';
import type { Family } from '../src/net/ip.js';

export interface ProbeAnswer {
  mac: string;
  /** Wall-clock ms when the answer was received. */
  at: number;
}

export interface ProbeRecord {
  seq: number;
  family: Family;
  /** Wall-clock ms when the request was sent. */
  sentAt: number;
  answers: ProbeAnswer[];
}

export type ClaimKind = 'garp' | 'arp-reply' | 'arp-from-vip' | 'unsolicited-na' | 'solicited-na';

export interface Claim {
  at: number;
  mac: string;
  kind: ClaimKind;
}

export interface TimedFrame {
  /** Wall-clock ms (pcap time / 1000). */
  time: number;
  frame: ParsedFrame | null;
}

export type TwoHolderEvent =
  | { kind: 'double-answer'; at: number; seq: number; family: Family; macs: string[] }
  | { kind: 'interleaved-claims'; at: number; holder: string; intruder: string; spanFrom: number; spanTo: number };

/** The claim on `vip` that a frame makes, if any. */
export function claimOf(f: ParsedFrame, vip: string): Omit<Claim, 'at'> | null {
  if (f.kind === 'arp') {
    if (f.spa !== vip) return null;
    if (f.tpa === vip) return { mac: f.sha, kind: 'garp' };
    return { mac: f.sha, kind: f.op === 2 ? 'arp-reply' : 'arp-from-vip' };
  }
  if (f.kind === 'na' && f.target === vip) return { mac: f.targetLinkAddr ?? f.ethSrc, kind: f.solicited ? 'solicited-na' : 'unsolicited-na' };
  return null;
}

/** Every claim on `vip` in captured frames, in time order. */
export function claimsIn(frames: readonly TimedFrame[], vip: string): Claim[] {
  const out: Claim[] = [];
  for (const t of frames) {
    const c = t.frame ? claimOf(t.frame, vip) : null;
    if (c) out.push({ at: t.time, ...c });
  }
  return out.sort((a, b) => a.at - b.at);
}

export function doubleAnswers(records: readonly ProbeRecord[]): TwoHolderEvent[] {
  const out: TwoHolderEvent[] = [];
  for (const r of records) {
    const macs = [...new Set(r.answers.map((a) => a.mac))];
    if (macs.length > 1) {
      const at = Math.min(...r.answers.map((a) => a.at));
      out.push({ kind: 'double-answer', at, seq: r.seq, family: r.family, macs: macs.sort() });
    }
  }
  return out;
}

/**
 * Whether some request sent strictly between from and to was answered, but not by mac.
 * `requests` is sorted by sentAt.
 */
function answeredByOthersBetween(requests: readonly ProbeRecord[], mac: string, from: number, to: number): boolean {
  let lo = 0;
  let hi = requests.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (requests[mid]!.sentAt <= from) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < requests.length && requests[i]!.sentAt < to; i++) {
    const r = requests[i]!;
    if (r.answers.length > 0 && !r.answers.some((a) => a.mac === mac)) return true;
  }
  return false;
}

/** Claims by one MAC inside another MAC's holding span (see module comment). One event per pair and intrusion run. */
export function interleavedClaims(claims: readonly Claim[], spanGapMs: number, records: readonly ProbeRecord[] = []): TwoHolderEvent[] {
  const sorted = [...claims].sort((a, b) => a.at - b.at);
  const requests = [...records].sort((a, b) => a.sentAt - b.sentAt);
  // Index of the previous claim of each MAC in `sorted`: the claims between it and the next one
  // of the same MAC are exactly what lies inside that MAC's span, so each span costs its length.
  const prevIdx = new Map<string, number>();
  const raw: Array<Extract<TwoHolderEvent, { kind: 'interleaved-claims' }>> = [];
  sorted.forEach((c, idx) => {
    const p = prevIdx.get(c.mac);
    prevIdx.set(c.mac, idx);
    if (p === undefined) return;
    const from = sorted[p]!.at;
    if (c.at - from > spanGapMs) return;
    if (requests.length > 0 && answeredByOthersBetween(requests, c.mac, from, c.at)) return;
    const seen = new Set<string>();
    for (let k = p + 1; k < idx; k++) {
      const x = sorted[k]!;
      if (x.mac === c.mac || seen.has(x.mac) || x.at <= from || x.at >= c.at) continue;
      seen.add(x.mac);
      raw.push({ kind: 'interleaved-claims', at: x.at, holder: c.mac, intruder: x.mac, spanFrom: from, spanTo: c.at });
    }
  });
  // Both MACs' spans usually see the same overlap: one event per unordered pair until it stops for spanGapMs.
  raw.sort((a, b) => a.at - b.at);
  const lastByPair = new Map<string, number>();
  const out: TwoHolderEvent[] = [];
  for (const e of raw) {
    const pair = [e.holder, e.intruder].sort().join('|');
    const last = lastByPair.get(pair);
    lastByPair.set(pair, e.at);
    if (last !== undefined && e.at - last <= spanGapMs) continue;
    out.push(e);
  }
  return out;
}

export interface AnalysisInput {
  vip: string;
  records?: readonly ProbeRecord[];
  frames?: readonly TimedFrame[];
  /** Claims observed directly (e.g. by the prober) in addition to those in `frames`. */
  claims?: readonly Claim[];
  /** Default 4000: above kube-vip's 3000 ms refresh. */
  spanGapMs?: number;
}

/** Every two-holder event in prober records and captured frames, in time order. */
export function findTwoHolderEvents(input: AnalysisInput): TwoHolderEvent[] {
  const claims = [...(input.claims ?? []), ...claimsIn(input.frames ?? [], input.vip)];
  const events = [...doubleAnswers(input.records ?? []), ...interleavedClaims(claims, input.spanGapMs ?? 4000, input.records ?? [])];
  return events.sort((a, b) => a.at - b.at);
}

/** Time of the last answer from `mac` (wall ms), or null if it never answered. */
export function lastAnswerFrom(records: readonly ProbeRecord[], mac: string): number | null {
  let last: number | null = null;
  for (const r of records) for (const a of r.answers) if (a.mac === mac && (last === null || a.at > last)) last = a.at;
  return last;
}

/** Time of the first answer from `mac` at or after `after` (wall ms), or null. */
export function firstAnswerFrom(records: readonly ProbeRecord[], mac: string, after = -Infinity): number | null {
  let first: number | null = null;
  for (const r of records) for (const a of r.answers) if (a.mac === mac && a.at >= after && (first === null || a.at < first)) first = a.at;
  return first;
}

/**
 * How long `mac` kept answering after `since` (e.g. the moment its agent was killed or stopped):
 * last answer minus since, 0 if it never answered after since.
 */
export function linger(records: readonly ProbeRecord[], mac: string, since: number): number {
  const last = lastAnswerFrom(records, mac);
  return last === null || last < since ? 0 : last - since;
}

export interface MacStats {
  answers: number;
  firstAt: number;
  lastAt: number;
}

export interface ProbeSummary {
  requests: number;
  answered: number;
  unanswered: number;
  macs: Record<string, MacStats>;
  doubleAnswers: number;
  /** Longest time without any answer: from the last answered request before the gap to the first answered after it. */
  longestOutageMs: number;
  firstSentAt: number | null;
  lastSentAt: number | null;
}

export function summarize(records: readonly ProbeRecord[]): ProbeSummary {
  const macs: Record<string, MacStats> = {};
  let answered = 0;
  let longest = 0;
  let lastAnswered: number | null = null;
  let gapOpen = false;
  for (const r of records) {
    for (const a of r.answers) {
      const m = macs[a.mac];
      if (m) {
        m.answers++;
        m.firstAt = Math.min(m.firstAt, a.at);
        m.lastAt = Math.max(m.lastAt, a.at);
      } else macs[a.mac] = { answers: 1, firstAt: a.at, lastAt: a.at };
    }
    if (r.answers.length > 0) {
      answered++;
      if (gapOpen && lastAnswered !== null) longest = Math.max(longest, r.sentAt - lastAnswered);
      lastAnswered = r.sentAt;
      gapOpen = false;
    } else {
      gapOpen = true;
    }
  }
  return {
    requests: records.length,
    answered,
    unanswered: records.length - answered,
    macs,
    doubleAnswers: doubleAnswers(records).length,
    longestOutageMs: longest,
    firstSentAt: records[0]?.sentAt ?? null,
    lastSentAt: records[records.length - 1]?.sentAt ?? null,
  };
}
