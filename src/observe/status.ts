/**
 * `GET /status` and `vipd status`: the agent's live view as one JSON object, and its text form.
 *
 * Both are pure: the agent hands in read-only snapshots (holders' states, the elector's status,
 * the services coordinator's status) taken at one instant `now` on the monotonic clock, and every
 * time here leaves as a relative number (ms ago, ms left) because monotonic instants mean nothing
 * to a reader or to another process.
 */
import type { LeaseElectorStatus } from '../election/lease/elector.js';
import type { PeerSnapshot } from '../election/peers/core.js';
import type { AnnouncedAddress } from '../services/announcements.js';
import type { ServicesStatus } from '../services/coordinator.js';
import type { HolderState } from '../vip/holder.js';

export type ElectionMode = 'lease' | 'hybrid' | 'ecmp' | 'standalone';

export interface StatusInput {
  node: string;
  election: ElectionMode;
  /** Monotonic now, the instant the snapshots were taken. */
  now: number;
  vips: ReadonlyArray<{ ip: string; state: HolderState }>;
  lease?: LeaseElectorStatus;
  peers?: PeerSnapshot;
  services?: ServicesStatus;
}

export interface VipStatus {
  ip: string;
  holding: boolean;
  state: HolderState['kind'];
  /** holding: how long it has. */
  holdingForMs?: number;
  /** holding, probing or blocked: how long the current grant still runs. */
  grantLeftMs?: number;
  /** blocked: the MAC that answers for the address instead. */
  conflictOwner?: string;
}

export interface StatusReport {
  node: string;
  election: ElectionMode;
  vips: VipStatus[];
  lease?: {
    role: 'candidate' | 'holding';
    holder?: string;
    grantLeftMs?: number;
    /** The record's renewTime as its holder wrote it (wall clock). */
    renewTime?: string;
    /** When this node last saw the record change. */
    lastSeenMsAgo?: number;
    healthGateOpen: boolean;
  };
  peers?: {
    term: number;
    role: PeerSnapshot['role'];
    leader: string | null;
    leaderGrantLeftMs?: number;
    /** The vote this node has promised, and how long the promise binds it. */
    promisedTo?: { peer: string; leftMs: number };
    heard: Array<{ peer: string; msAgo: number }>;
  };
  services?: { holding: string[]; members: string[]; grantLeftMs: number; announcing: AnnouncedAddress[] };
}

const left = (until: number, now: number) => Math.max(0, Math.round(until - now));
const ago = (at: number, now: number) => Math.max(0, Math.round(now - at));

export function buildStatus(i: StatusInput): StatusReport {
  const { now } = i;
  const report: StatusReport = {
    node: i.node,
    election: i.election,
    vips: i.vips.map(({ ip, state }) => {
      const v: VipStatus = { ip, holding: state.kind === 'holding' && now < state.until, state: state.kind };
      if (state.kind === 'holding') v.holdingForMs = ago(state.since, now);
      if (state.kind !== 'idle') v.grantLeftMs = left(state.until, now);
      if (state.kind === 'blocked') v.conflictOwner = state.owner;
      return v;
    }),
  };
  if (i.lease) {
    const l = i.lease;
    report.lease = { role: l.role, healthGateOpen: l.gateHealthy };
    if (l.leader !== undefined) report.lease.holder = l.leader;
    if (l.until !== undefined) report.lease.grantLeftMs = left(l.until, now);
    if (l.renewTime !== undefined) report.lease.renewTime = l.renewTime;
    if (l.observedAt !== undefined) report.lease.lastSeenMsAgo = ago(l.observedAt, now);
  }
  if (i.peers) {
    const p = i.peers;
    report.peers = {
      term: p.term,
      role: p.role,
      leader: p.leader,
      heard: Object.entries(p.lastActive)
        .filter(([peer]) => peer !== p.self)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([peer, at]) => ({ peer, msAgo: ago(at, now) })),
    };
    if (p.leaderUntil !== undefined) report.peers.leaderGrantLeftMs = left(p.leaderUntil, now);
    if (p.promise && p.promise.until > now) report.peers.promisedTo = { peer: p.promise.to, leftMs: left(p.promise.until, now) };
  }
  if (i.services) {
    const s = i.services;
    report.services = { holding: [...s.holding].sort(), members: [...s.members].sort(), grantLeftMs: left(s.grantUntil, now), announcing: s.announcing };
  }
  return report;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The text `vipd status` prints; one fact a line. */
export function renderStatus(r: StatusReport): string {
  const lines = [`node ${r.node}, election ${r.election}`];
  for (const v of r.vips) {
    let line = `  VIP ${v.ip}: `;
    if (v.holding) line += `HOLDING for ${secs(v.holdingForMs ?? 0)}, grant ${secs(v.grantLeftMs ?? 0)} left`;
    else if (v.state === 'probing') line += `probing the wire before claiming`;
    else if (v.state === 'blocked') line += `not claimed: ${v.conflictOwner ?? 'another MAC'} answers for it`;
    else line += 'standby';
    lines.push(line);
  }
  if (r.lease) {
    const l = r.lease;
    const who = l.role === 'holding' ? `held by this node, ${secs(l.grantLeftMs ?? 0)} left` : `held by ${l.holder ?? 'nobody'}`;
    const renewed = l.renewTime !== undefined ? `, renewed ${l.renewTime}` : '';
    const seen = l.lastSeenMsAgo !== undefined ? `${renewed}, last seen ${secs(l.lastSeenMsAgo)} ago` : renewed;
    lines.push(`  Lease: ${who}${seen}; health gate ${l.healthGateOpen ? 'open' : 'closed'}`);
  }
  if (r.peers) {
    const p = r.peers;
    const grant = p.leaderGrantLeftMs !== undefined ? `, grant ${secs(p.leaderGrantLeftMs)} left` : '';
    lines.push(`  peers: term ${p.term}, ${p.role}, leader ${p.leader ?? 'none'}${grant}`);
    if (p.promisedTo) lines.push(`    promised its vote to ${p.promisedTo.peer} for ${secs(p.promisedTo.leftMs)}`);
    for (const h of p.heard) lines.push(`    heard ${h.peer} ${secs(h.msAgo)} ago`);
    if (p.heard.length === 0) lines.push('    no peer heard yet');
  }
  if (r.services) {
    const s = r.services;
    lines.push(`  services: ${s.holding.length ? `holding ${s.holding.join(', ')}` : 'holding no service IP'}; members ${s.members.join(', ') || 'none'}; grant ${secs(s.grantLeftMs)} left`);
    for (const a of s.announcing) lines.push(`    ${a.ip} on ${a.iface} for ${a.services.join(', ') || 'no Service'} since ${a.since}: ${a.reason}`);
  }
  return `${lines.join('\n')}\n`;
}
