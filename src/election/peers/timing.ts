/**
 * Peer-voting settings and the durations derived from them. Pure.
 *
 * Clock assumption (the whole safety argument rests on it): every node's monotonic clock runs at a
 * rate within ±ρ of true time (ρ = `skew`, default 1 %), and keeps running while the process is
 * stopped (SIGSTOP) or restarted (CLOCK_MONOTONIC). Offsets between clocks never matter; only
 * durations measured on one clock are used. A suspended machine (VM pause, suspend-to-RAM) stops
 * CLOCK_MONOTONIC and is outside this assumption.
 *
 * Derived durations (see docs/election.md §3):
 *   P  promise   = E                     a voter's promise lasts E on the voter's clock
 *   D  grant     = ⌊(1−ρ)·(E/(1+ρ) − L)⌋ − 1   a leader's grant lasts D from the SEND time of the
 *                                       request a majority acknowledged, on the leader's clock
 *   so D/(1−ρ) + L < P/(1+ρ): the grant, plus the linger L after it, ends in true time before the
 *   earliest true moment any promise backing it can run out.
 */
import { RuleError } from '../../util/rule-error.js';

export interface PeerTiming {
  /** H: how often a leader renews its promises. */
  heartbeatMs: number;
  /** E: a promise's length on the voter's clock, the follower's failure-detection time and the boot quiet period. */
  electionTimeoutMs: number;
  /** L: how long the VIP may still be answered after a deadline or a standby verdict (0 for the agent responder). */
  lingerMs: number;
  /** ρ: bound on any clock's rate error against true time (0.01 = 1 %). */
  skew: number;
}

/** Everything the core needs, already validated. */
export interface PeerConfig extends PeerTiming {
  /** vip_nodename: this node's id; must be one of `peers`. */
  self: string;
  /** Names of all configured peers including self (vip_peers). Majority is counted over this list. */
  peers: readonly string[];
  /** vip_peer_bootstrap: hold with one's own promise alone until any other peer is heard from. */
  bootstrap: boolean;
}

export interface DerivedTiming {
  /** D */
  grantMs: number;
  /** Random extra wait before a follower campaigns after its leader went silent: uniform in [0, E/4). */
  jitterMs: number;
  /** A (pre)candidate gives up a round after this long without a majority (E/8, at least 20 ms). */
  roundTimeoutMs: number;
  /**
   * After a release that names a successor, the other followers wait this long before they may
   * campaign (E/2): the successor needs two round trips, and a process that started a moment ago
   * or a loaded node can take longer than one round timeout to answer; if it died, the others
   * lose E/2.
   */
  transferHeadStartMs: number;
  /** A lone bootstrap node waits this long after announcing its claim for anyone to answer (E/2). */
  claimWindowMs: number;
  /** A leader that stepped down waits this long (its clock) before releasing promises: L measured conservatively. */
  releaseDelayMs: number;
  quorum: number;
}

export type PeerSetting = 'vip_peer_heartbeat_ms' | 'vip_peer_election_timeout_ms' | 'vip_peers' | 'vip_nodename' | 'linger' | 'skew';

export class PeerConfigError extends RuleError<PeerSetting> {
  override readonly name = 'PeerConfigError';
}

export function grantMs(t: PeerTiming): number {
  return Math.floor((1 - t.skew) * (t.electionTimeoutMs / (1 + t.skew) - t.lingerMs)) - 1;
}

export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Checks every rule; the message names the settings, the values and the rule. */
export function checkPeerConfig(c: PeerConfig): { ok: true; derived: DerivedTiming } | { ok: false; error: PeerConfigError } {
  // `setting=value: rule` when the rule is about one value; `value` undefined when about a list.
  const fail = (settings: [PeerSetting, ...PeerSetting[]], value: string | undefined, rule: string, sep = ': ') => ({
    ok: false as const,
    error: new PeerConfigError(settings, value, rule, value === undefined ? `${settings[0]} ${rule}` : `${settings[0]}=${value}${sep}${rule}`),
  });
  const H = c.heartbeatMs;
  const E = c.electionTimeoutMs;
  if (!Number.isFinite(H) || H < 10 || H > 10_000) return fail(['vip_peer_heartbeat_ms'], String(H), 'must be between 10 and 10000');
  if (!Number.isFinite(E) || E > 120_000) return fail(['vip_peer_election_timeout_ms'], String(E), 'must be at most 120000');
  if (!Number.isFinite(c.lingerMs) || c.lingerMs < 0) return fail(['linger'], String(c.lingerMs), 'must be >= 0');
  if (!Number.isFinite(c.skew) || c.skew < 0 || c.skew > 0.1) return fail(['skew'], String(c.skew), 'must be between 0 and 0.1');
  const D = grantMs(c);
  // A grant must survive one lost heartbeat, or a single dropped packet moves the VIP.
  if (D < 2 * H) {
    return fail(
      ['vip_peer_election_timeout_ms', 'vip_peer_heartbeat_ms', 'linger'],
      String(E),
      `is too short for vip_peer_heartbeat_ms=${H} and linger ${c.lingerMs} ms: the grant (E·(1−ρ)/(1+ρ) − L = ${D} ms) must be at least 2 × heartbeat (${2 * H} ms)`,
      ' ',
    );
  }
  if (c.peers.length === 0) return fail(['vip_peers'], undefined, 'is empty');
  if (new Set(c.peers).size !== c.peers.length) return fail(['vip_peers'], undefined, `names a node twice: ${c.peers.join(',')}`);
  for (const p of c.peers) {
    if (p.length === 0 || Buffer.byteLength(p, 'utf8') > 253) return fail(['vip_peers'], undefined, `has a node name "${p}" that is not 1..253 bytes`);
  }
  if (!c.peers.includes(c.self)) return fail(['vip_nodename', 'vip_peers'], c.self, `is not in vip_peers (${c.peers.join(',')})`, ' ');
  return {
    ok: true,
    derived: {
      grantMs: D,
      jitterMs: Math.max(1, Math.floor(E / 4)),
      roundTimeoutMs: Math.max(20, Math.floor(E / 8)),
      transferHeadStartMs: Math.floor(E / 2),
      releaseDelayMs: Math.ceil(c.lingerMs * (1 + c.skew)),
      claimWindowMs: Math.floor(E / 2),
      quorum: quorumOf(c.peers.length),
    },
  };
}

export function validatePeerConfig(c: PeerConfig): DerivedTiming {
  const r = checkPeerConfig(c);
  if (!r.ok) throw r.error;
  return r.derived;
}
