/**
 * Where results go: one JSON row per line on stdout (what scripts read), progress on stderr,
 * and the whole run (command, machine, rows, details) in bench/results/<name>-<timestamp>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../lab/agents.js';
import { writeCharts } from './chart.js';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  kernel: string;
  node: string;
  keepalived: string | null;
  commit: string | null;
  /** Uncommitted changes under src/ when the run started: the agents ran code that is not in `commit`. */
  srcDirty: boolean | null;
  /** 1-minute load average when the run started: other work on the machine skews the numbers. */
  loadavg1: number;
}

/** stdout (or, when that is empty, stderr: keepalived prints its version there) of a command; null if it fails. */
function tryRun(file: string, args: string[]): string | null {
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error || r.status !== 0) return null;
  return r.stdout.trim() || r.stderr.trim();
}

export function machine(): Machine {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    keepalived: tryRun('/usr/sbin/keepalived', ['--version'])?.split('\n')[0] ?? null,
    commit: tryRun('git', ['-C', projectRoot(), 'rev-parse', '--short', 'HEAD']),
    srcDirty: ((s) => (s === null ? null : s.length > 0))(tryRun('git', ['-C', projectRoot(), 'status', '--porcelain', '--', 'src'])),
    loadavg1: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

export function emitRow(row: object): void {
  process.stdout.write(JSON.stringify(row) + '\n');
}

export function progress(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/**
 * Writes bench/results/<name>-<timestamp>.json (or into $VIPD_BENCH_RESULTS_DIR) and its charts
 * beside it (bench/lib/chart.ts: <name>-<timestamp>.svg for the failover and footprint benches);
 * returns the JSON's path.
 */
export async function writeResults(name: string, body: object): Promise<string> {
  const dir = process.env.VIPD_BENCH_RESULTS_DIR || join(projectRoot(), 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `${name}-${stamp}.json`);
  await writeFile(file, JSON.stringify(body, null, 2) + '\n');
  // The numbers are on disk first: a chart that cannot be drawn costs the picture, never the run
  // (`npm run bench:chart -- <file>` draws it again).
  try {
    for (const svg of await writeCharts(file, body)) progress(`chart: ${svg}`);
  } catch (err) {
    progress(`chart not written: ${err instanceof Error ? err.message : String(err)}`);
  }
  return file;
}
