/**
 * `npm run bench:failover -- [--runs N] [--systems a,b] [--scenarios x,y] [--timings lab|default|both] [--verbose]`
 *
 * Failover outage side by side: one lab (3 nodes, a kube-apiserver each, one etcd, a client),
 * each system's agents in turn on the same nodes, each scenario N times. Prints one JSON row per
 * system and scenario on stdout; the whole run goes to bench/results/failover-<timestamp>.json.
 * See bench/README.md for the method and how to read the rows.
 */
import { loadavg } from 'node:os';
import { FAILOVER_USAGE, parseFailoverArgs, type Timings } from './lib/args.js';
import { startBenchLab, type BenchLab } from './lib/benchlab.js';
import { runOnce } from './lib/failover-run.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { failoverRow, type FailoverRow, type RunDetail } from './lib/rows.js';
import { availableSystems, makeSystem } from './lib/systems.js';
import { benchArgs, runMain } from './lib/main.js';

async function main(): Promise<number> {
  const args = benchArgs('bench:failover', FAILOVER_USAGE, () => parseFailoverArgs(process.argv.slice(2), availableSystems()), { root: true });
  if (args === null) return 2;
  const started = new Date().toISOString();
  const mach = machine();
  const t0 = performance.now();
  let bl: BenchLab | undefined;
  const onSignal = (): void => {
    void (bl?.destroy() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: FailoverRow[] = [];
  const details: RunDetail[] = [];
  try {
    bl = await startBenchLab({ log: progress });
    progress(`lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const passes: Array<Exclude<Timings, 'both'>> = args.timings === 'both' ? ['lab', 'default'] : [args.timings];
    for (const timings of passes) {
      for (const name of args.systems) {
        // The 15/10/2 s defaults concern only vipd's Lease; the other systems run once.
        if (timings === 'default' && !name.startsWith('vipd')) continue;
        const sys = makeSystem(bl, name, timings);
        const ts = performance.now();
        progress(`${name}: ${sys.config}`);
        if (sys.usesLease) await bl.deleteLease();
        await bl.restartCapture();
        for (const n of bl.nodes) await sys.start(n);
        const observeTimeoutMs = timings === 'default' && name.startsWith('vipd') ? 45_000 : 20_000;
        for (const scenario of args.scenarios) {
          const mine: RunDetail[] = [];
          for (let run = 1; run <= args.runs; run++) {
            const d = await runOnce(bl, sys, scenario, run, { observeTimeoutMs });
            mine.push(d);
            progress(
              `${name} ${scenario} #${run}: ${d.skipped ?? `${d.oldHolder} -> ${d.newHolder ?? '(none)'} outage ${d.outageMs?.toFixed(0)} ms, takeover ${d.takeoverMs?.toFixed(0) ?? '-'} ms, two-holder episodes ${d.episodes?.length ?? 0}`} (waited ${d.waitStableS} s for a steady holder, restored in ${d.restoreS ?? 0} s)`,
            );
          }
          details.push(...mine);
          const row = failoverRow(name, scenario, sys.config, mine, sys.note);
          rows.push(row);
          emitRow(row);
        }
        await sys.stopAll();
        if (sys.usesLease) await bl.deleteLease();
        progress(`${name} done in ${((performance.now() - ts) / 1000).toFixed(0)} s`);
      }
    }
  } finally {
    await bl?.destroy().catch((e: unknown) => progress(`cleanup: ${String(e)}`));
  }
  const file = await writeResults('failover', {
    bench: 'failover',
    command: ['npm run bench:failover', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    started,
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: mach,
    loadavg1End: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    args,
    rows,
    ...(args.verbose ? { runs: details } : { runs: details.map(({ episodes, firstEvents: _e, ...d }) => ({ ...d, episodes: episodes?.length ?? 0 })) }),
  });
  progress(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s; results in ${file}`);
  return 0;
}

runMain('bench:failover', main);
