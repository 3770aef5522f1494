/**
 * Who may announce service IPs, and which node holds which IP, without a Lease per Service. Pure:
 * observations and versions in, states and decisions out (docs/services.md, "Membership and
 * fencing").
 *
 * Objects: one member Lease per node, `vipd-member-<node>`, written only by that node (renewed
 * every retryPeriod), except that any node may FENCE it (compare-and-swap: holder cleared) once it
 * has seen it unchanged for leaseDuration. The annotation `vipd.io/holds` lists the service IPs
 * the node CLAIMS; it changes only when that set changes.
 *
 * Invariants (each node, for each service IP X):
 * - A node binds X only while (a) its member grant is live (last successful write SENT +
 *   renewDeadline), (b) X is CONFIRMED: its own Lease listed X at some version v, and when the
 *   node first observed its own Lease at a version >= v, no other unreleased member claimed X in
 *   its view, and (c) the plan gives it X.
 * - Observing in resourceVersion order (one watch stream over all member Leases), a view that
 *   has applied version v holds every write committed before v. So of two claims on X, the later
 *   one is checked against a view that already has the earlier one: at most one is confirmed.
 *   A view loaded by a fresh list may contain writes after v too, which only adds conflicts.
 * - A claim is dropped from the Lease only after the holder has unbound X.
 * - A claim stops counting when its Lease no longer names its node (released at shutdown, or
 *   fenced). A fence succeeds only if the Lease did not change since the version the fencer saw
 *   unchanged for leaseDuration, so the member's last successful write was sent before the
 *   fencer observed it: its grant ended renewDeadline later, before leaseDuration had passed
 *   (leaseDuration > renewDeadline + retryPeriod + linger + skew margin, lease/state.ts).
 *   Every later write of the member then fails (409) and its claims are void.
 * - Expiry uses LOCAL observation times only (like lease/state.ts): clock offsets do not matter.
 * - A deleted member Lease (someone ran kubectl delete) cannot be fenced: its claims count for
 *   leaseDuration after the deletion was observed, longer than its owner's grant could last.
 */
import { isNewerVersion } from '../../election/lease/state.js';
import { canonicalAddr } from './addr.js';

export const MEMBER_LABEL = 'vipd.io/member';
export const CLAIMS_ANNOTATION = 'vipd.io/holds';
export const MEMBER_LEASE_PREFIX = 'vipd-member-';

export function memberLeaseName(node: string): string {
  return `${MEMBER_LEASE_PREFIX}${node}`;
}

/** The node a member Lease belongs to, from its name. */
export function nodeOfLease(name: string | undefined): string | undefined {
  if (!name?.startsWith(MEMBER_LEASE_PREFIX) || name.length === MEMBER_LEASE_PREFIX.length) return undefined;
  return name.slice(MEMBER_LEASE_PREFIX.length);
}

/** Canonical, sorted, unique addresses from the annotation; malformed entries are dropped. */
export function parseClaims(text: string | undefined): string[] {
  if (!text) return [];
  const out = new Set<string>();
  for (const part of text.split(',')) {
    const ip = canonicalAddr(part.trim());
    if (ip !== undefined) out.add(ip);
  }
  return [...out].sort();
}

export function formatClaims(ips: Iterable<string>): string {
  return [...new Set(ips)].sort().join(',');
}

/**
 * resourceVersion order: `a` >= `b`. Integers (etcd revisions, what kube-apiserver uses) are
 * ordered; anything else is opaque and only equal versions compare.
 */
export function versionAtLeast(a: string, b: string): boolean {
  if (a === b) return true;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return false;
}

export interface MemberRecord {
  node: string;
  /** spec.holderIdentity; a member counts only while it names the node itself. */
  holderIdentity: string;
  claims: readonly string[];
  resourceVersion: string;
  leaseDurationSeconds?: number;
}

export interface MemberObservation {
  record: MemberRecord;
  /** Local monotonic time the record was first seen in this version. */
  observedAt: number;
  /** The Lease was deleted (observedAt = when that was seen). */
  deleted?: boolean;
}

export type MemberState =
  | { kind: 'live'; expiresAt: number }
  /** Unchanged for leaseDuration: its grant is over, but its claims count until it is fenced. */
  | { kind: 'expired'; since: number }
  /** Names nobody (released or fenced), or deleted long enough ago: its claims are void. */
  | { kind: 'released' };

/** Our own leaseDuration, or the member's advertised one if longer (it promised itself that much). */
function expiry(o: MemberObservation, leaseDurationMs: number): number {
  return o.observedAt + Math.max(leaseDurationMs, (o.record.leaseDurationSeconds ?? 0) * 1000);
}

export function memberState(o: MemberObservation, now: number, leaseDurationMs: number): MemberState {
  if (o.deleted) return now < expiry(o, leaseDurationMs) ? { kind: 'expired', since: o.observedAt } : { kind: 'released' };
  if (o.record.holderIdentity !== o.record.node) return { kind: 'released' };
  const at = expiry(o, leaseDurationMs);
  return now < at ? { kind: 'live', expiresAt: at } : { kind: 'expired', since: at };
}

/** Does this member's claim on an IP still count (block everyone else)? */
export function claimsCount(o: MemberObservation, now: number, leaseDurationMs: number): boolean {
  return memberState(o, now, leaseDurationMs).kind !== 'released';
}

/** Every node's member Lease as this node observed it. */
export class MemberTable {
  private readonly obs = new Map<string, MemberObservation>();

  constructor(private readonly leaseDurationMs: number) {}

  get(node: string): MemberObservation | undefined {
    return this.obs.get(node);
  }

  nodes(): string[] {
    return [...this.obs.keys()].sort();
  }

  /** A record from a watch event or a list. The observation time moves only when the version changed; an older version is ignored. */
  apply(rec: MemberRecord, now: number): boolean {
    const prev = this.obs.get(rec.node);
    if (prev && !prev.deleted) {
      if (prev.record.resourceVersion === rec.resourceVersion) return false;
      if (/^\d+$/.test(rec.resourceVersion) && /^\d+$/.test(prev.record.resourceVersion) && !isNewerVersion(rec.resourceVersion, prev.record.resourceVersion)) return false;
    }
    this.obs.set(rec.node, { record: rec, observedAt: now });
    return true;
  }

  /** The Lease was deleted: its claims keep counting for leaseDuration (see module comment). */
  remove(node: string, now: number): boolean {
    const prev = this.obs.get(node);
    if (!prev || prev.deleted) return false;
    this.obs.set(node, { record: prev.record, observedAt: now, deleted: true });
    return true;
  }

  /** A fresh list: apply every record; members missing from it were deleted. */
  replaceAll(recs: readonly MemberRecord[], now: number): void {
    const seen = new Set(recs.map((r) => r.node));
    for (const r of recs) this.apply(r, now);
    for (const node of this.obs.keys()) if (!seen.has(node)) this.remove(node, now);
  }

  /** Drops tombstones whose claims no longer count. */
  prune(now: number): void {
    for (const [node, o] of this.obs) if (o.deleted && memberState(o, now, this.leaseDurationMs).kind === 'released') this.obs.delete(node);
  }

  state(node: string, now: number): MemberState | undefined {
    const o = this.obs.get(node);
    return o ? memberState(o, now, this.leaseDurationMs) : undefined;
  }

  /** Members that may announce: live by this node's clock. Sorted. */
  live(now: number): string[] {
    return this.nodes().filter((n) => this.state(n, now)?.kind === 'live');
  }

  /** Members whose Lease has not changed for leaseDuration and can be fenced (not deleted ones). */
  expired(now: number): MemberObservation[] {
    return [...this.obs.values()].filter((o) => !o.deleted && memberState(o, now, this.leaseDurationMs).kind === 'expired');
  }

  /** The first other member (by name) whose claim on `ip` counts, if any. */
  claimant(ip: string, except: string, now: number): string | undefined {
    for (const node of this.nodes()) {
      if (node === except) continue;
      const o = this.obs.get(node)!;
      if (o.record.claims.includes(ip) && claimsCount(o, now, this.leaseDurationMs)) return node;
    }
    return undefined;
  }

  /** Next moment a member's state changes by the passage of time alone (live → expired, tombstone → gone). */
  nextChange(now: number): number | undefined {
    let next: number | undefined;
    for (const o of this.obs.values()) {
      const s = memberState(o, now, this.leaseDurationMs);
      const at = s.kind === 'live' ? s.expiresAt : o.deleted && s.kind === 'expired' ? expiry(o, this.leaseDurationMs) : undefined;
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    return next;
  }
}

/**
 * This node's claims, one state per IP:
 *   wanted    → to be written into our Lease by the next write
 *   pending   → written at `version`; decided when we first observe our own Lease at >= version
 *   confirmed → ours: the holder may bind it while the member grant is live
 *   releasing → no longer ours; stays in the Lease until the holder has unbound it
 * What the Lease should list is every IP in the book.
 */
export type ClaimState = { kind: 'wanted' } | { kind: 'pending'; version: string } | { kind: 'confirmed' } | { kind: 'releasing' };

export class ClaimBook {
  private readonly claims = new Map<string, ClaimState>();

  state(ip: string): ClaimState | undefined {
    return this.claims.get(ip);
  }

  ips(): string[] {
    return [...this.claims.keys()].sort();
  }

  /** What our Lease should list now. */
  published(): string[] {
    return this.ips();
  }

  confirmed(): string[] {
    return this.ips().filter((ip) => this.claims.get(ip)?.kind === 'confirmed');
  }

  /**
   * The plan wants exactly `want`. New IPs are claimed only when `mayClaim(ip)` (our grant is live
   * and no other member's claim counts). IPs no longer wanted: unwritten or undecided claims are
   * dropped (never bound), confirmed ones go to releasing.
   */
  setWanted(want: ReadonlySet<string>, mayClaim: (ip: string) => boolean): void {
    for (const [ip, s] of this.claims) {
      if (want.has(ip)) continue;
      if (s.kind === 'confirmed') this.claims.set(ip, { kind: 'releasing' });
      else if (s.kind !== 'releasing') this.claims.delete(ip);
    }
    for (const ip of want) if (!this.claims.has(ip) && mayClaim(ip)) this.claims.set(ip, { kind: 'wanted' });
  }

  /** A write listing `ips` succeeded at `version`. */
  written(ips: readonly string[], version: string): void {
    for (const ip of ips) if (this.claims.get(ip)?.kind === 'wanted') this.claims.set(ip, { kind: 'pending', version });
  }

  /**
   * We observed our own Lease at `version` (still naming us). Pending claims written at or before
   * it are decided against the current view: confirmed unless another member's claim counts.
   * Returns the IPs confirmed and the IPs retracted.
   */
  observedOwn(version: string, conflict: (ip: string) => boolean): { confirmed: string[]; retracted: string[] } {
    const confirmed: string[] = [];
    const retracted: string[] = [];
    for (const [ip, s] of this.claims) {
      if (s.kind !== 'pending' || !versionAtLeast(version, s.version)) continue;
      if (conflict(ip)) {
        this.claims.delete(ip);
        retracted.push(ip);
      } else {
        this.claims.set(ip, { kind: 'confirmed' });
        confirmed.push(ip);
      }
    }
    return { confirmed: confirmed.sort(), retracted: retracted.sort() };
  }

  /** The holder has let go of `ip`: it may leave the Lease. */
  released(ip: string): void {
    if (this.claims.get(ip)?.kind === 'releasing') this.claims.delete(ip);
  }

  /** Our Lease was fenced (or deleted): every claim is void. Returns what was confirmed. */
  reset(): string[] {
    const was = this.confirmed();
    this.claims.clear();
    return was;
  }
}
