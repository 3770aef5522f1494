/**
 * Randomized simulation runs: a fast-check arbitrary of fault schedules and the runner that plays
 * one against the Sim, asserting its invariants at every event and liveness after the heal.
 * A failing case is plain JSON, so a shrunk counter-example can be saved under
 * test/election/regressions/ and replayed forever.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { Sim, SimViolation } from './sim.js';
import type { PeerTiming } from '../../src/election/peers/timing.js';

export type Op =
  | { k: 'partition'; groups: number[] }
  | { k: 'block'; a: number; b: number }
  | { k: 'heal' }
  | { k: 'crash'; i: number }
  | { k: 'restart'; i: number }
  | { k: 'pause'; i: number; ms: number; messagesFirst: boolean }
  | { k: 'net'; drop: number; dup: number; maxDelay: number }
  | { k: 'lease'; holder: number }
  | { k: 'api'; i: number; up: boolean }
  /** `alone` (with ok): eligible only because no API server answers, its own included. */
  | { k: 'eligible'; i: number; ok: boolean; alone?: boolean }
  | { k: 'shutdown'; i: number }
  | { k: 'campaign'; i: number };

export interface SimCase {
  n: number;
  timing: 0 | 1 | 2;
  seed: number;
  /** Clock rate error per node, as a fraction of ρ in [-1, 1]. */
  rates: number[];
  /** Start offsets (ms) per node. */
  starts: number[];
  ops: { dt: number; op: Op }[];
  /** How many crashed nodes stay down after the heal (capped at n − majority). */
  keepDown: number;
  /** Bootstrap run: node 0 starts alone with the bootstrap setting; the others join later. */
  bootstrap?: boolean;
}

export const TIMINGS: readonly PeerTiming[] = [
  // Defaults: agent responder.
  { heartbeatMs: 100, electionTimeoutMs: 400, lingerMs: 0, skew: 0.01 },
  // Tight.
  { heartbeatMs: 50, electionTimeoutMs: 250, lingerMs: 0, skew: 0.01 },
  // Kernel-lifetime responder: the address may linger after a deadline.
  { heartbeatMs: 100, electionTimeoutMs: 1500, lingerMs: 600, skew: 0.01 },
];

function opArb(n: number, bootstrap: boolean): fc.Arbitrary<Op> {
  const i = fc.integer({ min: 0, max: n - 1 });
  const faults: fc.Arbitrary<Op>[] = [
    fc.record({ k: fc.constant('partition' as const), groups: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }) }),
    fc.record({ k: fc.constant('block' as const), a: i, b: i }),
    fc.constant({ k: 'heal' as const }),
    fc.record({ k: fc.constant('crash' as const), i }),
    fc.record({ k: fc.constant('restart' as const), i }),
    fc.record({ k: fc.constant('pause' as const), i, ms: fc.integer({ min: 50, max: 3000 }), messagesFirst: fc.boolean() }),
    fc.record({
      k: fc.constant('net' as const),
      drop: fc.constantFrom(0, 0, 0.05, 0.3, 0.8),
      dup: fc.constantFrom(0, 0.1, 0.5),
      maxDelay: fc.constantFrom(2, 10, 60, 400, 2000),
    }),
    fc.record({ k: fc.constant('lease' as const), holder: fc.integer({ min: -1, max: n - 1 }) }),
    fc.record({ k: fc.constant('api' as const), i, up: fc.boolean() }),
    fc.record({ k: fc.constant('eligible' as const), i, ok: fc.boolean(), alone: fc.boolean() }),
    fc.record({ k: fc.constant('shutdown' as const), i }),
    fc.record({ k: fc.constant('campaign' as const), i }),
  ];
  // Bootstrap's promise is an operator's: the bootstrap node is alone, and it reaches the joiners
  // while they join. So no partitions or loss in bootstrap runs; everything else still happens.
  if (bootstrap) return fc.oneof(...faults.filter((_, k) => k >= 3 && k !== 6), fc.record({ k: fc.constant('net' as const), drop: fc.constant(0), dup: fc.constantFrom(0, 0.5), maxDelay: fc.constantFrom(2, 10, 60) }));
  return fc.oneof(...faults);
}

export function simCaseArb(o: { n?: number[]; bootstrap?: boolean; maxOps?: number } = {}): fc.Arbitrary<SimCase> {
  const ns = o.n ?? [3, 5];
  return fc.constantFrom(...ns).chain((n) =>
    fc.record({
      n: fc.constant(n),
      timing: fc.constantFrom(0 as const, 0 as const, 1 as const, 2 as const),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      rates: fc.array(fc.constantFrom(-1, -1, 1, 1, 0, -0.5, 0.5), { minLength: n, maxLength: n }),
      starts: fc.array(fc.integer({ min: 0, max: 600 }), { minLength: n, maxLength: n }),
      ops: fc.array(fc.record({ dt: fc.integer({ min: 0, max: 700 }), op: opArb(n, o.bootstrap ?? false) }), { maxLength: o.maxOps ?? 20 }),
      keepDown: fc.integer({ min: 0, max: 2 }),
      bootstrap: fc.constant(o.bootstrap ?? false),
    }),
  );
}

export interface RunStats {
  /** True ms from the heal until a holder existed. */
  recovery: number;
  simulatedMs: number;
  steps: number;
}

/**
 * The bound after a heal with a majority up (docs/election.md §1, §10): promises and boot quiet run
 * out (2E), Lease views agree after one poll (1.2·RP), then a few election rounds.
 */
export function recoveryBoundMs(t: PeerTiming, retryPeriodMs: number): number {
  return 5 * t.electionTimeoutMs + 1.2 * retryPeriodMs + 1000;
}

export function runCase(c: SimCase, debug?: { log: string[]; sim?: Sim }): RunStats {
  const timing = TIMINGS[c.timing]!;
  const names = Array.from({ length: c.n }, (_, k) => `n${k + 1}`);
  const sim = new Sim({
    nodes: names.map((name, k) => ({ name, rate: 1 + (c.rates[k] ?? 0) * timing.skew, bootstrap: c.bootstrap === true && k === 0 })),
    timing,
    seed: c.seed,
    log: debug !== undefined,
    logMessages: process.env.SIM_LOG_MESSAGES === '1',
  });
  if (debug !== undefined) {
    debug.log = sim.log;
    debug.sim = sim;
  }
  const nameOf = (i: number): string => names[i % c.n]!;
  const conts = new Map<string, { at: number; messagesFirst: boolean }>();
  const pendingStarts = new Map<string, number>();
  if (c.bootstrap) {
    sim.start(names[0]!);
    // Joiners come up after the bootstrap node has had time to win alone.
    names.slice(1).forEach((nm, k) => pendingStarts.set(nm, 2 * timing.electionTimeoutMs + 200 + (c.starts[k + 1] ?? 0)));
  } else {
    names.forEach((nm, k) => pendingStarts.set(nm, c.starts[k] ?? 0));
  }

  const advance = (ms: number): void => {
    const end = sim.t + ms;
    for (;;) {
      let next = end;
      for (const v of conts.values()) next = Math.min(next, v.at);
      for (const v of pendingStarts.values()) next = Math.min(next, v);
      sim.run(Math.max(0, next - sim.t));
      for (const [nm, v] of [...conts]) {
        if (v.at <= sim.t) {
          conts.delete(nm);
          sim.cont(nm, v.messagesFirst);
        }
      }
      for (const [nm, at] of [...pendingStarts]) {
        if (at <= sim.t) {
          pendingStarts.delete(nm);
          sim.start(nm);
        }
      }
      if (sim.t >= end) break;
    }
  };

  advance(0);
  for (const { dt, op } of c.ops) {
    advance(dt);
    switch (op.k) {
      case 'partition': {
        const groups: string[][] = [[], [], []];
        names.forEach((nm, k) => groups[op.groups[k] ?? 0]!.push(nm));
        sim.partition(groups);
        break;
      }
      case 'block':
        if (op.a !== op.b) sim.block(nameOf(op.a), nameOf(op.b));
        break;
      case 'heal':
        sim.heal();
        break;
      case 'crash':
        conts.delete(nameOf(op.i));
        sim.crash(nameOf(op.i));
        break;
      case 'restart':
        if (pendingStarts.has(nameOf(op.i))) break;
        conts.delete(nameOf(op.i));
        sim.restart(nameOf(op.i));
        break;
      case 'pause':
        if (sim.node(nameOf(op.i)).status === 'running') {
          sim.pause(nameOf(op.i));
          conts.set(nameOf(op.i), { at: sim.t + op.ms, messagesFirst: op.messagesFirst });
        }
        break;
      case 'net':
        sim.setNet({ drop: op.drop, dup: op.dup, minDelay: 0.2, maxDelay: op.maxDelay });
        break;
      case 'lease':
        if (op.holder < 0) sim.releaseLease();
        else sim.wantLease(nameOf(op.holder));
        break;
      case 'api':
        sim.setApi(nameOf(op.i), op.up);
        break;
      case 'eligible':
        sim.setEligible(nameOf(op.i), op.ok, op.ok && op.alone !== true);
        break;
      case 'shutdown':
        sim.shutdown(nameOf(op.i));
        break;
      case 'campaign':
        sim.campaign(nameOf(op.i));
        break;
    }
  }

  // Heal: network whole and quick, everyone healthy and running except a minority kept down.
  // In-flight messages (up to the last maxDelay) still arrive late; that is part of the test.
  advance(0);
  sim.heal();
  sim.wantLease(null);
  sim.setNet({ drop: 0, dup: 0, minDelay: 0.2, maxDelay: 3 });
  for (const [nm, v] of [...conts]) {
    conts.delete(nm);
    sim.cont(nm, v.messagesFirst);
  }
  for (const [nm] of [...pendingStarts]) {
    pendingStarts.delete(nm);
    sim.start(nm);
  }
  const quorum = Math.floor(c.n / 2) + 1;
  let mayStayDown = Math.min(c.keepDown, c.n - quorum);
  for (const nm of names) {
    sim.setEligible(nm, true);
    sim.setApi(nm, true);
    const st = sim.node(nm);
    // A node that got SIGTERM exits and is started again by its supervisor.
    if (st.status !== 'down' && st.state?.shutdown !== true) continue;
    if (st.status === 'down' && mayStayDown > 0 && !(c.bootstrap && nm === names[0])) {
      mayStayDown -= 1;
      continue;
    }
    sim.restart(nm);
  }
  const healedAt = sim.t;
  const bound = recoveryBoundMs(timing, sim.retryPeriodMs);
  let recovery = -1;
  const windowEnd = healedAt + bound + 1000;
  while (sim.t < windowEnd) {
    advance(10);
    if (recovery < 0 && sim.holders().length === 1) recovery = sim.t - healedAt;
  }
  if (recovery < 0 || recovery > bound) {
    throw new SimViolation(`LIVENESS: no holder within ${bound} ms of the heal (recovery=${recovery}); core holders now: ${sim.coreHolders().join(',') || 'none'}`);
  }
  // Still one at the end (a Lease-steered handover may have moved it in between).
  if (sim.holders().length !== 1) throw new SimViolation(`LIVENESS: no holder at the end of the healed window (${sim.holders().join(',') || 'none'})`);
  return { recovery, simulatedMs: sim.t, steps: sim.steps };
}

/** Registers a vitest test that plays `runs` seeded cases (VIPD_SIM_SEED / VIPD_SIM_RUNS override). */
export function explore(name: string, arb: fc.Arbitrary<SimCase>, runs: number, seed: number): void {
  test(`${name}: ${runs} seeded runs`, () => {
    const started = performance.now();
    const recovery: number[] = [];
    let simulated = 0;
    fc.assert(
      fc.property(arb, (c) => {
        const r = runCase(c);
        recovery.push(r.recovery);
        simulated += r.simulatedMs;
      }),
      { numRuns: Number(process.env.VIPD_SIM_RUNS ?? runs), seed: Number(process.env.VIPD_SIM_SEED ?? seed), endOnFailure: false },
    );
    recovery.sort((a, b) => a - b);
    const q = (p: number) => recovery[Math.min(recovery.length - 1, Math.floor(recovery.length * p))];
    console.log(
      `${name}: ${recovery.length} runs, ${(simulated / 3_600_000).toFixed(1)} h simulated in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
        `holder after heal p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms`,
    );
    expect(recovery.length).toBeGreaterThan(0);
  }, 600_000);
}

