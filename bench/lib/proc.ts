/**
 * Reading what a process (and the processes it forked) costs, from /proc.
 *
 * - CPU: utime + stime of each process plus cutime + cstime (children it already reaped, e.g.
 *   keepalived's health-check curls), in clock ticks (USER_HZ = 100 on Linux).
 * - Memory: VmRSS from /proc/<pid>/status, summed over the tree (shared pages are counted once
 *   per process, as `ps` does); Pss from smaps_rollup, which splits shared pages, alongside.
 */
import { readdir, readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = 100;

export interface StatFields {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
}

/** Pure: the fields we need from a /proc/<pid>/stat line (the command name may contain spaces and parentheses). */
export function parseStat(line: string): StatFields | null {
  const close = line.lastIndexOf(')');
  const open = line.indexOf('(');
  if (open < 0 || close < open) return null;
  const pid = Number(line.slice(0, open).trim());
  const f = line.slice(close + 2).split(' ');
  // After "pid (comm) ": state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
  const nums = [1, 11, 12, 13, 14].map((i) => Number(f[i]));
  if (!Number.isInteger(pid) || nums.some((n) => !Number.isFinite(n))) return null;
  const [ppid, ut, st, cut, cst] = nums as [number, number, number, number, number];
  return { pid, ppid, ticks: ut + st + cut + cst };
}

/** Pure: kB value of a "Key:   123 kB" line in /proc status-like text; null if absent. */
export function kbField(text: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

async function readStat(pid: number): Promise<StatFields | null> {
  try {
    return parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** `root` and every live descendant of it. */
export async function processTree(root: number): Promise<number[]> {
  const stats: StatFields[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const s = await readStat(Number(e));
    if (s) stats.push(s);
  }
  const out = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of stats) if (!out.has(s.pid) && out.has(s.ppid)) (out.add(s.pid), (grew = true));
  }
  return [...out].filter((p) => stats.some((s) => s.pid === p));
}

export interface Sample {
  at: number;
  pids: number[];
  ticks: number;
  rssKb: number;
  pssKb: number;
}

export async function sampleTree(root: number): Promise<Sample> {
  const pids = await processTree(root);
  let ticks = 0;
  let rssKb = 0;
  let pssKb = 0;
  for (const pid of pids) {
    ticks += (await readStat(pid))?.ticks ?? 0;
    try {
      rssKb += kbField(await readFile(`/proc/${pid}/status`, 'utf8'), 'VmRSS') ?? 0;
    } catch {
      // exited between listing and reading
    }
    try {
      pssKb += kbField(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss') ?? 0;
    } catch {
      // no smaps_rollup (old kernel) or gone
    }
  }
  return { at: performance.now(), pids, ticks, rssKb, pssKb };
}

/** Pure: CPU use between two samples as % of one core. */
export function cpuPercent(a: Pick<Sample, 'at' | 'ticks'>, b: Pick<Sample, 'at' | 'ticks'>): number {
  const wallS = (b.at - a.at) / 1000;
  if (wallS <= 0) return 0;
  return Math.round(((b.ticks - a.ticks) / TICKS_PER_SECOND / wallS) * 100 * 100) / 100;
}
