/**
 * One failover run: wait for one steady holder, disrupt it, watch the client until another node
 * has served for a while (or a timeout), then put the lab back as it was.
 *
 * The run's window starts 1 s before the event and ends when observation ends (for `partition`,
 * 3 s after the heal, so what happens when the halves meet again counts too). Restoring (agent,
 * API server, link) happens after the window and is not measured; the next run starts only once
 * a single holder answers ARP and connections steadily again and every agent has been up as long.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LabHost } from '../../lab/netns.js';
import { analyzeRun, stableHolder, takeoverSettled } from './analysis.js';
import { holderTimeline } from './holder-changes.js';
import type { Scenario } from './args.js';
import { wallNow, type BenchLab } from './benchlab.js';
import type { RunDetail } from './rows.js';
import type { BenchSystem } from './systems.js';

export interface RunOptions {
  /** Give up observing this long after the event. */
  observeTimeoutMs: number;
  /** Another node must serve this long without a failure to end observation. */
  settleMs?: number;
  /** Baseline before the event. */
  preMs?: number;
  /** Observation after a partition heals. */
  postHealMs?: number;
  /** How long to wait for a steady holder before a run. */
  stableTimeoutMs?: number;
}

/**
 * A steady start for a run: one holder answered ARP and connections for `windowMs`, and every
 * agent has been up that long too, so a node restored after the previous run is past its start
 * (vipd's boot quiet, keepalived's initial state) and takes part like the others.
 */
export async function waitStable(bl: BenchLab, sys: BenchSystem, timeoutMs: number, windowMs = 1500): Promise<string | null> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (bl.nodes.every((n) => sys.upFor(n) >= windowMs)) {
      const h = stableHolder(bl.arp, bl.tcp, bl.macToNode, wallNow(), windowMs);
      if (h !== null) return h;
    }
    await sleep(100);
  }
  return null;
}

export async function runOnce(bl: BenchLab, sys: BenchSystem, scenario: Scenario, run: number, o: RunOptions): Promise<RunDetail> {
  const base = { system: sys.name, scenario, config: sys.config, run };
  const w0 = performance.now();
  const holderName = await waitStable(bl, sys, o.stableTimeoutMs ?? 60_000);
  const waitStableS = Math.round(performance.now() - w0) / 1000;
  if (holderName === null) return { ...base, skipped: 'no single steady holder within the wait', waitStableS };
  const h = bl.lab.host(holderName);
  const others = bl.nodes.filter((n) => n !== h);
  const preMs = o.preMs ?? 1000;
  let from = wallNow();
  const exitsBefore = sys.unexpectedExits();
  await sleep(preMs);

  // --- the event
  let eventAt = wallNow();
  let pending: Promise<unknown> = Promise.resolve();
  switch (scenario) {
    case 'crash':
      sys.crash(h);
      break;
    case 'node-down':
      await bl.lab.linkDown(h);
      sys.forget(h);
      await bl.lab.killHost(h, 'SIGKILL');
      break;
    case 'graceful':
      pending = sys.terminate(h);
      break;
    case 'api-down':
      pending = bl.server(h).stop();
      break;
    case 'partition':
      await bl.lab.partition([[h], [...others, bl.lab.host('etcd')]]);
      break;
    case 'cold-start':
      // Every agent stopped (each removes what it held), then all started in the same moment, as
      // after a power cut of the whole control plane: the clock runs from the starts.
      await sys.stopAll();
      await sleep(500);
      eventAt = wallNow();
      from = eventAt;
      pending = Promise.all(bl.nodes.map((n) => sys.start(n)));
      break;
  }

  // --- observe
  const settleMs = o.settleMs ?? 1500;
  const giveUp = eventAt + o.observeTimeoutMs;
  // A cold start is over when some node, whichever, served for a while; then 3 s more, so a hand-on
  // after the first holder (a hold, step-down, re-win) is seen.
  const formerHolder = scenario === 'cold-start' ? '(none)' : h.name;
  while (wallNow() < giveUp && !takeoverSettled(bl.tcp, eventAt, formerHolder, wallNow(), settleMs)) await sleep(100);
  if (scenario === 'cold-start') await sleep(3000);
  if (scenario === 'partition') {
    await bl.lab.heal();
    await sleep(o.postHealMs ?? 3000);
  }
  const to = wallNow();
  await bl.caughtUp(to + 50);
  const result = analyzeRun({ vip: bl.vip, eventAt, oldHolder: formerHolder, from, to, tcp: bl.tcp, arp: bl.arp, claims: await bl.claims() });
  const holderChanges = scenario === 'cold-start' ? holderTimeline(bl.arp.filter((r) => r.sentAt >= eventAt && r.sentAt <= to), bl.macToNode).changes.length : undefined;

  // --- restore
  const r0 = performance.now();
  // api-down's restore ends the draining server itself; everything else has finished acting by now.
  if (scenario !== 'api-down') await pending.catch(() => undefined);
  await restore(bl, sys, scenario, h);
  await pending.catch(() => undefined);
  const restoreS = Math.round(performance.now() - r0) / 1000;
  bl.trimBefore(to - 5000);
  const arpBy: NonNullable<RunDetail['arpBy']> = {};
  for (const [mac, v] of Object.entries(result.arpBy)) arpBy[bl.macToNode.get(mac) ?? mac] = { firstMs: Math.round(v.firstMs), lastMs: Math.round(v.lastMs), answers: v.answers };

  return {
    ...base,
    oldHolder: h.name,
    newHolder: result.newHolder,
    // From the starts nobody serves until the first holder does: that is the cold start's outage.
    outageMs: scenario === 'cold-start' ? result.takeoverMs : result.outageMs,
    takeoverMs: result.takeoverMs,
    attempts: result.attempts,
    failed: result.failed,
    episodes: result.episodes,
    arpBy,
    firstEvents: result.events.slice(0, 8).map((e) => ({ ...e, at: Math.round(e.at - eventAt) })),
    unexpectedExits: sys.unexpectedExits() - exitsBefore,
    ...(holderChanges !== undefined ? { holderChanges } : {}),
    waitStableS,
    restoreS,
  };
}

async function restore(bl: BenchLab, sys: BenchSystem, scenario: Scenario, h: LabHost): Promise<void> {
  switch (scenario) {
    case 'crash':
    case 'graceful':
      await sys.beforeRestart(h);
      await sys.start(h);
      return;
    case 'node-down':
      await sys.beforeRestart(h);
      await bl.lab.linkUp(h);
      await bl.server(h).start();
      bl.startTagServer(h);
      await sys.start(h);
      return;
    case 'api-down': {
      // The observation is over: a server still draining its shutdown (long-lived watches keep
      // kube-apiserver up to its 15 s grace) is not worth waiting for.
      const s = bl.server(h);
      if (s.state !== 'stopped') {
        try {
          process.kill(-s.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        await s.stop();
      }
      await s.start();
      return;
    }
    case 'partition':
    case 'cold-start':
      return;
  }
}
