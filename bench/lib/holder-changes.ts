/**
 * Who answered ARP for the VIP over a long window, as a sequence of holders. Pure: prober
 * records in, changes and gaps out. A change is the answering MAC differing from the previous
 * answered request's; a gap is a stretch of requests nobody answered.
 */
import type { ArpRecord } from './analysis.js';

export interface HolderTimeline {
  /** Answering-node changes (a failover, false or not). */
  changes: Array<{ at: number; from: string; to: string }>;
  /** Longest run of unanswered requests, in ms from the first to the last of it. */
  longestGapMs: number;
  requests: number;
  unanswered: number;
}

export function holderTimeline(records: readonly ArpRecord[], macToNode: ReadonlyMap<string, string>): HolderTimeline {
  const changes: HolderTimeline['changes'] = [];
  let last: string | undefined;
  let gapStart: number | undefined;
  let longestGapMs = 0;
  let unanswered = 0;
  for (const r of records) {
    if (r.answers.length === 0) {
      unanswered++;
      gapStart ??= r.sentAt;
      longestGapMs = Math.max(longestGapMs, r.sentAt - gapStart);
      continue;
    }
    gapStart = undefined;
    const node = macToNode.get(r.answers[0]!.mac) ?? r.answers[0]!.mac;
    if (last !== undefined && node !== last) changes.push({ at: r.sentAt, from: last, to: node });
    last = node;
  }
  return { changes, longestGapMs: Math.round(longestGapMs), requests: records.length, unanswered };
}
