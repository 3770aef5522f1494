/**
 * When this node may start holding a service IP the plan gives it. Pure.
 *
 * Nodes see Service and membership changes at slightly different moments, so when an IP moves
 * between two LIVE nodes (a member joins, an externalTrafficPolicy Local endpoint moves), the new
 * owner can learn it before the old owner has let go. The new owner therefore waits `delayMs`
 * (longer than the spread between nodes' views plus the old holder's teardown) before taking an
 * IP whose previous owner, as this node last saw it, is still a live member — and for every IP
 * on its first plan, when it cannot know who held what. Giving an IP up is always immediate.
 *
 * No wait when the previous owner left the member set: the membership layer must only drop a
 * node once its grants are over (same rule as the control-plane VIP), so it holds nothing. No
 * wait for a new address nobody could have held (a fresh allocation, or a unit that had no
 * owner). This narrows, it does not close, the window: it relies on views converging within
 * `delayMs`.
 */
import type { Plan } from './placement.js';

export interface HandoffState {
  /** False until the first plan: then the previous owners are unknown. */
  readonly started: boolean;
  /** Owner of each unit in the previous plan. */
  readonly owners: ReadonlyMap<string, string | undefined>;
  /** IPs this node owns but does not hold yet → monotonic time it may. */
  readonly waiting: ReadonlyMap<string, number>;
  /** IPs this node holds now. */
  readonly holding: ReadonlySet<string>;
}

export const initialHandoff: HandoffState = { started: false, owners: new Map(), waiting: new Map(), holding: new Set() };

export interface HandoffResult {
  state: HandoffState;
  /** Sorted IPs to hold now. */
  hold: string[];
  /** Earliest moment a waiting IP becomes holdable (monotonic), if any. */
  wakeAt: number | undefined;
}

export function handoff(prev: HandoffState, plan: Plan, members: readonly string[], me: string, now: number, delayMs: number): HandoffResult {
  const live = new Set(members);
  const owners = new Map<string, string | undefined>(plan.units.map((u) => [u.ip, u.owner]));
  const waiting = new Map<string, number>();
  const holding = new Set<string>();
  for (const u of plan.units) {
    if (u.owner !== me) continue;
    if (prev.holding.has(u.ip)) {
      holding.add(u.ip);
      continue;
    }
    const already = prev.waiting.get(u.ip);
    let readyAt: number;
    if (already !== undefined) {
      readyAt = already;
    } else if (!prev.started) {
      readyAt = now + delayMs;
    } else {
      const was = prev.owners.get(u.ip);
      const someoneElseMayHold = prev.owners.has(u.ip) && was !== undefined && was !== me && live.has(was);
      readyAt = someoneElseMayHold ? now + delayMs : now;
    }
    if (readyAt <= now) holding.add(u.ip);
    else waiting.set(u.ip, readyAt);
  }
  const wakeAt = waiting.size > 0 ? Math.min(...waiting.values()) : undefined;
  return { state: { started: true, owners, waiting, holding }, hold: [...holding].sort(), wakeAt };
}
