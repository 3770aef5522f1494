/**
 * `npm run bench:soak -- [--minutes 10] [--busy 2] [--heartbeat-ms H --election-timeout-ms E]`
 *
 * False failovers: vipd's three agents at their defaults (Lease + peers) in the bench lab, the
 * holder healthy throughout, while `--busy` processes spin on the CPU (2 on this 2-core machine:
 * the agents, three kube-apiservers and etcd compete for what is left). Nothing is disrupted, so
 * every change of the node answering ARP for the VIP is a false failover. Prints one JSON row:
 * {"system","minutes","busy","holder_changes","longest_gap_ms","loadavg1", ...}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBenchLab, type BenchLab } from './lib/benchlab.js';
import { waitStable } from './lib/failover-run.js';
import { holderTimeline } from './lib/holder-changes.js';
import { preflight } from './lib/preflight.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { makeSystem } from './lib/systems.js';
import { runMain } from './lib/main.js';
import { wallNow } from '../lab/wallclock.js';

const USAGE = 'usage: npm run bench:soak -- [--minutes N (default 10)] [--busy N (default 2)] [--heartbeat-ms H --election-timeout-ms E (default: vipd\'s)]';

function parse(argv: string[]): { minutes: number; busy: number; peerEnv: Record<string, string> } | string {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { minutes: { type: 'string' }, busy: { type: 'string' }, 'heartbeat-ms': { type: 'string' }, 'election-timeout-ms': { type: 'string' } },
      strict: true,
    });
    const minutes = Number(values.minutes ?? 10);
    const busy = Number(values.busy ?? 2);
    if (!(minutes > 0 && minutes <= 120)) return '--minutes must be a number from 0 to 120';
    if (!Number.isInteger(busy) || busy < 0 || busy > 16) return '--busy must be a whole number from 0 to 16';
    // Passed to the agents as they are: vipd's own config check refuses a bad pair.
    const peerEnv: Record<string, string> = {};
    if (values['heartbeat-ms'] !== undefined) peerEnv.vip_peer_heartbeat_ms = values['heartbeat-ms'];
    if (values['election-timeout-ms'] !== undefined) peerEnv.vip_peer_election_timeout_ms = values['election-timeout-ms'];
    return { minutes, busy, peerEnv };
  } catch (err) {
    return (err as Error).message;
  }
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (typeof args === 'string') {
    process.stderr.write(`bench:soak: ${args}\n${USAGE}\n`);
    return 2;
  }
  const cannot = preflight('bench:soak', { root: true });
  if (cannot) {
    process.stderr.write(`${cannot}\n`);
    return 2;
  }
  const started = new Date().toISOString();
  const burners: ChildProcess[] = [];
  let bl: BenchLab | undefined;
  const cleanup = async () => {
    for (const b of burners) b.kill('SIGKILL');
    await bl?.destroy().catch((e: unknown) => progress(`cleanup: ${String(e)}`));
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  process.once('SIGTERM', () => void cleanup().finally(() => process.exit(130)));
  try {
    bl = await startBenchLab({ log: progress, id: 'soak' });
    // vipd's own defaults (15/10/2 s Lease, peers H 50 ms / E 200 ms) unless the peer timing is given.
    const sys = makeSystem(bl, 'vipd', 'default', args.peerEnv);
    progress(`vipd: ${sys.config}`);
    await bl.deleteLease();
    for (const n of bl.nodes) await sys.start(n);
    const first = await waitStable(bl, sys, 90_000);
    if (first === null) throw new Error('no steady holder within 90 s');
    for (let i = 0; i < args.busy; i++) burners.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    progress(`holder ${first}; ${args.busy} busy processes; soaking ${args.minutes} min`);
    const from = wallNow();
    const load: number[] = [];
    const end = performance.now() + args.minutes * 60_000;
    while (performance.now() < end) {
      await sleep(Math.min(10_000, end - performance.now()));
      load.push(loadavg()[0] ?? 0);
    }
    const to = wallNow();
    for (const b of burners.splice(0)) b.kill('SIGKILL');
    const t = holderTimeline(bl.arp.filter((r) => r.sentAt >= from && r.sentAt <= to), bl.macToNode);
    const row = {
      system: 'vipd',
      minutes: args.minutes,
      busy: args.busy,
      holder_changes: t.changes.length,
      changes: t.changes.map((c) => ({ atS: Math.round((c.at - from) / 100) / 10, from: c.from, to: c.to })),
      longest_gap_ms: t.longestGapMs,
      unanswered_requests: t.unanswered,
      requests: t.requests,
      loadavg1_mean: Math.round((load.reduce((a, b) => a + b, 0) / Math.max(1, load.length)) * 100) / 100,
      config: sys.config,
    };
    emitRow(row);
    await sys.stopAll();
    const file = await writeResults('soak', { bench: 'soak', command: ['npm run bench:soak', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '), started, machine: machine(), args, rows: [row] });
    progress(`done; results in ${file}`);
    return 0;
  } finally {
    await cleanup();
  }
}

runMain('bench:soak', main);
