/**
 * Who answered for the VIP, as a text timeline: the demo's client (lab/tcpprobe.ts records, one
 * connection every few ms, each answered with the serving node's name) drawn as one row per
 * node, a row for failed connections, the demo's actions as marks, and each change of node with
 * how long the client went without an answer. Pure: records in, lines out.
 */
import type { ProbeRecord } from './tcpprobe.js';

export interface TimelineMark {
  /** ms since the epoch, like the records' `t`. */
  at: number;
  label: string;
}

export interface HolderChange {
  /** First connection the new node served. */
  at: number;
  from: string;
  to: string;
  /** From the old node's last answer to the new node's first: what the client waited. */
  gapMs: number;
  /** Connections that failed in between. */
  failed: number;
}

/** Every change of the answering node, in order. */
export function holderChanges(records: readonly ProbeRecord[]): HolderChange[] {
  const out: HolderChange[] = [];
  let last: ProbeRecord | undefined;
  let failed = 0;
  for (const r of records) {
    if (!r.ok || r.node === null) {
      if (last) failed++;
      continue;
    }
    if (last && r.node !== last.node) out.push({ at: r.t, from: last.node!, to: r.node, gapMs: r.t - last.t, failed });
    last = r;
    failed = 0;
  }
  return out;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;

/** Axis labels every `step` columns: "0 s", "10 s", … at the column their time falls in. */
function axis(width: number, spanMs: number, indent: number): string {
  const stepS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600].find((s) => (s * 1000 * width) / spanMs >= 10) ?? 600;
  const line = Array.from({ length: width + 8 }, () => ' ');
  for (let s = 0; s * 1000 <= spanMs; s += stepS) {
    const col = Math.floor((s * 1000 * width) / spanMs);
    const text = `${s} s`;
    if (col + text.length > line.length) break;
    for (let i = 0; i < text.length; i++) line[col + i] = text[i]!;
  }
  return ' '.repeat(indent) + line.join('').trimEnd();
}

/**
 * The timeline of `records` (sorted by t) in `width` columns. A node's column is filled when it
 * served a connection in that slice of time; the "no answer" row when a connection failed there;
 * marks are letters under the rows, explained below them.
 */
export function renderTimeline(records: readonly ProbeRecord[], o: { nodes: readonly string[]; marks?: readonly TimelineMark[]; width?: number; target?: string }): string {
  if (records.length === 0) return 'who answered for the VIP: no connection recorded';
  const width = o.width ?? 60;
  const t0 = records[0]!.t;
  const span = Math.max(1, records.at(-1)!.t - t0);
  const col = (t: number): number => Math.min(width - 1, Math.max(0, Math.floor(((t - t0) * width) / span)));
  const seen = new Set<string>();
  for (const r of records) if (r.ok && r.node !== null) seen.add(r.node);
  const names = [...o.nodes, ...[...seen].filter((n) => !o.nodes.includes(n))];
  const rows = new Map<string, string[]>([...names, 'no answer'].map((n) => [n, Array.from({ length: width }, () => ' ')]));
  for (const r of records) {
    const row = rows.get(r.ok && r.node !== null ? r.node : 'no answer')!;
    row[col(r.t)] = r.ok ? '█' : '▒';
  }
  const label = Math.max(...[...rows.keys()].map((n) => n.length)) + 2;
  const lines = [`who answered ${o.target ?? 'the VIP'} (the client's connections), over ${seconds(span)}:`, axis(width, span, label + 2)];
  for (const [name, cells] of rows) lines.push(`  ${name.padEnd(label)}${cells.join('')}`.trimEnd());
  const marks = (o.marks ?? []).filter((m) => m.at >= t0 && m.at <= t0 + span);
  if (marks.length > 0) {
    const cells = Array.from({ length: width }, () => ' ');
    marks.forEach((m, i) => (cells[col(m.at)] = String.fromCharCode(97 + (i % 26))));
    lines.push(`  ${''.padEnd(label)}${cells.join('').trimEnd()}`);
    for (const [i, m] of marks.entries()) lines.push(`  ${String.fromCharCode(97 + (i % 26))}  +${seconds(m.at - t0)}  ${m.label}`);
  }
  const changes = holderChanges(records);
  lines.push(changes.length === 0 ? '  the same node answered throughout' : '  changes:');
  for (const c of changes) {
    const how = c.failed === 0 ? 'no connection failed' : `${c.failed} connection${c.failed === 1 ? '' : 's'} failed`;
    lines.push(`  +${seconds(c.at - t0)}  ${c.from} → ${c.to}: ${Math.round(c.gapMs)} ms between their answers, ${how}`);
  }
  return lines.join('\n');
}
