/**
 * The peer elector's core: a deterministic state machine, `step(state, input) → { state, effects }`.
 * No timers, sockets or clocks: time arrives in every input (`now`, monotonic ms of this node),
 * randomness comes from a PRNG carried in the state. Same state + same input → same output.
 *
 * It answers one question: may this node hold the VIP, and until when. The protocol and its safety
 * argument are in docs/election.md; in short:
 *
 * Invariants (what the simulation checks at every step)
 * - PROMISE: when a node acknowledges a vote or heartbeat of X at its local time t, it promises X
 *   not to acknowledge anyone else until t + E (its clock), across terms. Only X's release, or the
 *   promise running out, ends it. A restarted process acknowledges nothing for E (boot quiet), so a
 *   promise it made before dying is kept too.
 * - GRANT: a leader holds until s + D, where s is the SEND time (its clock) of the newest request
 *   that a majority of the configured peers (itself included) acknowledged, and
 *   D/(1−ρ) + L < E/(1+ρ). Every acknowledger's promise outlives the grant plus the linger L, so
 *   two grants never overlap: two majorities share a node, and no node promises two at once.
 * - RELEASE: a leader that steps down sends a release only L (scaled for skew) after its standby
 *   verdict, and never again counts an acknowledgement of a round before it.
 * - Terms, PreVote and stickiness only keep elections quick and undisruptive; safety rests on
 *   promises alone, so votes need not be persisted.
 * - Bootstrap (explicit setting, the first `kubeadm init`): a node alone may claim with a majority
 *   of one, but only after listening for 2E without hearing any peer. Holding that way, it keeps
 *   the majority of one until acknowledgements from a real majority arrive (then normal), and
 *   steps down on any sign of a rival (another leader's heartbeat, a higher term, a refusal
 *   because the peer promised someone else). Safe as long as the bootstrap node's heartbeats reach
 *   the joiners (docs/election.md §6).
 */
import type { Verdict } from '../types.js';
import { leasePreference, NO_LEASE, type LeaseObservation } from '../steering.js';
import type { Body, Epoch, PeerMessage, RejectReason } from './messages.js';
import { validatePeerConfig, type DerivedTiming, type PeerConfig } from './timing.js';

export interface PromiseRec {
  to: string;
  /** Local time the promise runs out. */
  until: number;
  /** Requester's epoch and round the promise was last renewed for (matched by releases). */
  epoch: Epoch;
  round: number;
  /** A candidate's vote for itself, dropped when it gives the candidacy up (it can never be used). */
  releasable: boolean;
}

export type Role =
  | { kind: 'follower' }
  | { kind: 'precandidate'; term: number; startedAt: number; granted: readonly string[]; rejected: readonly string[] }
  | { kind: 'candidate'; startedAt: number; round: number; granted: Readonly<Record<string, number>>; rejected: readonly string[] }
  | {
      kind: 'leader';
      since: number;
      /** Newest acknowledged round per peer in this term (self: its last heartbeat). */
      acks: Readonly<Record<string, number>>;
      /** What each peer said in its newest acknowledgement: may it take over, and does its own API server answer. */
      successors: Readonly<Record<string, Successor>>;
      until: number;
      nextHeartbeatAt: number;
    }
  | { kind: 'stopped' };

/** A follower as a transfer target: its API server answers, it is eligible only because none does, or not at all. */
export type Successor = 'api' | 'eligible' | 'no';

export type StepDownReason = 'quorum-lost' | 'higher-term' | 'unhealthy' | 'shutdown' | 'bootstrap-rival';

export type CoreEvent =
  | { kind: 'prevote'; term: number }
  | { kind: 'campaign'; term: number }
  | { kind: 'won'; term: number; until: number }
  | { kind: 'round-failed'; stage: 'prevote' | 'vote'; term: number }
  | { kind: 'step-down'; term: number; reason: StepDownReason }
  | { kind: 'released'; term: number; transferTo: string | null }
  | { kind: 'bootstrap-ended'; why: 'peer-heard' | 'majority' | 'rival' }
  | { kind: 'stopped' };

export interface PeerState {
  readonly cfg: PeerConfig;
  readonly d: DerivedTiming;
  readonly epoch: Epoch;
  readonly bootAt: number;
  /** Latest time seen; inputs never move time backwards. */
  now: number;
  term: number;
  votedFor: string | null;
  role: Role;
  promise: PromiseRec | null;
  /** Leader we follow in `term` (null: none known). */
  leader: string | null;
  lastLeaderContact: number;
  /** The leader we are sticky to holds by the bootstrap rule: nothing else (not the Lease) backs its grant. */
  stickyBootstrap: boolean;
  /** Last time a request (prevote/vote/heartbeat) arrived from each peer. */
  lastActive: Readonly<Record<string, number>>;
  /** Newest release per peer: requests at or before it are refused. */
  released: Readonly<Record<string, { epoch: Epoch; round: number }>>;
  bootstrap: 'active' | 'ended' | 'off';
  lease: LeaseObservation;
  /** The health gate: may this node hold (its API server answers, or no other one does). */
  eligible: boolean;
  /** Its own API server answers: what makes it a transfer target (a node eligible only because no API server answers is not). */
  apiHealthy: boolean;
  shutdown: boolean;
  pendingRelease: { at: number; round: number; transferTo: string | null } | null;
  /** Extra wait before the next campaign (redrawn after each attempt). */
  jitter: number;
  /** No campaign before this (after a failed round or a release). */
  retryAt: number;
  /** Until when this node is the named successor of a leader that handed over (leader transfer). */
  handedOverUntil: number;
  verdict: Verdict;
  leaseWanted: boolean;
  rng: number;
}

export type Input =
  | { type: 'tick'; now: number }
  | { type: 'message'; now: number; msg: PeerMessage }
  | { type: 'lease'; now: number; lease: LeaseObservation }
  /** The health gate changed; `apiHealthy` (default: `eligible`) is the local API server alone. */
  | { type: 'eligible'; now: number; eligible: boolean; apiHealthy?: boolean }
  /** Start a pre-vote now if the rules allow one (etcd's MsgHup): for tests and operators. */
  | { type: 'campaign'; now: number }
  /** SIGTERM: step down, release after L, then stop. */
  | { type: 'shutdown'; now: number };

export type Effect =
  | { type: 'send'; msg: PeerMessage }
  | { type: 'verdict'; verdict: Verdict }
  /** Whether this node should acquire/renew the Lease (true exactly while it is the peer leader). */
  | { type: 'lease-wanted'; wanted: boolean }
  | { type: 'event'; event: CoreEvent };

export interface StepResult {
  state: PeerState;
  effects: Effect[];
}

const NEG = Number.NEGATIVE_INFINITY;
const POS = Number.POSITIVE_INFINITY;

export function initPeer(cfg: PeerConfig, now: number, epoch: Epoch, seed: number): PeerState {
  const d = validatePeerConfig(cfg);
  const s: PeerState = {
    cfg,
    d,
    epoch,
    bootAt: now,
    now,
    term: 0,
    votedFor: null,
    role: { kind: 'follower' },
    promise: null,
    leader: null,
    lastLeaderContact: NEG,
    stickyBootstrap: false,
    lastActive: {},
    released: {},
    bootstrap: cfg.bootstrap ? 'active' : 'off',
    lease: NO_LEASE,
    eligible: true,
    apiHealthy: true,
    shutdown: false,
    pendingRelease: null,
    jitter: 0,
    retryAt: NEG,
    handedOverUntil: NEG,
    verdict: { kind: 'standby', reason: 'starting' },
    leaseWanted: false,
    rng: seed >>> 0 || 0x9e3779b9,
  };
  s.jitter = rand(s) * d.jitterMs;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Queries (pure functions of the state)

export function isHolding(s: PeerState, now: number = s.now): boolean {
  return s.role.kind === 'leader' && now < s.role.until;
}

/** What `vipd status` shows of a peer core: read-only, times on the core's clock. */
export interface PeerSnapshot {
  self: string;
  term: number;
  role: Role['kind'];
  leader: string | null;
  /** Leader only: its grant's deadline. */
  leaderUntil?: number;
  promise: { to: string; until: number } | null;
  lastActive: Readonly<Record<string, number>>;
}

export function peerSnapshot(s: PeerState): PeerSnapshot {
  const snap: PeerSnapshot = {
    self: s.cfg.self,
    term: s.term,
    role: s.role.kind,
    leader: s.role.kind === 'leader' ? s.cfg.self : s.leader,
    promise: s.promise ? { to: s.promise.to, until: s.promise.until } : null,
    lastActive: { ...s.lastActive },
  };
  if (s.role.kind === 'leader') snap.leaderUntil = s.role.until;
  return snap;
}

function bootQuiet(s: PeerState): boolean {
  return s.now < s.bootAt + s.cfg.electionTimeoutMs;
}

function livePromise(s: PeerState): PromiseRec | null {
  return s.promise !== null && s.now < s.promise.until ? s.promise : null;
}

function quorum(s: PeerState): number {
  return s.bootstrap === 'active' ? 1 : s.d.quorum;
}

function preference(s: PeerState): { node: string | null; until: number } {
  return leasePreference({
    self: s.cfg.self,
    peers: s.cfg.peers,
    lease: s.lease,
    lastActive: s.lastActive,
    electionTimeoutMs: s.cfg.electionTimeoutMs,
    selfEligible: s.eligible && !s.shutdown,
    now: s.now,
  });
}

/** Why this node would refuse to promise `c` now, or null. Stickiness applies to elections only. */
function refusal(s: PeerState, c: string, election: boolean): RejectReason | null {
  if (bootQuiet(s) || s.shutdown || s.pendingRelease !== null || s.role.kind === 'stopped') return 'quiet';
  const p = livePromise(s);
  if (p !== null && p.to !== c && !(p.to === s.cfg.self && p.releasable)) return 'promised';
  const sticky = s.leader !== null && s.leader !== c && s.leader !== s.cfg.self && s.now < s.lastLeaderContact + s.cfg.electionTimeoutMs;
  // A bootstrap leader's grant rests on everyone staying sticky to it; the Lease cannot override that.
  if (election && sticky && s.stickyBootstrap) return 'sticky';
  // The Lease steers elections only: a working leader's heartbeats are acknowledged whatever the
  // Lease says, so the Lease never moves the VIP away from a healthy leader.
  const pref = election ? preference(s).node : null;
  if (pref !== null && pref !== c) return 'lease';
  if (election && pref === null && sticky) return 'sticky';
  return null;
}

/**
 * The node the others will vote for first: the one the Lease names, or the successor a leader
 * handed over to. It campaigns without the random back-off and retries a failed round sooner
 * (a voter may refuse it until the old leader's release reaches that voter too).
 */
function goesFirst(s: PeerState): boolean {
  return preference(s).node === s.cfg.self || s.now < s.handedOverUntil;
}

/** Until when something other than randomness keeps this follower from campaigning. */
function blockedUntil(s: PeerState): number {
  let b = s.bootAt + s.cfg.electionTimeoutMs * (s.bootstrap === 'active' ? 2 : 1);
  const p = livePromise(s);
  if (p !== null && p.to !== s.cfg.self) b = Math.max(b, p.until);
  if (s.leader !== null && s.leader !== s.cfg.self) b = Math.max(b, s.lastLeaderContact + s.cfg.electionTimeoutMs);
  const pref = preference(s);
  if (pref.node !== null && pref.node !== s.cfg.self) b = Math.max(b, pref.until);
  return b;
}

/** When this follower will start a pre-vote if nothing changes (POS: never). */
export function nextCampaignAt(s: PeerState): number {
  if (s.role.kind !== 'follower' || !s.eligible || s.shutdown || s.pendingRelease !== null) return POS;
  return Math.max(blockedUntil(s) + (goesFirst(s) ? 0 : s.jitter), s.retryAt);
}

/** The next local time at which a tick changes something (the driver arms one timer for it). */
export function nextWakeup(s: PeerState): number {
  let w = POS;
  const r = s.role;
  if (r.kind === 'leader') w = Math.min(w, r.nextHeartbeatAt, r.until);
  if (r.kind === 'precandidate' || r.kind === 'candidate') {
    w = Math.min(w, r.startedAt + (r.kind === 'precandidate' && s.bootstrap === 'active' ? s.d.claimWindowMs : s.d.roundTimeoutMs));
  }
  if (r.kind === 'follower') w = Math.min(w, nextCampaignAt(s));
  if (s.promise !== null) w = Math.min(w, s.promise.until);
  if (s.pendingRelease !== null) w = Math.min(w, s.pendingRelease.at);
  return w;
}

export function verdictOf(s: PeerState): Verdict {
  const r = s.role;
  if (r.kind === 'leader' && s.now < r.until) {
    return { kind: 'hold', until: r.until, reason: s.bootstrap === 'active' ? 'peer bootstrap (single node)' : 'peer majority' };
  }
  const reason = r.kind === 'leader' ? 'grant expired' : r.kind;
  return s.leader !== null && s.leader !== s.cfg.self ? { kind: 'standby', leader: s.leader, reason } : { kind: 'standby', reason };
}

// ---------------------------------------------------------------------------------------------
// step

export function step(prev: PeerState, input: Input): StepResult {
  const s = cloneState(prev);
  const fx: Effect[] = [];
  s.now = Math.max(prev.now, input.now);
  if (s.role.kind === 'stopped') return { state: s, effects: fx };

  expire(s, fx);
  switch (input.type) {
    case 'tick':
      break;
    case 'message':
      onMessage(s, fx, input.msg);
      break;
    case 'lease':
      s.lease = input.lease;
      break;
    case 'eligible':
      s.eligible = input.eligible;
      s.apiHealthy = input.apiHealthy ?? input.eligible;
      if (s.role.kind === 'leader') handOverIfUnhealthy(s, fx);
      else if (!input.eligible && s.role.kind !== 'follower') abandon(s, fx);
      break;
    case 'campaign':
      if (s.role.kind === 'follower' && s.eligible && !s.shutdown && s.pendingRelease === null && s.now >= blockedUntil(s)) startPrevote(s, fx);
      break;
    case 'shutdown':
      if (!s.shutdown) {
        s.shutdown = true;
        if (s.role.kind === 'leader') stepDown(s, fx, 'shutdown');
        else if (s.role.kind !== 'follower') abandon(s, fx);
        if (s.pendingRelease === null && (s.role as Role).kind !== 'stopped') stop(s, fx);
      }
      break;
  }
  if ((s.role as Role).kind !== 'stopped') drive(s, fx);
  publish(s, fx);
  return { state: s, effects: fx };
}

function cloneState(p: PeerState): PeerState {
  const role = p.role;
  let r: Role;
  switch (role.kind) {
    case 'precandidate':
      r = { ...role, granted: [...role.granted], rejected: [...role.rejected] };
      break;
    case 'candidate':
      r = { ...role, granted: { ...role.granted }, rejected: [...role.rejected] };
      break;
    case 'leader':
      r = { ...role, acks: { ...role.acks } };
      break;
    default:
      r = role;
  }
  return { ...p, role: r };
}

function rand(s: PeerState): number {
  // mulberry32: small, fast, good enough for back-off jitter.
  s.rng = (s.rng + 0x6d2b79f5) >>> 0;
  let t = s.rng;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function send(s: PeerState, fx: Effect[], to: string, term: number, body: Body): void {
  fx.push({ type: 'send', msg: { from: s.cfg.self, to, epoch: s.epoch, term, body } });
}

function broadcast(s: PeerState, fx: Effect[], term: number, body: Body): void {
  for (const p of s.cfg.peers) if (p !== s.cfg.self) send(s, fx, p, term, body);
}

function event(fx: Effect[], e: CoreEvent): void {
  fx.push({ type: 'event', event: e });
}

/** Time-driven transitions that must happen before anything else looks at the state. */
function expire(s: PeerState, fx: Effect[]): void {
  if (s.promise !== null && s.now >= s.promise.until) s.promise = null;
  const r = s.role;
  if (r.kind === 'leader' && s.now >= r.until) stepDown(s, fx, 'quorum-lost');
  if (r.kind === 'precandidate' && s.bootstrap === 'active') {
    // Nobody answered the announcement within the claim window: we are alone. The claim must
    // follow the announcement closely (those who heard it are sticky to us for only E); after a
    // freeze, announce again instead.
    if (s.now >= r.startedAt + s.d.claimWindowMs) {
      if (s.now < r.startedAt + (3 * s.cfg.electionTimeoutMs) / 4) startVote(s, fx);
      else abandon(s, fx);
    }
  } else if ((r.kind === 'precandidate' || r.kind === 'candidate') && s.now >= r.startedAt + s.d.roundTimeoutMs) abandon(s, fx);
  if (s.pendingRelease !== null && s.now >= s.pendingRelease.at) sendRelease(s, fx);
}

/** Actions that follow from the (updated) state: heartbeats and campaigns. */
function drive(s: PeerState, fx: Effect[]): void {
  const r = s.role;
  if (r.kind === 'leader' && s.now >= r.nextHeartbeatAt) {
    const round = s.now;
    s.promise = { to: s.cfg.self, until: round + s.cfg.electionTimeoutMs, epoch: s.epoch, round, releasable: false };
    s.role = { ...r, acks: { ...r.acks, [s.cfg.self]: round }, nextHeartbeatAt: round + s.cfg.heartbeatMs };
    recomputeUntil(s);
    broadcast(s, fx, s.term, { type: 'heartbeat', round, bootstrap: s.bootstrap === 'active' });
  }
  if (s.role.kind === 'follower' && s.now >= nextCampaignAt(s)) {
    // A successor named in a release asks for votes at once (Raft's TimeoutNow): the pre-vote only
    // keeps a node that lost touch from disrupting a live leader, and the leader has just left.
    // Safety still rests on the promises, so this saves a round trip and nothing else.
    if (s.now < s.handedOverUntil && s.bootstrap !== 'active') startVote(s, fx);
    else startPrevote(s, fx);
  }
}

function startPrevote(s: PeerState, fx: Effect[]): void {
  s.jitter = rand(s) * s.d.jitterMs;
  const term = s.term + 1;
  s.role = { kind: 'precandidate', term, startedAt: s.now, granted: [s.cfg.self], rejected: [] };
  event(fx, { kind: 'prevote', term });
  if (s.cfg.peers.length === 1) startVote(s, fx);
  else broadcast(s, fx, term, { type: 'prevote', bootstrap: s.bootstrap === 'active' });
}

function startVote(s: PeerState, fx: Effect[]): void {
  s.term += 1;
  s.votedFor = s.cfg.self;
  s.leader = null;
  const round = s.now;
  s.promise = { to: s.cfg.self, until: round + s.cfg.electionTimeoutMs, epoch: s.epoch, round, releasable: true };
  s.role = { kind: 'candidate', startedAt: s.now, round, granted: { [s.cfg.self]: round }, rejected: [] };
  event(fx, { kind: 'campaign', term: s.term });
  if (quorum(s) <= 1) becomeLeader(s, fx);
  else broadcast(s, fx, s.term, { type: 'vote', round });
}

function becomeLeader(s: PeerState, fx: Effect[]): void {
  const r = s.role;
  if (r.kind !== 'candidate') return;
  s.leader = s.cfg.self;
  if (s.promise !== null && s.promise.to === s.cfg.self) s.promise = { ...s.promise, releasable: false };
  s.role = { kind: 'leader', since: s.now, acks: { ...r.granted }, successors: {}, until: NEG, nextHeartbeatAt: s.now };
  recomputeUntil(s);
  event(fx, { kind: 'won', term: s.term, until: (s.role as { until: number }).until });
}

/** until = (q-th newest acknowledged round) + D; never moves backwards within a holding. */
function recomputeUntil(s: PeerState): void {
  const r = s.role;
  if (r.kind !== 'leader') return;
  const rounds = s.cfg.peers.map((p) => r.acks[p] ?? NEG).sort((a, b) => b - a);
  const base = rounds[quorum(s) - 1] ?? NEG;
  s.role = { ...r, until: Math.max(base + s.d.grantMs, r.until) };
}

/** The bootstrap leader has a real majority now: from here on it counts like everyone else. */
function maybeEndBootstrap(s: PeerState, fx: Effect[]): void {
  const r = s.role;
  if (s.bootstrap !== 'active' || r.kind !== 'leader') return;
  const fresh = s.cfg.peers.filter((p) => (r.acks[p] ?? NEG) >= r.nextHeartbeatAt - s.cfg.heartbeatMs).length;
  if (fresh >= s.d.quorum) {
    s.bootstrap = 'ended';
    event(fx, { kind: 'bootstrap-ended', why: 'majority' });
  }
}

/**
 * Leader transfer (Raft's TimeoutNow, by another road): a leader that steps down while it still
 * reaches its peers (SIGTERM, its API server unhealthy) names in its release a follower that
 * acknowledged one of its newest rounds and said it may hold, preferring one whose own API server
 * answers (for `unhealthy`, only such a one). That follower campaigns the moment the release frees
 * its promise; the others wait E/2 first, so they do not split the vote.
 * Safety is untouched: the target still needs a majority of promises, which the release frees
 * only L after the old leader stopped answering.
 */
function transferTarget(s: PeerState, reason: StepDownReason): string | null {
  const r = s.role;
  if (r.kind !== 'leader' || (reason !== 'shutdown' && reason !== 'unhealthy')) return null;
  const rank = (p: string): number => (r.successors[p] === 'api' ? 2 : r.successors[p] === 'eligible' && reason === 'shutdown' ? 1 : 0);
  let best: string | null = null;
  for (const p of s.cfg.peers) {
    if (p === s.cfg.self || rank(p) === 0) continue;
    const ack = r.acks[p] ?? NEG;
    // Fresh: it acknowledged one of the last two rounds, so it is up and reachable now.
    if (ack < r.nextHeartbeatAt - 2 * s.cfg.heartbeatMs) continue;
    if (best === null || rank(p) > rank(best) || (rank(p) === rank(best) && ack > (r.acks[best] ?? NEG))) best = p;
  }
  return best;
}

/**
 * A leader the health gate closed on hands the VIP over, but only to a follower that says its own
 * API server answers, and stays until one does. Stepping down to nobody (or to a node eligible only
 * because it saw no API server either) is what made the VIP go A→B→A when every API server went
 * away one after another: each holder left on a probe that another answered, just before that one
 * failed too. Called on the gate's change and on every acknowledgement (a follower recovering).
 */
function handOverIfUnhealthy(s: PeerState, fx: Effect[]): void {
  if (s.role.kind !== 'leader' || s.eligible) return;
  if (transferTarget(s, 'unhealthy') !== null) stepDown(s, fx, 'unhealthy');
}

/** A leader stops: standby at once, release after the linger, never count old rounds again. */
function stepDown(s: PeerState, fx: Effect[], reason: StepDownReason): void {
  if (s.role.kind !== 'leader') return;
  const transferTo = transferTarget(s, reason);
  s.role = { kind: 'follower' };
  if (s.leader === s.cfg.self) s.leader = null;
  event(fx, { kind: 'step-down', term: s.term, reason });
  s.pendingRelease = { at: s.now + s.d.releaseDelayMs, round: s.now, transferTo };
  if (s.d.releaseDelayMs === 0) sendRelease(s, fx);
}

function sendRelease(s: PeerState, fx: Effect[]): void {
  const pr = s.pendingRelease;
  if (pr === null) return;
  s.pendingRelease = null;
  // The successor last: by the time its pre-vote reaches a voter, that voter has its release too.
  const release: Body = { type: 'release', round: pr.round, transferTo: pr.transferTo };
  for (const p of s.cfg.peers) if (p !== s.cfg.self && p !== pr.transferTo) send(s, fx, p, s.term, release);
  if (pr.transferTo !== null) send(s, fx, pr.transferTo, s.term, release);
  if (s.promise !== null && s.promise.to === s.cfg.self) s.promise = null;
  event(fx, { kind: 'released', term: s.term, transferTo: pr.transferTo });
  s.jitter = rand(s) * s.d.jitterMs;
  s.retryAt = s.now + s.jitter;
  if (s.shutdown) stop(s, fx);
}

function stop(s: PeerState, fx: Effect[]): void {
  s.role = { kind: 'stopped' };
  s.promise = null;
  event(fx, { kind: 'stopped' });
}

/** A (pre)candidate gives up this round; its own vote can never be used, so it is dropped. */
function abandon(s: PeerState, fx: Effect[]): void {
  const r = s.role;
  if (r.kind !== 'precandidate' && r.kind !== 'candidate') return;
  event(fx, { kind: 'round-failed', stage: r.kind === 'precandidate' ? 'prevote' : 'vote', term: r.kind === 'precandidate' ? r.term : s.term });
  s.role = { kind: 'follower' };
  if (s.promise !== null && s.promise.to === s.cfg.self && s.promise.releasable) s.promise = null;
  // Back off like a fresh election timeout; the node the Lease names retries sooner, since it
  // is the one the others will vote for once their promises run out.
  const H = s.cfg.heartbeatMs;
  const E = s.cfg.electionTimeoutMs;
  s.retryAt = s.now + (goesFirst(s) ? H / 2 + (rand(s) * H) / 2 : E / 4 + (rand(s) * E) / 4);
}

/** Adopt a higher term: whatever we were doing in the old one is over. */
function adoptTerm(s: PeerState, fx: Effect[], term: number): void {
  if (term <= s.term) return;
  if (s.role.kind === 'leader') stepDown(s, fx, 'higher-term');
  else abandon(s, fx);
  s.term = term;
  s.votedFor = null;
  s.leader = null;
}

function promise(s: PeerState, to: string, epoch: Epoch, round: number): void {
  s.promise = { to, until: s.now + s.cfg.electionTimeoutMs, epoch, round, releasable: false };
}

function releasedRound(s: PeerState, from: string, epoch: Epoch, round: number): boolean {
  const r = s.released[from];
  return r !== undefined && r.epoch === epoch && round <= r.round;
}

// ---------------------------------------------------------------------------------------------
// messages

function onMessage(s: PeerState, fx: Effect[], m: PeerMessage): void {
  const self = s.cfg.self;
  if (m.to !== self || m.from === self || !s.cfg.peers.includes(m.from)) return;
  if (!Number.isSafeInteger(m.term) || m.term < 0) return;

  const b = m.body;
  if (s.bootstrap === 'active') {
    // Any peer heard before we hold means we are not alone: elect normally.
    if (s.role.kind !== 'leader') {
      // Someone else is up: this is not a lone first node, so elect normally.
      s.bootstrap = 'ended';
      event(fx, { kind: 'bootstrap-ended', why: 'peer-heard' });
    } else if (b.type === 'heartbeat' || m.term > s.term || (b.type === 'heartbeat-resp' && b.reason === 'promised')) {
      s.bootstrap = 'ended';
      event(fx, { kind: 'bootstrap-ended', why: 'rival' });
      stepDown(s, fx, 'bootstrap-rival');
    }
  }

  if (b.type === 'prevote' || b.type === 'vote' || b.type === 'heartbeat') {
    s.lastActive = { ...s.lastActive, [m.from]: s.now };
    // A leader heard during our quiet period, or a bootstrap node announcing or holding its claim
    // (answered or not), makes us sticky to it: we must not campaign or vote against it.
    const bootClaim = (b.type === 'prevote' || b.type === 'heartbeat') && b.bootstrap;
    const heardLeader = bootQuiet(s) && b.type === 'heartbeat' && m.term >= s.term;
    if (heardLeader || bootClaim) {
      if (s.leader === null || s.leader === m.from || s.now >= s.lastLeaderContact + s.cfg.electionTimeoutMs) {
        s.leader = m.from;
        s.lastLeaderContact = s.now;
        s.stickyBootstrap = bootClaim;
      }
    }
    // A freshly started process says nothing: a joiner's refusal must not end a bootstrap leader's
    // grant before the joiner can acknowledge it.
    if (bootQuiet(s)) return;
  }
  switch (b.type) {
    case 'prevote':
      return onPrevote(s, fx, m);
    case 'vote':
      return onVote(s, fx, m, b.round);
    case 'heartbeat':
      return onHeartbeat(s, fx, m, b.round, b.bootstrap);
    case 'release':
      return onRelease(s, fx, m, b.round, b.transferTo);
    case 'prevote-resp':
      return onPrevoteResp(s, fx, m, b.granted);
    case 'vote-resp':
      return onVoteResp(s, fx, m, b);
    case 'heartbeat-resp':
      return onHeartbeatResp(s, fx, m, b);
  }
}

function onPrevote(s: PeerState, fx: Effect[], m: PeerMessage): void {
  // The pre-vote binds nobody and never moves our term.
  const why = m.term <= s.term ? 'stale-term' : refusal(s, m.from, true);
  if (why === null) send(s, fx, m.from, m.term, { type: 'prevote-resp', granted: true, reason: 'none' });
  else send(s, fx, m.from, s.term, { type: 'prevote-resp', granted: false, reason: why });
}

function onVote(s: PeerState, fx: Effect[], m: PeerMessage, round: number): void {
  const reject = (reason: RejectReason) =>
    send(s, fx, m.from, s.term, { type: 'vote-resp', granted: false, reason, reqEpoch: m.epoch, round });
  if (m.term < s.term) return reject('stale-term');
  if (releasedRound(s, m.from, m.epoch, round)) return reject('released');
  // Refusing does not adopt the term: a node bound to a live leader must not be pushed to a term
  // that makes it reject that leader's heartbeats (Raft's "in lease" rule).
  const why = refusal(s, m.from, true);
  if (why !== null) return reject(why);
  adoptTerm(s, fx, m.term);
  if (s.pendingRelease !== null) return reject('quiet');
  if (s.votedFor !== null && s.votedFor !== m.from) return reject('voted');
  if (s.role.kind !== 'follower') abandon(s, fx);
  s.votedFor = m.from;
  promise(s, m.from, m.epoch, round);
  send(s, fx, m.from, s.term, { type: 'vote-resp', granted: true, reason: 'none', reqEpoch: m.epoch, round });
}

function onHeartbeat(s: PeerState, fx: Effect[], m: PeerMessage, round: number, bootstrap: boolean): void {
  const reject = (reason: RejectReason) =>
    send(s, fx, m.from, s.term, { type: 'heartbeat-resp', granted: false, reason, reqEpoch: m.epoch, round, ...successorReport(s) });
  if (m.term < s.term) return reject('stale-term');
  if (releasedRound(s, m.from, m.epoch, round)) return reject('released');
  const why = refusal(s, m.from, false);
  if (why !== null) return reject(why);
  adoptTerm(s, fx, m.term);
  if (s.pendingRelease !== null) return reject('quiet');
  // Same term: the sender won it, so any candidacy of ours in it is over.
  if (s.role.kind === 'precandidate' || s.role.kind === 'candidate') abandon(s, fx);
  s.leader = m.from;
  s.lastLeaderContact = s.now;
  s.stickyBootstrap = bootstrap;
  promise(s, m.from, m.epoch, round);
  send(s, fx, m.from, s.term, { type: 'heartbeat-resp', granted: true, reason: 'none', reqEpoch: m.epoch, round, ...successorReport(s) });
}

/** What this node tells a leader about itself as a successor (not while it is on its way out). */
function successorReport(s: PeerState): { eligible: boolean; apiHealthy: boolean } {
  const eligible = s.eligible && !s.shutdown;
  return { eligible, apiHealthy: eligible && s.apiHealthy };
}

function onRelease(s: PeerState, _fx: Effect[], m: PeerMessage, round: number, transferTo: string | null): void {
  // The sender has given up (shutdown, health, lost majority): the Lease must not steer us to it.
  s.lastActive = { ...s.lastActive, [m.from]: NEG };
  const prev = s.released[m.from];
  if (prev === undefined || prev.epoch !== m.epoch || prev.round < round) {
    s.released = { ...s.released, [m.from]: { epoch: m.epoch, round } };
  }
  const p = s.promise;
  if (p !== null && p.to === m.from && p.epoch === m.epoch && p.round <= round) {
    s.promise = null;
    // The successor goes at once; when someone else is named, give it a head start.
    if (transferTo === s.cfg.self) s.handedOverUntil = s.now + s.cfg.electionTimeoutMs;
    const first = transferTo === s.cfg.self || (transferTo === null && preference(s).node === s.cfg.self);
    s.retryAt = s.now + (first ? 0 : s.jitter + (transferTo !== null ? s.d.transferHeadStartMs : 0));
  }
  if (s.leader === m.from) {
    s.leader = null;
    s.lastLeaderContact = NEG;
  }
}

function onPrevoteResp(s: PeerState, fx: Effect[], m: PeerMessage, granted: boolean): void {
  const r = s.role;
  if (!granted && m.term > s.term) {
    // Someone is ahead: catch up so our next pre-vote can succeed. A leader ignores late answers
    // to an old campaign; a voter ahead of it will say so in its heartbeat response.
    if (r.kind !== 'leader') adoptTerm(s, fx, m.term);
    return;
  }
  if (r.kind !== 'precandidate') return;
  if (granted) {
    if (m.term !== r.term || r.granted.includes(m.from)) return;
    const g = [...r.granted, m.from];
    s.role = { ...r, granted: g };
    if (g.length >= quorum(s)) startVote(s, fx);
  } else {
    if (r.rejected.includes(m.from)) return;
    const rej = [...r.rejected, m.from];
    s.role = { ...r, rejected: rej };
    if (rej.length > s.cfg.peers.length - quorum(s)) abandon(s, fx);
  }
}

function onVoteResp(s: PeerState, fx: Effect[], m: PeerMessage, b: Extract<Body, { type: 'vote-resp' }>): void {
  if (!b.granted && m.term > s.term) {
    if (s.role.kind !== 'leader') adoptTerm(s, fx, m.term);
    return;
  }
  const r = s.role;
  if (r.kind !== 'candidate' || m.term !== s.term || b.reqEpoch !== s.epoch || b.round !== r.round) return;
  if (b.granted) {
    if (r.granted[m.from] !== undefined) return;
    const g = { ...r.granted, [m.from]: b.round };
    s.role = { ...r, granted: g };
    if (Object.keys(g).length >= quorum(s)) becomeLeader(s, fx);
  } else {
    if (r.rejected.includes(m.from)) return;
    const rej = [...r.rejected, m.from];
    s.role = { ...r, rejected: rej };
    if (rej.length > s.cfg.peers.length - quorum(s)) abandon(s, fx);
  }
}

function onHeartbeatResp(s: PeerState, fx: Effect[], m: PeerMessage, b: Extract<Body, { type: 'heartbeat-resp' }>): void {
  if (!b.granted && m.term > s.term) {
    adoptTerm(s, fx, m.term);
    return;
  }
  const r = s.role;
  if (r.kind !== 'leader' || !b.granted || m.term !== s.term || b.reqEpoch !== s.epoch) return;
  // Only rounds sent while holding in this term count (sanity: an authenticated peer echoes ours).
  if (!(b.round >= r.since && b.round <= s.now)) return;
  const prev = r.acks[m.from] ?? NEG;
  if (b.round <= prev) return;
  const successor: Successor = b.apiHealthy ? 'api' : b.eligible ? 'eligible' : 'no';
  s.role = { ...r, acks: { ...r.acks, [m.from]: b.round }, successors: { ...r.successors, [m.from]: successor } };
  recomputeUntil(s);
  maybeEndBootstrap(s, fx);
  handOverIfUnhealthy(s, fx);
}

// ---------------------------------------------------------------------------------------------

function publish(s: PeerState, fx: Effect[]): void {
  const v = verdictOf(s);
  const o = s.verdict;
  const changed =
    v.kind !== o.kind || (v.kind === 'hold' && o.kind === 'hold' && v.until !== o.until) || (v.kind === 'standby' && o.kind === 'standby' && v.leader !== o.leader);
  if (changed) {
    s.verdict = v;
    fx.push({ type: 'verdict', verdict: v });
  }
  const wanted = s.role.kind === 'leader' && v.kind === 'hold';
  if (wanted !== s.leaseWanted) {
    s.leaseWanted = wanted;
    fx.push({ type: 'lease-wanted', wanted });
  }
}
