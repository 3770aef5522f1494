/**
 * Service-IP grants from the peer voters: who may answer for a LoadBalancer address, fenced
 * without the API. Pure: time arrives in every input, nothing here opens a socket or reads a clock.
 *
 * Two roles, one rule (the VIP's, docs/election.md §3, applied per address):
 * - A VOTER (a control-plane agent, one of vip_peers) promises each service IP to at most one
 *   member at a time. A claim from member M (epoch e) for IP X processed at the voter's time t
 *   grants X to (M, e) until t + E, unless another member's grant on X is still running. A claim
 *   that no longer lists X ends M's grant on X at once: M sends it only after it stopped answering
 *   for X and waited the linger L. A restarted voter grants nothing for E (boot quiet), so the
 *   grants of its previous life have run out before it grants again; nothing is persisted.
 * - A MEMBER (every agent that announces service IPs, workers included) sends its whole claim set
 *   to every voter each heartbeat H (and at once when the set grows). It holds X until s + D, where
 *   s is the SEND time (its clock) of the newest claim round that a majority of voters granted X in,
 *   and D/(1−ρ) + L < E/(1+ρ) (`grantMs`): every grant behind the hold outlives it plus the
 *   linger, so two members' holds on X never overlap (two majorities share a voter, and a voter
 *   grants X to one member at a time).
 * - A voter's answer also lists the members it heard from within E. A member's view of who is
 *   live is what a majority of its voters' fresh answers list; placement (rendezvous) runs over it,
 *   so when a member dies, the others see it gone at the moment its grants run out (both are E
 *   after its last claim reached the voters) and the next owner's claim is granted at once.
 *   Placement views may differ for a moment; that costs a refused claim, never safety.
 *
 * Rounds: a member's claim carries its send time. Reordered datagrams are the hazard, both ways:
 * - a voter ignores a claim not newer than the last it processed from that member epoch, so an
 *   old claim that omitted X cannot free X after a newer one granted it again;
 * - a member counts an answer for X only if its round is at or after the round in which X last
 *   (re)entered its claim set, so an old claim granted after a newer one released X never backs
 *   a hold.
 */
import { grantMs, quorumOf, type PeerTiming } from '../../election/peers/timing.js';

export type Epoch = string;

/** Member → voter: "these are all the service IPs I claim" (renewal, claim and release in one). */
export interface ClaimMsg {
  type: 'claim';
  from: string;
  to: string;
  epoch: Epoch;
  round: number;
  ips: readonly string[];
  /** The member's last claim (SIGTERM): drop it from the live lists at once, not E from now. */
  leaving?: boolean;
  /**
   * The member may take addresses (its Services are cached): only candidates are listed as live.
   * A member that has just started claims without being one, so it learns who is live but
   * nobody hands it addresses it cannot serve yet.
   */
  candidate: boolean;
  /** The live list this member already has from the addressed voter (its epoch and version). */
  liveSeen?: LiveVersion;
}

/** Names one live list of one voter process: the list travels only when it changed. */
export interface LiveVersion {
  epoch: Epoch;
  version: number;
}

/** Voter → member: what this voter granted to the member for `round`, and who it hears from. */
export interface ClaimRespMsg {
  type: 'claim-resp';
  from: string;
  to: string;
  /** The voter's epoch: a new one means a new process whose grants start empty. */
  epoch: Epoch;
  reqEpoch: Epoch;
  round: number;
  /** True in the voter's boot quiet: it grants nothing yet. */
  quiet: boolean;
  granted: readonly string[];
  /**
   * Members this voter heard a claim from within E (itself included when it is a member), as
   * version `liveVersion` of its list; null when the claim said it has that version already.
   */
  live: readonly string[] | null;
  liveVersion: number;
}

export type GrantMsg = ClaimMsg | ClaimRespMsg;

// ---------------------------------------------------------------------------------------------
// voter

export interface VoterConfig {
  self: string;
  electionTimeoutMs: number;
}

interface VoterGrant {
  member: string;
  epoch: Epoch;
  until: number;
}

export interface VoterState {
  readonly cfg: VoterConfig;
  readonly epoch: Epoch;
  readonly bootAt: number;
  now: number;
  grants: Map<string, VoterGrant>;
  /** The IPs granted to each member epoch (`member NUL epoch`), so a claim costs what it lists. */
  held: Map<string, Set<string>>;
  /** Newest claim processed per member epoch: its round and when it arrived. */
  seen: Map<string, { member: string; round: number; seenAt: number; gone: boolean; candidate: boolean }>;
  /** The live list as last computed, its version, and until when it stands unless a claim changes it. */
  live: string[];
  liveVersion: number;
  liveValidUntil: number;
  liveDirty: boolean;
}

export function initVoter(cfg: VoterConfig, now: number, epoch: Epoch): VoterState {
  return { cfg, epoch, bootAt: now, now, grants: new Map(), held: new Map(), seen: new Map(), live: [], liveVersion: 0, liveValidUntil: Number.NEGATIVE_INFINITY, liveDirty: true };
}

/** Members heard from within E, sorted; recomputed only when a member joins, leaves or times out. */
export function liveMembers(v: VoterState, now: number = v.now): string[] {
  if (!v.liveDirty && now < v.liveValidUntil) return v.live;
  const E = v.cfg.electionTimeoutMs;
  const out = new Set<string>();
  let validUntil = Number.POSITIVE_INFINITY;
  for (const [k, r] of v.seen) {
    // A record is dropped only after 2E of silence, when no grant it could free backs a hold.
    if (now >= r.seenAt + 2 * E) {
      v.seen.delete(k);
      continue;
    }
    validUntil = Math.min(validUntil, r.seenAt + 2 * E);
    if (r.gone || !r.candidate || now >= r.seenAt + E) continue;
    out.add(r.member);
    validUntil = Math.min(validUntil, r.seenAt + E);
  }
  const list = [...out].sort();
  if (list.join(',') !== v.live.join(',')) {
    v.live = list;
    v.liveVersion++;
  }
  v.liveValidUntil = validUntil;
  v.liveDirty = false;
  return v.live;
}

function grantTo(v: VoterState, ip: string, g: VoterGrant): void {
  const prev = v.grants.get(ip);
  if (prev !== undefined) v.held.get(`${prev.member}\0${prev.epoch}`)?.delete(ip);
  v.grants.set(ip, g);
  const key = `${g.member}\0${g.epoch}`;
  let set = v.held.get(key);
  if (set === undefined) v.held.set(key, (set = new Set()));
  set.add(ip);
}

function ungrant(v: VoterState, ip: string): void {
  const g = v.grants.get(ip);
  if (g === undefined) return;
  v.grants.delete(ip);
  const key = `${g.member}\0${g.epoch}`;
  const set = v.held.get(key);
  set?.delete(ip);
  if (set?.size === 0) v.held.delete(key);
}

/** Which member this voter's grant on `ip` names right now, or null. */
export function voterGrantOf(v: VoterState, ip: string, now: number = v.now): { member: string; epoch: Epoch; until: number } | null {
  const g = v.grants.get(ip);
  return g !== undefined && now < g.until ? { ...g } : null;
}

/**
 * Processes one claim and returns the answer (null: ignored, it is older than one already
 * processed from that member epoch). Mutates `v`; the caller owns it.
 */
export function voterOnClaim(v: VoterState, now: number, m: ClaimMsg): ClaimRespMsg | null {
  v.now = Math.max(v.now, now);
  now = v.now;
  if (m.to !== v.cfg.self) return null;
  const E = v.cfg.electionTimeoutMs;
  const key = `${m.from}\0${m.epoch}`;
  const prev = v.seen.get(key);
  if (prev !== undefined && m.round <= prev.round) return null;
  // A leaving member's record stays (its round still guards against reordered claims); it only
  // stops counting as live, so placement moves its addresses at once.
  const gone = m.leaving === true;
  if (prev === undefined || prev.gone !== gone || prev.candidate !== m.candidate || now >= prev.seenAt + E) v.liveDirty = true;
  v.seen.set(key, { member: m.from, round: m.round, seenAt: now, gone, candidate: m.candidate });
  const quiet = now < v.bootAt + E;
  const wanted = new Set(m.ips);
  // What the member no longer lists it has stopped answering for (plus L): free at once.
  for (const ip of [...(v.held.get(key) ?? [])]) if (!wanted.has(ip)) ungrant(v, ip);
  const granted: string[] = [];
  if (!quiet) {
    for (const ip of wanted) {
      const g = v.grants.get(ip);
      if (g === undefined || now >= g.until || (g.member === m.from && g.epoch === m.epoch)) {
        grantTo(v, ip, { member: m.from, epoch: m.epoch, until: now + E });
        granted.push(ip);
      }
    }
  }
  const live = liveMembers(v, now);
  const unchanged = m.liveSeen !== undefined && m.liveSeen.epoch === v.epoch && m.liveSeen.version === v.liveVersion;
  return { type: 'claim-resp', from: v.cfg.self, to: m.from, epoch: v.epoch, reqEpoch: m.epoch, round: m.round, quiet, granted, live: unchanged ? null : live, liveVersion: v.liveVersion };
}

// ---------------------------------------------------------------------------------------------
// member

export interface MemberConfig extends PeerTiming {
  self: string;
  /** The voters (vip_peers); a majority of them must grant an IP. */
  voters: readonly string[];
  /** Start as a placement candidate (default true); see ClaimMsg.candidate. */
  candidate?: boolean;
}

export interface MemberDerived {
  grantMs: number;
  quorum: number;
  /** How long an IP stays claimed after its holder let go: L, measured conservatively. */
  releaseDelayMs: number;
}

export function memberDerived(c: MemberConfig): MemberDerived {
  return { grantMs: grantMs(c), quorum: quorumOf(c.voters.length), releaseDelayMs: Math.ceil(c.lingerMs * (1 + c.skew)) };
}

interface VoterAck {
  voterEpoch: Epoch;
  round: number;
  granted: ReadonlySet<string>;
  live: readonly string[];
  liveVersion: number;
}

export interface MemberState {
  readonly cfg: MemberConfig;
  readonly d: MemberDerived;
  readonly epoch: Epoch;
  now: number;
  /** The IPs placement asks this member to hold (the last `want`). */
  desired: Set<string>;
  /** The IPs it claims to hold (desired, as of the last step). */
  wanted: Set<string>;
  /** Round from which answers count for each claimed IP (the first claim of its current run). */
  claimedSince: Map<string, number>;
  /** IPs it let go of: still claimed until `at` (the linger), then released. */
  leaving: Map<string, number>;
  acks: Map<string, VoterAck>;
  nextClaimAt: number;
  /** The last round sent (rounds strictly increase even when the clock does not). */
  lastRound: number;
  /** Whether claims say this member may take addresses. */
  candidate: boolean;
  shutdown: boolean;
  stopped: boolean;
  /** Holds as last reported (ip → until), to report changes only. */
  reported: Map<string, number>;
  reportedLive: string;
}

export type MemberInput =
  | { type: 'tick'; now: number }
  | { type: 'want'; now: number; ips: Iterable<string> }
  /** Whether this member may take addresses now (its Services are cached); sent at once. */
  | { type: 'candidate'; now: number; candidate: boolean }
  | { type: 'message'; now: number; msg: ClaimRespMsg }
  /** SIGTERM: let go of everything, release after L, then stop. */
  | { type: 'shutdown'; now: number };

export type MemberEffect =
  | { type: 'send'; msg: ClaimMsg }
  /** The IPs this member may answer for now, each with its deadline (local clock); absent = standby. */
  | { type: 'holds'; holds: ReadonlyMap<string, number> }
  /** The members the voters hear from (placement's candidates). */
  | { type: 'live'; members: readonly string[] }
  | { type: 'stopped' };

export function initMember(cfg: MemberConfig, now: number, epoch: Epoch): MemberState {
  return {
    cfg,
    d: memberDerived(cfg),
    epoch,
    now,
    desired: new Set(),
    wanted: new Set(),
    claimedSince: new Map(),
    leaving: new Map(),
    acks: new Map(),
    nextClaimAt: now,
    lastRound: Number.NEGATIVE_INFINITY,
    candidate: cfg.candidate ?? true,
    shutdown: false,
    stopped: false,
    reported: new Map(),
    reportedLive: '',
  };
}

/** Until when this member may answer for `ip` (local clock); -Infinity when it may not. */
export function holdUntil(s: MemberState, ip: string): number {
  const since = s.claimedSince.get(ip);
  if (since === undefined || !s.wanted.has(ip) || s.shutdown) return Number.NEGATIVE_INFINITY;
  const rounds: number[] = [];
  for (const a of s.acks.values()) if (a.round >= since && a.granted.has(ip)) rounds.push(a.round);
  if (rounds.length < s.d.quorum) return Number.NEGATIVE_INFINITY;
  rounds.sort((x, y) => y - x);
  return rounds[s.d.quorum - 1]! + s.d.grantMs;
}

export function memberHolds(s: MemberState, now: number = s.now): Map<string, number> {
  const out = new Map<string, number>();
  for (const ip of s.wanted) {
    const u = holdUntil(s, ip);
    if (u > now) out.set(ip, u);
  }
  return out;
}

/**
 * Members a majority of the voters heard from within E, by their answers to claims sent within E
 * (sorted): the members that can hold anything. A voter that died keeps its last answer fresh for
 * E, so a union would keep a member that left (SIGTERM) live for that long.
 */
export function memberLive(s: MemberState, now: number = s.now): string[] {
  const count = new Map<string, number>();
  let fresh = 0;
  for (const a of s.acks.values()) {
    if (now >= a.round + s.cfg.electionTimeoutMs) continue;
    fresh++;
    for (const m of a.live) count.set(m, (count.get(m) ?? 0) + 1);
  }
  // Without fresh answers from a majority this member knows nothing new (it is cut off, or its
  // own event loop lagged): keep the last view rather than let placement empty it and move
  // addresses back and forth. It cannot hold anything meanwhile, since holds need grants.
  if (fresh < s.d.quorum) return s.reportedLive === '' ? [] : s.reportedLive.split(',');
  return [...count].filter(([, n]) => n >= s.d.quorum).map(([m]) => m).sort();
}

/** The IPs every claim lists now: wanted, plus those still in their linger. */
function claimSet(s: MemberState): string[] {
  return [...new Set([...s.wanted, ...s.leaving.keys()])].sort();
}

export function memberNextWakeup(s: MemberState): number {
  if (s.stopped) return Number.POSITIVE_INFINITY;
  let w = s.nextClaimAt;
  for (const at of s.leaving.values()) w = Math.min(w, at);
  for (const u of s.reported.values()) w = Math.min(w, u);
  // The live view shrinks when answers age out.
  for (const a of s.acks.values()) if (a.round + s.cfg.electionTimeoutMs > s.now) w = Math.min(w, a.round + s.cfg.electionTimeoutMs);
  return w;
}

export function memberStep(s: MemberState, input: MemberInput): MemberEffect[] {
  const fx: MemberEffect[] = [];
  if (s.stopped) return fx;
  s.now = Math.max(s.now, input.now);
  switch (input.type) {
    case 'want':
      if (!s.shutdown) s.desired = new Set(input.ips);
      break;
    case 'message':
      onResp(s, input.msg);
      break;
    case 'candidate':
      if (input.candidate !== s.candidate) {
        s.candidate = input.candidate;
        s.nextClaimAt = s.now;
      }
      break;
    case 'shutdown':
      s.desired = new Set();
      s.shutdown = true;
      break;
    case 'tick':
      break;
  }
  reconcile(s);
  report(s, fx);
  if (s.shutdown && s.leaving.size === 0) {
    // The final claim lists nothing: every voter frees this member's IPs at once, and stops
    // listing it as live, so the others' placement takes its addresses without waiting E.
    sendClaims(s, fx, true);
    s.stopped = true;
    s.reported = new Map();
    fx.push({ type: 'stopped' });
    return fx;
  }
  if (s.now >= s.nextClaimAt) sendClaims(s, fx);
  return fx;
}

function reconcile(s: MemberState): void {
  for (const ip of s.wanted) {
    if (s.desired.has(ip)) continue;
    // Stop answering first (the report that follows), keep the claim until the linger is over.
    s.wanted.delete(ip);
    s.claimedSince.delete(ip);
    s.leaving.set(ip, s.now + s.d.releaseDelayMs);
  }
  for (const [ip, at] of s.leaving) {
    if (s.now < at) continue;
    // The linger is over: the next claim no longer lists it, which releases it.
    s.leaving.delete(ip);
    s.nextClaimAt = s.now;
  }
  for (const ip of s.desired) {
    if (s.wanted.has(ip)) continue;
    // Wanted again during its linger: it never left the claim set, so nobody else can have it;
    // a fresh claimedSince makes only answers from this new run back the new hold.
    s.leaving.delete(ip);
    s.wanted.add(ip);
    s.nextClaimAt = s.now;
  }
}

function sendClaims(s: MemberState, fx: MemberEffect[], leaving = false): void {
  const round = Math.max(s.now, s.lastRound + 1e-3);
  s.lastRound = round;
  for (const ip of s.wanted) if (!s.claimedSince.has(ip)) s.claimedSince.set(ip, round);
  const ips = claimSet(s);
  for (const v of s.cfg.voters) {
    const a = s.acks.get(v);
    const liveSeen = a === undefined ? {} : { liveSeen: { epoch: a.voterEpoch, version: a.liveVersion } };
    fx.push({ type: 'send', msg: { type: 'claim', from: s.cfg.self, to: v, epoch: s.epoch, round, ips, candidate: s.candidate && !leaving, ...(leaving ? { leaving } : {}), ...liveSeen } });
  }
  s.nextClaimAt = s.now + s.cfg.heartbeatMs;
}

function onResp(s: MemberState, m: ClaimRespMsg): void {
  if (m.to !== s.cfg.self || m.reqEpoch !== s.epoch || !s.cfg.voters.includes(m.from)) return;
  // Only answers to rounds this life sent count (an authenticated voter echoes ours).
  if (!(m.round <= s.lastRound)) return;
  const prev = s.acks.get(m.from);
  if (prev !== undefined && prev.voterEpoch === m.epoch && m.round <= prev.round) return;
  // A list left out means "the version you named": the one kept from this voter's earlier answer.
  let live = m.live;
  if (live === null) {
    if (prev === undefined || prev.voterEpoch !== m.epoch || prev.liveVersion !== m.liveVersion) return;
    live = prev.live;
  }
  s.acks.set(m.from, { voterEpoch: m.epoch, round: m.round, granted: new Set(m.granted), live, liveVersion: m.liveVersion });
}

function report(s: MemberState, fx: MemberEffect[]): void {
  const holds = memberHolds(s);
  let changed = holds.size !== s.reported.size;
  if (!changed) for (const [ip, u] of holds) if (s.reported.get(ip) !== u) changed = true;
  if (changed) {
    s.reported = holds;
    fx.push({ type: 'holds', holds: new Map(holds) });
  }
  const live = memberLive(s);
  const key = live.join(',');
  if (key !== s.reportedLive) {
    s.reportedLive = key;
    fx.push({ type: 'live', members: live });
  }
}
