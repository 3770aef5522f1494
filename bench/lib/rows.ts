/**
 * From per-run results to the rows the benchmarks print. Pure.
 */
import type { Episode } from './analysis.js';
import { maxOf, percentile, roundMs } from './stats.js';

export interface RunDetail {
  system: string;
  scenario: string;
  config: string;
  run: number;
  /** Set when the run could not start (no stable holder) or failed; such runs count nowhere else. */
  skipped?: string;
  oldHolder?: string;
  newHolder?: string | null;
  outageMs?: number | null;
  takeoverMs?: number | null;
  attempts?: number;
  failed?: number;
  episodes?: Episode[];
  /** Per node that answered ARP in the window: first/last answer relative to the event, ms. */
  arpBy?: Record<string, { firstMs: number; lastMs: number; answers: number }>;
  /** The first few two-holder events of the run, for reading what happened (verbose results). */
  firstEvents?: unknown[];
  /** Agents that exited by themselves during the run (restarted after 1 s). */
  unexpectedExits?: number;
  /** cold-start: how often the answering node changed after the first answer (a hand-on). */
  holderChanges?: number;
  /** Seconds spent waiting for a steady holder before the run, and restoring after it. */
  waitStableS?: number;
  restoreS?: number;
}

export interface FailoverRow {
  system: string;
  scenario: string;
  runs: number;
  p50_ms: number | null;
  p95_ms: number | null;
  max_ms: number | null;
  two_holder_events: number;
  /** Runs with at least one two-holder episode. */
  two_holder_runs: number;
  /** Longest two-holder episode (first to last event), ms. */
  two_holder_max_ms: number | null;
  /** Event → first connection served by another node. */
  takeover_p50_ms: number | null;
  takeover_max_ms: number | null;
  /** Runs in which no other node served a connection before the observation timeout. */
  no_takeover_runs: number;
  skipped_runs: number;
  /** Agents that exited by themselves during these runs (supervision restarted them after 1 s). */
  unexpected_exits: number;
  /** cold-start only: runs in which the VIP changed hands after its first answer, and the changes in all. */
  hand_on_runs?: number;
  holder_changes?: number;
  config: string;
  note?: string;
}

export function failoverRow(system: string, scenario: string, config: string, details: readonly RunDetail[], note?: string): FailoverRow {
  const done = details.filter((d) => d.skipped === undefined);
  const outages = done.map((d) => d.outageMs).filter((v): v is number => typeof v === 'number');
  const takeovers = done.map((d) => d.takeoverMs).filter((v): v is number => typeof v === 'number');
  const eps = done.flatMap((d) => d.episodes ?? []);
  return {
    system,
    scenario,
    runs: done.length,
    p50_ms: roundMs(percentile(outages, 50)),
    p95_ms: roundMs(percentile(outages, 95)),
    max_ms: roundMs(maxOf(outages)),
    two_holder_events: eps.length,
    two_holder_runs: done.filter((d) => (d.episodes ?? []).length > 0).length,
    two_holder_max_ms: roundMs(maxOf(eps.map((e) => e.to - e.from))),
    takeover_p50_ms: roundMs(percentile(takeovers, 50)),
    takeover_max_ms: roundMs(maxOf(takeovers)),
    no_takeover_runs: done.filter((d) => d.takeoverMs === null || d.takeoverMs === undefined).length,
    skipped_runs: details.length - done.length,
    unexpected_exits: details.reduce((acc, d) => acc + (d.unexpectedExits ?? 0), 0),
    ...(scenario === 'cold-start'
      ? { hand_on_runs: done.filter((d) => (d.holderChanges ?? 0) > 0).length, holder_changes: done.reduce((acc, d) => acc + (d.holderChanges ?? 0), 0) }
      : {}),
    config,
    ...(note !== undefined ? { note } : {}),
  };
}
