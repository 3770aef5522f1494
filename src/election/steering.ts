/**
 * Fencing between the Lease and peer voting (docs/design.md, rule 2). Pure.
 *
 * The rule, in one line: when peers are configured, a node holds the VIP only with a live peer
 * grant (a majority's promises, docs/election.md); the Lease never grants on its own, it only
 * STEERS which node the peers promise to. So the two modes cannot grant different nodes: there
 * is one granting mechanism, and the Lease is an input to it.
 *
 * Steering, in elections only: a node whose Lease view names X (live by its own clock) and that has
 * received a request (pre-vote, vote, heartbeat) from X within the election timeout grants its
 * pre-vote and vote only to X; the Lease holder campaigns without the random back-off. A working
 * leader's heartbeats are acknowledged whatever the Lease says, so the Lease never deposes a
 * healthy leader; instead the Lease follows the peers: the core says `lease-wanted` exactly while
 * it holds, and the Lease elector should acquire and renew only then.
 * A Lease record naming a node that is silent on the peer network steers nothing, so crash
 * failover never waits for a Lease duration: the peers' majority of expired promises is the
 * evidence that the old leader's grant is over.
 *
 * Without peers (vip_peers unset) the Lease elector's verdict is used as is; that is not this
 * module's concern.
 */
import type { LeaseView } from './lease/state.js';

/** What this node last learned from the Lease record, on its own monotonic clock. */
export interface LeaseObservation {
  /** holderIdentity named by the record; null when empty or unknown. */
  holderIdentity: string | null;
  /** Until when the record counts as live here: observedAt + leaseDuration (client-go), or our own Lease grant's end. */
  liveUntil: number;
}

export const NO_LEASE: LeaseObservation = { holderIdentity: null, liveUntil: Number.NEGATIVE_INFINITY };

/**
 * Converts the Lease elector's view into the peer core's input. `ownUntil` is the Lease elector's
 * current hold deadline when the record names us (its verdict's `until`).
 */
export function leaseObservation(view: LeaseView, self: string, ownUntil: number | undefined): LeaseObservation {
  switch (view.kind) {
    case 'held':
      return { holderIdentity: view.holderIdentity, liveUntil: view.expiresAt };
    case 'ours':
      return ownUntil === undefined ? NO_LEASE : { holderIdentity: self, liveUntil: ownUntil };
    default:
      return NO_LEASE;
  }
}

export interface PreferenceInputs {
  self: string;
  peers: readonly string[];
  lease: LeaseObservation;
  /** Last time a request from each peer arrived (local monotonic ms). */
  lastActive: Readonly<Record<string, number>>;
  electionTimeoutMs: number;
  /** Whether this node may hold at all (health gate, not shutting down). */
  selfEligible: boolean;
  now: number;
}

/**
 * The node the Lease steers promises to right now, or null when the Lease steers nothing.
 * Also returns until when this answer stands (for timers).
 */
export function leasePreference(p: PreferenceInputs): { node: string | null; until: number } {
  const { lease, now } = p;
  if (lease.holderIdentity === null || lease.liveUntil <= now || !p.peers.includes(lease.holderIdentity)) return { node: null, until: Number.POSITIVE_INFINITY };
  if (lease.holderIdentity === p.self) return p.selfEligible ? { node: p.self, until: lease.liveUntil } : { node: null, until: Number.POSITIVE_INFINITY };
  const activeUntil = (p.lastActive[lease.holderIdentity] ?? Number.NEGATIVE_INFINITY) + p.electionTimeoutMs;
  if (activeUntil <= now) return { node: null, until: Number.POSITIVE_INFINITY };
  return { node: lease.holderIdentity, until: Math.min(activeUntil, lease.liveUntil) };
}
