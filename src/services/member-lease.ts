/**
 * The I/O half of service-IP membership (membership.ts has the rules):
 * - MemberLease: this node's own Lease `vipd-member-<node>`. Renewed every retryPeriod, and at
 *   once when the set of claimed IPs changes; the grant it buys ends renewDeadline after the
 *   successful write was SENT. One write in flight at a time, every write a compare-and-swap on
 *   the version last seen, so a fence by another node makes the next write fail (409) and the
 *   grant and claims end there.
 * - MemberView: one list + watch over every member Lease (label vipd.io/member=true), applied in
 *   resourceVersion order, with a callback after each event so the runner can decide pending
 *   claims at exactly that point of the order.
 * - fenceMember: the compare-and-swap that voids an expired member's claims.
 * The API work is shared: reads and writes go through the one Lease store (k8s/lease-store.ts),
 * as the elected Leases' do, and the view runs on the list+watch Reflector (k8s/reflector.ts), as
 * the services controller's caches do. The rules (grant from the send time, claims, what a 409
 * or 404 means, the member table) stay here.
 *
 * API writes at steady state: one per node per retryPeriod, whatever the number of Services.
 */
import { monotonicClock, type Clock } from '../util/clock.js';
import { sleep, withSignal } from '../util/signals.js';
import { advertisedSeconds, microTime, type LeaseTiming } from '../election/lease/state.js';
import { describeError, httpStatus, type ApiClient } from '../k8s/client.js';
import { LeaseObjectStore, type LeaseLike, type LeaseWrite } from '../k8s/lease-store.js';
import { Reflector, type ReflectorEvent } from '../k8s/reflector.js';
import { paths } from '../k8s/resources.js';
import type { Logger } from '../observe/log.js';
import {
  CLAIMS_ANNOTATION,
  MEMBER_LABEL,
  MemberTable,
  formatClaims,
  memberLeaseName,
  nodeOfLease,
  parseClaims,
  type MemberRecord,
} from './logic/membership.js';

// The coordinator reads the view's raw copies under this name.
export type { LeaseLike };

export function toMemberRecord(l: LeaseLike): MemberRecord | undefined {
  const node = nodeOfLease(l.metadata?.name);
  if (node === undefined) return undefined;
  const r: MemberRecord = {
    node,
    holderIdentity: l.spec?.holderIdentity ?? '',
    claims: parseClaims(l.metadata?.annotations?.[CLAIMS_ANNOTATION]),
    resourceVersion: l.metadata?.resourceVersion ?? '',
  };
  if (typeof l.spec?.leaseDurationSeconds === 'number') r.leaseDurationSeconds = l.spec.leaseDurationSeconds;
  return r;
}

function timeText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  return v instanceof Date ? microTime(v.getTime()) : String(v);
}

export type GrantChange = { kind: 'hold'; until: number; reason: string } | { kind: 'lost'; reason: string };

export interface MemberLeaseOptions {
  client: ApiClient;
  namespace: string;
  node: string;
  timing: LeaseTiming;
  /** Per API attempt; default the client's. */
  requestTimeoutMs?: number;
  clock?: Clock;
  wall?: () => number;
  log: Logger;
}

export class MemberLease {
  readonly name: string;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private readonly store: LeaseObjectStore;
  /** The newest copy of our Lease: what every write compares-and-swaps on and is built on. */
  private last: LeaseLike | undefined;
  private until = -Infinity;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private want: string[] = [];
  /** Claims text of our last successful write; undefined forces a write. */
  private written: string | undefined;
  private nextRenewAt = 0;
  private backoffUntil = 0;
  private waker: (() => void) | undefined;
  private failures = 0;
  private readonly grantListeners = new Set<(g: GrantChange) => void>();
  private readonly writeListeners = new Set<(claims: readonly string[], version: string) => void>();
  private readonly fenceListeners = new Set<(why: string) => void>();

  constructor(private readonly o: MemberLeaseOptions) {
    this.name = memberLeaseName(o.node);
    this.clock = o.clock ?? monotonicClock;
    this.wall = o.wall ?? Date.now;
    this.store = new LeaseObjectStore({
      client: o.client,
      namespace: o.namespace,
      name: this.name,
      op: 'member-lease',
      requestTimeoutMs: o.requestTimeoutMs,
      // Every call within renewDeadline, endpoint failover included: a write answered later
      // would buy a grant that has already ended.
      opTimeoutMs: o.timing.renewDeadlineMs,
    });
  }

  /** Deadline of the current grant (monotonic), or -Infinity. */
  grantUntil(): number {
    return this.until;
  }

  hasGrant(now = this.clock.now()): boolean {
    return now < this.until;
  }

  onGrant(fn: (g: GrantChange) => void): () => void {
    this.grantListeners.add(fn);
    return () => this.grantListeners.delete(fn);
  }

  /** After every successful write: the claims it listed and the version it produced. */
  onWritten(fn: (claims: readonly string[], version: string) => void): () => void {
    this.writeListeners.add(fn);
    return () => this.writeListeners.delete(fn);
  }

  /** Our Lease no longer names us (fenced, released or deleted by someone else): our claims are void. */
  onFenced(fn: (why: string) => void): () => void {
    this.fenceListeners.add(fn);
    return () => this.fenceListeners.delete(fn);
  }

  /** The claims the Lease should list; a change is written at once. */
  setClaims(ips: readonly string[]): void {
    const next = [...new Set(ips)].sort();
    if (formatClaims(next) === formatClaims(this.want)) return;
    this.want = next;
    this.waker?.();
  }

  /** Reads our Lease (at start: what an earlier run of this agent claimed). */
  async read(signal: AbortSignal): Promise<LeaseLike | undefined> {
    this.last = await this.store.get(signal);
    return this.last;
  }

  /** We own the member label, the claims annotation and the spec; the store carries the rest over. */
  private content(holderIdentity: string, claims: string, leaseSeconds: number): LeaseWrite {
    const prev = this.last;
    const ours = prev?.spec?.holderIdentity === this.o.node;
    const now = microTime(this.wall());
    const prevTransitions = prev?.spec?.leaseTransitions ?? 0;
    const acquire = holderIdentity === this.o.node && ours ? (timeText(prev?.spec?.acquireTime) ?? now) : now;
    return {
      labels: { [MEMBER_LABEL]: 'true' },
      annotations: { [CLAIMS_ANNOTATION]: claims },
      spec: {
        holderIdentity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: acquire,
        renewTime: now,
        leaseTransitions: prev === undefined ? 0 : ours || holderIdentity === '' ? prevTransitions : prevTransitions + 1,
      },
    };
  }

  /** Compare-and-swap on the version last seen; a Lease never seen is created. */
  private put(w: LeaseWrite, signal: AbortSignal): Promise<LeaseLike> {
    const rv = this.last?.metadata?.resourceVersion;
    return rv ? this.store.update(rv, w, signal, this.last) : this.store.create(w, signal, this.last);
  }

  private emitGrant(g: GrantChange): void {
    for (const fn of this.grantListeners) fn(g);
  }

  private lose(reason: string): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    const had = this.until > -Infinity;
    this.until = -Infinity;
    if (had) {
      this.o.log.warn({ lease: this.name, reason }, 'member grant lost: not holding any service IP');
      this.emitGrant({ kind: 'lost', reason });
    }
  }

  private extend(sentAt: number): void {
    const until = sentAt + this.o.timing.renewDeadlineMs;
    const now = this.clock.now();
    if (until <= now || until <= this.until) return;
    const fresh = this.until === -Infinity;
    this.until = until;
    if (fresh) this.o.log.info({ lease: this.name }, 'member grant acquired');
    this.armDeadline();
    this.emitGrant({ kind: 'hold', until, reason: fresh ? `member Lease ${this.name} acquired` : `member Lease ${this.name} renewed` });
  }

  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const fire = (): void => {
      this.deadlineTimer = undefined;
      const left = this.until - this.clock.now();
      if (left > 0) {
        this.deadlineTimer = setTimeout(fire, Math.ceil(left));
        return;
      }
      this.lose(`no successful write of member Lease ${this.name} within ${this.o.timing.renewDeadlineMs} ms`);
    };
    this.deadlineTimer = setTimeout(fire, Math.max(0, Math.ceil(this.until - this.clock.now())));
  }

  private fenced(why: string): void {
    this.o.log.warn({ lease: this.name, reason: why }, 'member Lease fenced or gone: our service IP claims are void');
    this.lose(why);
    this.written = undefined;
    for (const fn of this.fenceListeners) fn(why);
  }

  /** One renew (or acquire), listing the current claims. */
  private async write(signal: AbortSignal): Promise<void> {
    const claims = this.want;
    const text = formatClaims(claims);
    const sentAt = this.clock.now();
    try {
      const res = await this.put(this.content(this.o.node, text, advertisedSeconds(this.o.timing.leaseDurationMs)), signal);
      this.last = res;
      this.written = text;
      this.failures = 0;
      this.nextRenewAt = sentAt + this.o.timing.retryPeriodMs;
      this.extend(sentAt);
      const version = res.metadata?.resourceVersion ?? '';
      for (const fn of this.writeListeners) fn(claims, version);
    } catch (err) {
      if (signal.aborted) return;
      const code = httpStatus(err);
      if (code === 409) {
        // Changed since we read it: fenced by another node, or our own earlier write whose answer
        // we lost. Read it and decide; the next write goes out at once.
        this.written = undefined;
        const fresh = await this.read(signal).catch(() => undefined);
        if (fresh && fresh.spec?.holderIdentity !== this.o.node) this.fenced(`member Lease ${this.name} names "${fresh.spec?.holderIdentity ?? ''}" (fenced or released by another node)`);
        if (!fresh) this.backoffUntil = this.clock.now() + this.o.timing.retryPeriodMs / 2;
        return;
      }
      if (code === 404) {
        this.last = undefined;
        this.fenced(`member Lease ${this.name} was deleted`);
        return;
      }
      this.failures++;
      if (this.failures === 1 || this.failures % 20 === 0) this.o.log.warn({ lease: this.name, err: describeError(err), failures: this.failures }, 'cannot write member Lease');
      this.backoffUntil = this.clock.now() + this.o.timing.retryPeriodMs / 2;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        const now = this.clock.now();
        const dirty = this.written === undefined || formatClaims(this.want) !== this.written;
        const due = Math.max(this.backoffUntil, dirty ? now : this.nextRenewAt);
        if (due <= now) {
          await this.write(signal);
          continue;
        }
        // setClaims() wakes the loop early: a changed claim set is written at once.
        const woken = new AbortController();
        this.waker = () => woken.abort();
        await withSignal([signal, woken.signal], undefined, (s) => sleep(due - now, s));
        this.waker = undefined;
      }
    } finally {
      if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
  }

  /**
   * Shutdown, after every holder has let go: clears the holder, which voids the claims, so the
   * other nodes take over at once instead of after leaseDuration. Bounded by `timeoutMs`.
   */
  async release(timeoutMs: number): Promise<boolean> {
    this.lose('shutting down');
    const signal = AbortSignal.timeout(timeoutMs);
    for (let attempt = 0; attempt < 3 && !signal.aborted; attempt++) {
      if (!this.last || this.last.spec?.holderIdentity !== this.o.node) return true;
      try {
        // The claims stay listed (a Lease naming nobody voids them): the next holders see who had
        // each address and take it over without the cold-start probe.
        this.last = await this.put(this.content('', this.last.metadata?.annotations?.[CLAIMS_ANNOTATION] ?? '', 1), signal);
        this.o.log.info({ lease: this.name }, 'member Lease released');
        return true;
      } catch (err) {
        if (httpStatus(err) === 409) {
          await this.read(signal).catch(() => undefined);
          continue;
        }
        if (httpStatus(err) === 404) return true;
        this.o.log.warn({ lease: this.name, err: describeError(err) }, 'cannot release member Lease; the other nodes take over after leaseDuration');
        return false;
      }
    }
    return false;
  }
}

/**
 * Voids an expired member's claims: clears its holderIdentity, compare-and-swap on the version
 * this node saw unchanged for leaseDuration. 'changed': the member (or another fencer) wrote since.
 */
export async function fenceMember(client: ApiClient, namespace: string, seen: LeaseLike, signal: AbortSignal, requestTimeoutMs?: number): Promise<'fenced' | 'changed'> {
  const rv = seen.metadata?.resourceVersion;
  if (!rv) return 'changed';
  const store = new LeaseObjectStore({ client, namespace, name: seen.metadata?.name ?? '', op: 'member-lease', opNames: { update: 'member-lease.fence' }, requestTimeoutMs });
  // Built on `seen`, so the claims stay: they no longer count (the Lease names nobody), and a
  // restarted agent reads them to remove addresses its predecessor left behind.
  const spec = { holderIdentity: '', leaseDurationSeconds: seen.spec?.leaseDurationSeconds ?? 1, leaseTransitions: seen.spec?.leaseTransitions ?? 0, renewTime: microTime(Date.now()) };
  try {
    await store.update(rv, { spec }, signal, seen);
    return 'fenced';
  } catch (err) {
    const code = httpStatus(err);
    if (code === 409 || code === 404) return 'changed';
    throw err;
  }
}

export type ViewUpdate = { kind: 'list' } | { kind: 'event'; node: string };

export interface MemberViewOptions {
  client: ApiClient;
  namespace: string;
  leaseDurationMs: number;
  retryPeriodMs: number;
  requestTimeoutMs?: number;
  clock?: Clock;
  log: Logger;
}

export class MemberView {
  readonly table: MemberTable;
  private readonly clock: Clock;
  private readonly leases: Reflector<LeaseLike>;
  private readonly listeners = new Set<(u: ViewUpdate) => void>();

  constructor(private readonly o: MemberViewOptions) {
    this.table = new MemberTable(o.leaseDurationMs);
    this.clock = o.clock ?? monotonicClock;
    this.leases = new Reflector<LeaseLike>({
      name: 'member-leases',
      client: o.client,
      log: o.log,
      path: paths.leases(o.namespace),
      labelSelector: `${MEMBER_LABEL}=true`,
      requestTimeoutMs: o.requestTimeoutMs,
      listOpTimeoutMs: Math.max(o.leaseDurationMs, 5_000),
      // Every member renews each retryPeriod (this node too), so a silent stream is a dead one.
      idleTimeoutMs: Math.max(2_000, 4 * o.retryPeriodMs),
      // Membership decides who may announce: recover within seconds, not the controller's 30 s.
      backoff: { minMs: 200, maxMs: 5_000 },
      emptyWatchMs: 1_000,
      relistAfterError: true,
      clock: this.clock,
    });
    this.leases.onChange((e) => this.apply(e));
  }

  get synced(): boolean {
    return this.leases.synced;
  }

  /** The last object seen for a node's Lease (what a fence compares against). */
  raw(node: string): LeaseLike | undefined {
    return this.leases.get(this.o.namespace, memberLeaseName(node));
  }

  /** Called synchronously after each list and each event, in resourceVersion order. */
  onUpdate(fn: (u: ViewUpdate) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Drop the watch and list again (our view may be stale: a fence found a newer version). */
  relist(): void {
    this.leases.relist();
  }

  run(signal: AbortSignal): Promise<void> {
    return this.leases.run(signal);
  }

  private emit(u: ViewUpdate): void {
    for (const fn of this.listeners) fn(u);
  }

  /** Leases whose name is no member's are kept by the reflector but never reach the table. */
  private apply(e: ReflectorEvent<LeaseLike>): void {
    const now = this.clock.now();
    if (e.kind === 'list') {
      const recs = this.leases.list().flatMap((l) => toMemberRecord(l) ?? []);
      this.table.replaceAll(recs, now);
      this.emit({ kind: 'list' });
      return;
    }
    const rec = toMemberRecord(e.object);
    if (!rec) return;
    if (e.kind === 'deleted') this.table.remove(rec.node, now);
    else this.table.apply(rec, now);
    this.emit({ kind: 'event', node: rec.node });
  }
}
