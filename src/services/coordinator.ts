/**
 * LoadBalancer Services in the agent (svc_enable=true): coordinates the services controller, the
 * membership, and one Holder per service IP this node holds. It gets the agent's API client,
 * holder factory and (with peers) grant member; it builds none of them, and never reads Config.
 *
 * Two memberships (svc_membership): with 'peers', GrantsCoordinator below (grants from the peer
 * voters, docs/services.md). With 'lease', Coordinator: member Leases and the membership view
 * (logic/membership.ts, member-lease.ts), as follows.
 *
 * For each service IP X, this node's holder gets `hold until T` only while
 *   - the plan (rendezvous over live members, externalTrafficPolicy Local) gives X to this node,
 *   - X is a CONFIRMED claim in this node's member Lease (membership.ts), and
 *   - T = the member grant's deadline (last successful member-Lease write sent + renewDeadline)
 *     is in the future;
 * otherwise `standby`. A claim leaves the Lease only after the holder has unbound X. Service IPs
 * equal to a configured VIP are never held here: the VIP's own holder has them.
 *
 * Allocation (status writes) happens on one node: the holder of the agent's VIP Lease when the
 * agent passes its verdicts (`controlPlaneVerdicts`), else the holder of the
 * `vipd-services-allocator` Lease, one Lease for all Services.
 *
 * Shutdown: every holder lets go first, then the member Lease is released (holder cleared) so the
 * other nodes take this node's IPs at once, then the allocator Lease is released.
 */
import { monotonicClock, type Clock } from '../util/clock.js';
import { sleep, untilAborted } from '../util/signals.js';
import type { LeaseTiming } from '../election/lease/state.js';
import { LeaseElector } from '../election/lease/elector.js';
import { ApiLeaseStore } from '../election/lease/store.js';
import type { Verdict } from '../election/types.js';
import { describeError, type ApiClient } from '../k8s/client.js';
import type { Logger } from '../observe/log.js';
import { NoAnnounceInterfaceError, type Holder, type MakeHolder, type VipSpec } from '../vip/holder.js';
import { familyBits, familyOf } from '../net/ip.js';
import { ServicesController } from './controller.js';
import { ServiceAnnouncer, type AnnouncedAddress } from './announcements.js';
import type { HoldingChange } from '../vip/holder.js';
import { fenceMember, MemberLease, MemberView, type LeaseLike } from './member-lease.js';
import { ClaimBook, parseClaims, type MemberObservation, CLAIMS_ANNOTATION } from './logic/membership.js';
import type { GrantMember } from './grant-net.js';

export const ALLOCATOR_LEASE = 'vipd-services-allocator';

export interface ServicesOptions {
  /** Where the member Leases (and the allocator Lease) live. */
  leaseNamespace: string;
  timing: LeaseTiming;
  requestTimeoutMs: number;
  /** svc_namespace; undefined = every namespace. */
  namespace: string | undefined;
  classFilter: { className: string; classOnly: boolean; legacyHandling: boolean };
  poolConfigMap: { namespace: string; name: string };
  /** svc_metallb (undefined: off) and svc_metallb_namespace (undefined: every namespace). */
  metallb?: { namespace: string | undefined } | undefined;
  /** Canonical control-plane VIPs: their own holder has them, never a service holder. */
  controlPlaneVips: string[];
  /**
   * The control-plane election's holder allocates; without an election, the allocator Lease does;
   * a worker (a service member only) never does.
   */
  allocator: 'control-plane' | 'own-lease' | 'none';
  /**
   * Who may announce which IP: grants from the peer voters (grant-net.ts), member Leases, or, in
   * BGP mode, every eligible node at once (the router spreads the flows; EcmpCoordinator).
   */
  membership: 'peers' | 'lease' | 'ecmp';
}

export interface ServicesCoordinatorOptions {
  options: ServicesOptions;
  /** This node's name: member Lease holderIdentity. */
  identity: string;
  /** The agent's one API client (not closed here). */
  client: ApiClient;
  /** The agent's one holder factory (src/app/holders.ts): started, stale copy removed. */
  makeHolder: MakeHolder;
  log: Logger;
  clock?: Clock;
  /**
   * The agent's control-plane elector verdicts (with an election): its holder is the one
   * allocator. Absent: a `vipd-services-allocator` Lease is elected.
   */
  controlPlaneVerdicts?: (listener: (v: Verdict) => void) => () => void;
  /** With membership 'peers': this node's grant member (started; stopped here on shutdown). */
  grants?: GrantMember;
}

export interface ServicesStatus {
  members: string[];
  grantUntil: number;
  claims: Record<string, string>;
  holding: string[];
  /** The addresses this node answers for, with their Services, interface, reason and since. */
  announcing: AnnouncedAddress[];
}

export interface ServicesCoordinator {
  /** Runs until `signal` aborts; then lets go of every service IP and releases the Leases. */
  run(signal: AbortSignal): Promise<void>;
  /** Frees everything; for a coordinator whose run() never started (a failed agent start). Idempotent. */
  close(): Promise<void>;
  status(): ServicesStatus;
}

interface HolderEntry {
  holder?: Holder;
  /** The interfaces it was opened for (JSON; '' for vip_interface). */
  interfaces: string;
  opening?: Promise<void>;
  releasing?: boolean;
  closing?: boolean;
}

export function startServices(o: ServicesCoordinatorOptions): ServicesCoordinator {
  const log = o.log.child({ mod: 'services' });
  if (o.options.membership === 'ecmp') return new EcmpCoordinator(o, log);
  if (o.options.membership === 'peers') {
    if (!o.grants) throw new Error('services: membership "peers" needs the grant member');
    return new GrantsCoordinator(o, o.grants, log);
  }
  return new Coordinator(o, log);
}

/** One Holder per service IP, opened on demand and closed when the IP is no longer ours. */
class ServiceHolders {
  readonly entries = new Map<string, HolderEntry>();
  stopping = false;
  /** Address → the last "none of its interfaces is here" message logged, so it is logged once. */
  private readonly missingInterfaces = new Map<string, string>();

  constructor(
    private readonly makeHolder: ServicesCoordinatorOptions['makeHolder'],
    private readonly log: Logger,
    /** Called whenever a holder opened or closed (the caller reconciles). */
    private readonly changed: () => void,
    /** Told when a holder starts or stops answering (the ServiceAnnouncement records). */
    private readonly announcer: ServiceAnnouncer | undefined,
    /** The interfaces to announce an address on (L2Advertisement interfaces); undefined: vip_interface. */
    private readonly interfacesFor: (ip: string) => readonly string[] | undefined,
  ) {}

  ensure(ip: string): void {
    if (this.stopping) return;
    const interfaces = this.interfacesFor(ip);
    const key = interfaces ? JSON.stringify(interfaces) : '';
    const existing = this.entries.get(ip);
    if (existing) {
      // An L2Advertisement changed where this address is announced: let go here, then open it again
      // on the new interface (close() reconciles once the old holder is gone).
      if (existing.interfaces !== key && existing.holder) this.close(ip, existing);
      return;
    }
    const e: HolderEntry = { interfaces: key };
    this.entries.set(ip, e);
    e.opening = this.open(ip, interfaces).then(
      (h) => {
        e.opening = undefined;
        e.holder = h;
        if (this.stopping) {
          void h.close('shutdown');
          return;
        }
        this.changed();
      },
      (err: unknown) => {
        this.entries.delete(ip);
        if (err instanceof NoAnnounceInterfaceError) {
          // Not a fault to retry every second: the node lacks the interface until someone adds it.
          if (this.missingInterfaces.get(ip) !== err.message) this.log.warn({ vip: ip, interfaces: err.wanted, have: err.have }, err.message);
          this.missingInterfaces.set(ip, err.message);
          setTimeout(() => this.changed(), 10_000).unref();
          return;
        }
        this.log.error({ vip: ip, err: describeError(err) }, 'cannot set up a holder for a service IP; retrying');
        setTimeout(() => this.changed(), 1_000).unref();
      },
    );
  }

  open(ip: string, interfaces: readonly string[] | undefined): Promise<Holder> {
    const family = familyOf(ip) ?? 4;
    const vip: VipSpec = { ip, family, prefix: familyBits(family) };
    return this.makeHolder(vip, this.log.child({ vip: ip, service: true }), interfaces).then((h) => {
      this.missingInterfaces.delete(ip);
      const a = this.announcer;
      if (a) h.onHolding((c: HoldingChange) => a.holding(ip, h.iface, c));
      return h;
    });
  }

  close(ip: string, e: HolderEntry): void {
    if (e.closing || !e.holder) return;
    e.closing = true;
    void e.holder.close('service IP no longer ours').finally(() => {
      if (this.entries.get(ip) === e) this.entries.delete(ip);
      this.changed();
    });
  }

  holding(): string[] {
    return [...this.entries].filter(([, e]) => e.holder?.holding()).map(([ip]) => ip);
  }

  /**
   * Once the holder's queued kernel work (the unbind a standby started) is done and it has not
   * been re-claimed meanwhile, runs `then`; at most one wait per entry at a time.
   */
  whenUnbound(e: HolderEntry, then: () => void): void {
    if (e.releasing || !e.holder) return;
    e.releasing = true;
    const h = e.holder;
    void h.settled().then(() => {
      e.releasing = false;
      if (!h.holding()) then();
    });
  }

  async closeAll(reason: string): Promise<void> {
    this.stopping = true;
    const opening = [...this.entries.values()].map((e) => e.opening).filter((p): p is Promise<void> => p !== undefined);
    await Promise.allSettled(opening);
    await Promise.allSettled([...this.entries.values()].map((e) => e.holder?.close(reason)));
    this.entries.clear();
  }
}

/** Builds the allocator side both modes share: the control-plane elector's verdicts, or an allocator Lease. */
function allocatorOf(o: ServicesCoordinatorOptions, ctl: ServicesController, clock: Clock, log: Logger): { elector?: LeaseElector; unsubscribe?: () => void } {
  if (o.options.allocator === 'none') return {};
  if (o.controlPlaneVerdicts) return { unsubscribe: o.controlPlaneVerdicts((v) => ctl.setAllocator(v)) };
  const c = o.options;
  const elector = new LeaseElector({
    ...c.timing,
    store: new ApiLeaseStore({ client: o.client, namespace: c.leaseNamespace, name: ALLOCATOR_LEASE, requestTimeoutMs: c.requestTimeoutMs }),
    identity: o.identity,
    clock,
    log: log.child({ mod: 'allocator' }),
  });
  elector.onVerdict((v) => ctl.setAllocator(v));
  return { elector };
}

/** This node's ServiceAnnouncement records (best effort, services/announcements.ts). */
function announcerOf(o: ServicesCoordinatorOptions, ctl: ServicesController, log: Logger): ServiceAnnouncer {
  return new ServiceAnnouncer({
    client: o.client,
    node: o.identity,
    source: ctl,
    ...(o.options.namespace ? { namespace: o.options.namespace } : {}),
    requestTimeoutMs: o.options.requestTimeoutMs,
    log: log.child({ mod: 'announcements' }),
  });
}

/** How long shutdown waits for the records to say this node announces nothing any more. */
const ANNOUNCEMENT_SETTLE_MS = 2_000;

function controllerOf(o: ServicesCoordinatorOptions, clock: Clock, log: Logger): ServicesController {
  const c = o.options;
  return new ServicesController({
    client: o.client,
    nodeName: o.identity,
    ...(c.namespace ? { namespace: c.namespace } : {}),
    classFilter: c.classFilter,
    poolConfigMap: c.poolConfigMap,
    ...(c.metallb ? { metallb: c.metallb } : {}),
    controlPlaneVips: c.controlPlaneVips,
    clock,
    log,
  });
}

/**
 * Membership 'peers': the grant member (grant-net.ts, logic/grants.ts) says which IPs this node
 * may answer for and until when, and who is live; no member Lease, no fence, nothing here needs
 * the API once the Services are cached. For each service IP X this node's holder gets
 * `hold until T` exactly while the member reports a grant on X with deadline T; placement asks
 * the member to claim what rendezvous gives this node over the live members.
 */
class GrantsCoordinator implements ServicesCoordinator {
  private readonly clock: Clock;
  private readonly ctl: ServicesController;
  private readonly announcer: ServiceAnnouncer;
  private readonly holders: ServiceHolders;
  private readonly cpVips: Set<string>;
  private readonly allocator: { elector?: LeaseElector; unsubscribe?: () => void };
  private members: string[] = [];
  private wanted = '';
  /** The last other member placement gave each IP to: a takeover from it skips the cold-start probe. */
  private readonly lastOtherOwner = new Map<string, string>();
  private stopping = false;
  private closed = false;
  private readonly unsub: Array<() => void> = [];
  private readonly inner = new AbortController();

  constructor(
    private readonly o: ServicesCoordinatorOptions,
    private readonly member: GrantMember,
    private readonly log: Logger,
  ) {
    this.clock = o.clock ?? monotonicClock;
    this.cpVips = new Set(o.options.controlPlaneVips);
    this.ctl = controllerOf(o, this.clock, log);
    this.announcer = announcerOf(o, this.ctl, log);
    this.holders = new ServiceHolders(o.makeHolder, o.log, () => this.reconcile(), this.announcer, (ip) => this.ctl.announceInterfaces(ip));
    this.ctl.onDesired(() => this.reconcile());
    this.allocator = allocatorOf(o, this.ctl, this.clock, log);
    this.unsub.push(member.onLive(() => this.reconcile()));
    this.unsub.push(member.onHolds(() => this.reconcile()));
  }

  status(): ServicesStatus {
    const holds = this.member.currentHolds();
    return {
      members: this.members,
      grantUntil: Math.min(...holds.values()),
      claims: Object.fromEntries([...holds.keys()].map((ip) => [ip, 'granted'])),
      holding: this.holders.holding(),
      announcing: this.announcer.announcing(),
    };
  }

  private reconcile(): void {
    if (this.stopping || this.closed) return;
    const now = this.clock.now();
    this.noteOwners();
    // Others hand this node addresses only once it can serve them.
    this.member.setCandidate(this.ctl.placementReady());
    const live = [...this.member.liveMembers()];
    if (live.join(',') !== this.members.join(',')) {
      this.log.info({ members: live, before: this.members }, 'service members changed');
      this.members = live;
      this.ctl.setMembers(live);
    }
    const want = this.ctl.desired().filter((ip) => !this.cpVips.has(ip));
    const key = [...want].sort().join(',');
    if (key !== this.wanted) {
      this.wanted = key;
      // Reports new holds synchronously, which lands back here with the same want: no loop.
      this.member.want(want);
    }
    const holds = this.member.currentHolds();
    const wantSet = new Set(want);
    for (const ip of new Set([...wantSet, ...holds.keys()])) this.holders.ensure(ip);
    for (const [ip, e] of this.holders.entries) {
      if (e.closing || !e.holder) continue;
      const until = holds.get(ip);
      if (until !== undefined && until > now) {
        const prev = this.lastOtherOwner.get(ip);
        e.holder.apply({ kind: 'hold', until, reason: 'service IP granted by a majority of the voters', ...(prev ? { previousHolder: prev } : {}) });
        continue;
      }
      e.holder.apply({ kind: 'standby', reason: wantSet.has(ip) ? 'service IP not granted (yet)' : 'service IP moved' });
      if (!wantSet.has(ip)) this.holders.whenUnbound(e, () => this.holders.close(ip, e));
    }
  }

  private noteOwners(): void {
    const units = this.ctl.plan().units;
    const ips = new Set(units.map((u) => u.ip));
    for (const ip of this.lastOtherOwner.keys()) if (!ips.has(ip)) this.lastOtherOwner.delete(ip);
    for (const u of units) {
      const owner = u.candidates[0];
      if (owner !== undefined && owner !== this.o.identity) this.lastOtherOwner.set(u.ip, owner);
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    if (this.closed) throw new Error('services coordinator is closed');
    const tasks: Array<Promise<unknown>> = [this.ctl.run(this.inner.signal), this.announcer.run()];
    if (this.allocator.elector) tasks.push(this.allocator.elector.run(signal));
    const allocator = this.o.options.allocator === 'none' ? 'the control-plane agents' : this.allocator.elector ? ALLOCATOR_LEASE : 'the VIP Lease holder';
    this.log.info({ node: this.o.identity, membership: 'peers', allocator }, 'services started');
    this.reconcile();
    try {
      await untilAborted(signal);
    } finally {
      this.stopping = true;
      // Holders let go first; only then does the member release its claims (after the linger).
      await Promise.race([this.holders.closeAll('shutdown'), sleep(3_000, undefined, { unref: true })]);
      // The last record writes run alongside the release, never delaying it (tasks waits for them).
      void this.announcer.finish(ANNOUNCEMENT_SETTLE_MS);
      await this.member.stop();
      this.inner.abort();
      for (const u of this.unsub.splice(0)) u();
      this.allocator.unsubscribe?.();
      await Promise.allSettled(tasks);
      this.closed = true;
      this.log.info('services stopped; service IPs removed');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopping = true;
    this.inner.abort();
    void this.announcer.finish(0);
    for (const u of this.unsub.splice(0)) u();
    this.allocator.unsubscribe?.();
    await this.holders.closeAll('closed');
    await this.member.stop();
    this.closed = true;
  }
}

/**
 * BGP mode: no membership and no grants. Every node announces each service IP it is eligible for,
 * and the router spreads the flows over them (ECMP): with externalTrafficPolicy Cluster that is
 * every node running vipd, with Local only the nodes with a ready local endpoint. Placement over
 * this node alone gives exactly that: a unit's candidates are this node when it may serve it.
 * A node that dies stops being a next hop when its BGP session (or BFD) goes down; nothing here
 * needs to notice it.
 */
class EcmpCoordinator implements ServicesCoordinator {
  private readonly clock: Clock;
  private readonly ctl: ServicesController;
  private readonly announcer: ServiceAnnouncer;
  private readonly holders: ServiceHolders;
  private readonly cpVips: Set<string>;
  private readonly allocator: { elector?: LeaseElector; unsubscribe?: () => void };
  private stopping = false;
  private closed = false;
  private readonly inner = new AbortController();

  constructor(
    private readonly o: ServicesCoordinatorOptions,
    private readonly log: Logger,
  ) {
    this.clock = o.clock ?? monotonicClock;
    this.cpVips = new Set(o.options.controlPlaneVips);
    this.ctl = controllerOf(o, this.clock, log);
    this.ctl.setMembers([o.identity]);
    this.announcer = announcerOf(o, this.ctl, log);
    this.holders = new ServiceHolders(o.makeHolder, o.log, () => this.reconcile(), this.announcer, (ip) => this.ctl.announceInterfaces(ip));
    this.ctl.onDesired(() => this.reconcile());
    this.allocator = allocatorOf(o, this.ctl, this.clock, log);
  }

  status(): ServicesStatus {
    const holding = this.holders.holding();
    return { members: [this.o.identity], grantUntil: Number.POSITIVE_INFINITY, claims: Object.fromEntries(holding.map((ip) => [ip, 'ecmp'])), holding, announcing: this.announcer.announcing() };
  }

  private reconcile(): void {
    if (this.stopping || this.closed) return;
    const want = new Set(this.ctl.desired().filter((ip) => !this.cpVips.has(ip)));
    for (const ip of want) this.holders.ensure(ip);
    for (const [ip, e] of this.holders.entries) {
      if (e.closing || !e.holder) continue;
      if (want.has(ip)) {
        e.holder.apply({ kind: 'hold', until: Number.POSITIVE_INFINITY, reason: 'eligible for the service IP (ECMP)', previousHolder: 'ecmp' });
        continue;
      }
      e.holder.apply({ kind: 'standby', reason: 'no longer eligible for the service IP' });
      this.holders.whenUnbound(e, () => this.holders.close(ip, e));
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    if (this.closed) throw new Error('services coordinator is closed');
    const tasks: Array<Promise<unknown>> = [this.ctl.run(this.inner.signal), this.announcer.run()];
    if (this.allocator.elector) tasks.push(this.allocator.elector.run(signal));
    this.log.info({ node: this.o.identity, membership: 'ecmp', allocator: this.allocator.elector ? ALLOCATOR_LEASE : 'the control-plane agents' }, 'services started');
    this.reconcile();
    try {
      await untilAborted(signal);
    } finally {
      this.stopping = true;
      await Promise.race([this.holders.closeAll('shutdown'), sleep(3_000, undefined, { unref: true })]);
      void this.announcer.finish(ANNOUNCEMENT_SETTLE_MS);
      this.inner.abort();
      this.allocator.unsubscribe?.();
      await Promise.allSettled(tasks);
      this.closed = true;
      this.log.info('services stopped; service IPs removed');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopping = true;
    this.inner.abort();
    void this.announcer.finish(0);
    this.allocator.unsubscribe?.();
    await this.holders.closeAll('closed');
    this.closed = true;
  }
}

class Coordinator implements ServicesCoordinator {
  private readonly clock: Clock;
  private readonly me: string;
  private readonly lease: MemberLease;
  private readonly view: MemberView;
  private readonly ctl: ServicesController;
  private readonly announcer: ServiceAnnouncer;
  private readonly book = new ClaimBook();
  private readonly holderSet: ServiceHolders;
  private readonly cpVips: Set<string>;
  private readonly fencing = new Map<string, string>();
  private allocator: LeaseElector | undefined;
  private unsubAllocator: (() => void) | undefined;
  private members: string[] = [];
  private lastWritten = '';
  private lastClaimsText = '';
  private stopping = false;
  private closed = false;
  private changeTimer: NodeJS.Timeout | undefined;
  private inner = new AbortController();

  private readonly client: ApiClient;
  private readonly opts: ServicesOptions;

  constructor(
    private readonly o: ServicesCoordinatorOptions,
    private readonly log: Logger,
  ) {
    const c = (this.opts = o.options);
    const { timing, requestTimeoutMs } = c;
    const client = (this.client = o.client);
    this.clock = o.clock ?? monotonicClock;
    this.me = o.identity;
    this.cpVips = new Set(c.controlPlaneVips);
    this.lease = new MemberLease({ client, namespace: c.leaseNamespace, node: this.me, timing, requestTimeoutMs, clock: this.clock, log });
    this.view = new MemberView({ client, namespace: c.leaseNamespace, leaseDurationMs: timing.leaseDurationMs, retryPeriodMs: timing.retryPeriodMs, requestTimeoutMs, clock: this.clock, log });
    this.ctl = controllerOf(o, this.clock, log);
    this.announcer = announcerOf(o, this.ctl, log);
    this.holderSet = new ServiceHolders(o.makeHolder, o.log, () => this.reconcile(), this.announcer, (ip) => this.ctl.announceInterfaces(ip));
    this.ctl.onDesired(() => this.reconcile());
    this.lease.onGrant((g) => {
      if (g.kind === 'lost') this.log.warn({ reason: g.reason }, 'member grant lost; letting go of every service IP until it is back');
      this.reconcile();
    });
    this.lease.onWritten((claims, version) => {
      if (claims.join(',') !== this.lastClaimsText) this.log.debug({ claims, version }, 'member Lease written with new claims');
      this.lastClaimsText = claims.join(',');
      this.lastWritten = version;
      this.book.written(claims, version);
      // The watch may have delivered this very write before its answer arrived; the view then
      // already holds everything up to it (and maybe more, which can only add conflicts).
      this.confirmPending();
      this.reconcile();
    });
    this.lease.onFenced((why) => this.voidClaims(why));
    this.view.onUpdate(() => this.onView());
    const a = allocatorOf(o, this.ctl, this.clock, log);
    this.allocator = a.elector;
    this.unsubAllocator = a.unsubscribe;
  }

  status(): ServicesStatus {
    const claims: Record<string, string> = {};
    for (const ip of this.book.ips()) claims[ip] = this.book.state(ip)!.kind;
    return {
      members: this.members,
      grantUntil: this.lease.grantUntil(),
      claims,
      holding: this.holderSet.holding(),
      announcing: this.announcer.announcing(),
    };
  }

  // ------------------------------------------------------------------ membership

  /** After each list or watch event of the member Leases, in resourceVersion order. */
  private onView(): void {
    const own = this.view.table.get(this.me);
    if (own && !own.deleted && own.record.holderIdentity === this.me) {
      this.confirmPending();
    } else if (own && this.lastWritten && own.record.resourceVersion !== this.lastWritten && !this.stopping && own.record.holderIdentity !== this.me && this.book.ips().length > 0) {
      // Someone cleared our Lease after our last write: our grant is over and our claims are void.
      // The writer finds out on its next write too; act now.
      this.voidClaims(`member Lease names "${own.record.holderIdentity}" (fenced)`);
    }
    this.reconcile();
  }

  /** Decides pending claims against the view, if it has seen our own Lease at or after their write. */
  private confirmPending(): void {
    const own = this.view.table.get(this.me);
    if (!own || own.deleted || own.record.holderIdentity !== this.me) return;
    const now = this.clock.now();
    const r = this.book.observedOwn(own.record.resourceVersion, (ip) => this.view.table.claimant(ip, this.me, now) !== undefined);
    if (r.confirmed.length) this.log.info({ ips: r.confirmed, version: own.record.resourceVersion }, 'service IP claims confirmed');
    for (const ip of r.retracted) this.log.info({ ip, claimant: this.view.table.claimant(ip, this.me, now) }, 'service IP claimed by another member first; retracting');
  }

  private voidClaims(why: string): void {
    const was = this.book.reset();
    if (was.length > 0) this.log.warn({ ips: was, reason: why }, 'our service IP claims are void; letting go');
    for (const e of this.holderSet.entries.values()) e.holder?.apply({ kind: 'standby', reason: why });
    this.reconcile();
  }

  private fence(o: MemberObservation): void {
    const node = o.record.node;
    const rv = o.record.resourceVersion;
    if (this.fencing.get(node) === rv) return;
    const raw: LeaseLike | undefined = this.view.raw(node);
    if (!raw || raw.metadata?.resourceVersion !== rv) return;
    this.fencing.set(node, rv);
    this.log.warn({ member: node, claims: o.record.claims, unchangedMs: Math.round(this.clock.now() - o.observedAt) }, 'member Lease expired; fencing it so its service IPs can move');
    fenceMember(this.client, this.opts.leaseNamespace, raw, this.inner.signal, this.opts.requestTimeoutMs).then(
      (r) => {
        if (r === 'fenced') {
          this.log.info({ member: node }, 'member fenced');
        } else {
          // Changed since we saw it: the member is alive or someone fenced first; our view may be behind.
          this.log.debug({ member: node }, 'member changed before our fence; listing again');
          this.view.relist();
        }
      },
      (err: unknown) => {
        if (this.inner.signal.aborted) return;
        this.log.warn({ member: node, err: describeError(err) }, 'cannot fence member; will retry');
        setTimeout(() => {
          if (this.fencing.get(node) === rv) this.fencing.delete(node);
          this.reconcile();
        }, this.opts.timing.retryPeriodMs).unref();
      },
    );
  }

  // ------------------------------------------------------------------ the loop

  private reconcile(): void {
    if (this.stopping || this.closed) return;
    const now = this.clock.now();
    const table = this.view.table;
    table.prune(now);
    if (this.view.synced) {
      const live = table.live(now);
      if (live.join(',') !== this.members.join(',')) {
        this.log.info({ members: live, before: this.members }, 'service members changed');
        this.members = live;
        this.ctl.setMembers(live);
      }
    }

    const grant = this.lease.hasGrant(now);
    const want = new Set(this.ctl.desired().filter((ip) => !this.cpVips.has(ip)));
    this.book.setWanted(want, (ip) => grant && this.view.synced && table.claimant(ip, this.me, now) === undefined);
    this.lease.setClaims(this.book.published());

    for (const ip of this.book.ips()) this.holderSet.ensure(ip);
    const until = this.lease.grantUntil();
    for (const [ip, e] of this.holderSet.entries) {
      const st = this.book.state(ip);
      if (e.closing || !e.holder) continue;
      if (st?.kind === 'confirmed' && until > now) {
        const prev = this.previousClaimant(ip);
        e.holder.apply({ kind: 'hold', until, reason: 'service IP claimed; member grant live', ...(prev ? { previousHolder: prev } : {}) });
        continue;
      }
      e.holder.apply({ kind: 'standby', reason: st?.kind === 'releasing' ? 'service IP moved' : until > now ? 'service IP not confirmed' : 'no member grant' });
      if (st?.kind === 'releasing' && !e.releasing) {
        this.holderSet.whenUnbound(e, () => {
          this.book.released(ip);
          this.reconcile();
        });
      } else if (st === undefined && !e.releasing) {
        this.holderSet.close(ip, e);
      }
    }
    // Released before its holder ever opened: nothing was bound.
    for (const ip of this.book.ips()) if (this.book.state(ip)?.kind === 'releasing' && !this.holderSet.entries.get(ip)) this.book.released(ip);

    if (grant && this.view.synced) for (const m of table.expired(now)) if (m.record.node !== this.me) this.fence(m);
    this.armChangeTimer(now);
  }

  /** Who held `ip` before, as far as the member Leases say: a takeover skips the cold-start probe. */
  private previousClaimant(ip: string): string | undefined {
    for (const node of this.view.table.nodes()) {
      if (node === this.me) continue;
      if (this.view.table.get(node)?.record.claims.includes(ip)) return node;
    }
    return undefined;
  }

  private armChangeTimer(now: number): void {
    if (this.changeTimer) clearTimeout(this.changeTimer);
    this.changeTimer = undefined;
    const next = this.view.table.nextChange(now);
    if (next === undefined) return;
    this.changeTimer = setTimeout(() => this.reconcile(), Math.max(0, Math.ceil(next - now)) + 1);
    this.changeTimer.unref();
  }

  // ------------------------------------------------------------------ holders

  /**
   * Addresses an earlier run of this agent claimed (a crash): a holder for each, opened and closed
   * again, removes what is left of it the one way addresses are removed (Holder.start/close).
   */
  private async removeLeftovers(prev: LeaseLike | undefined): Promise<void> {
    const ips = parseClaims(prev?.metadata?.annotations?.[CLAIMS_ANNOTATION]).filter((ip) => !this.cpVips.has(ip) && !this.holderSet.entries.has(ip));
    for (const ip of ips) {
      const interfaces = this.ctl.announceInterfaces(ip);
      const h = await this.holderSet.open(ip, interfaces).catch((err: unknown) => {
        if (err instanceof NoAnnounceInterfaceError) return this.holderSet.open(ip, undefined);
        throw err;
      });
      await h.close('left behind by an earlier run');
    }
    if (ips.length > 0) this.log.info({ ips }, 'cleared service IPs an earlier run of this agent had claimed');
  }

  // ------------------------------------------------------------------ lifecycle

  async run(signal: AbortSignal): Promise<void> {
    if (this.closed) throw new Error('services coordinator is closed');
    const inner = this.inner.signal;
    const tasks: Array<Promise<unknown>> = [this.view.run(inner), this.ctl.run(inner), this.announcer.run()];
    if (this.allocator) tasks.push(this.allocator.run(signal));
    const writer = (async () => {
      // What an earlier run of this agent claimed, before any claim of ours is written.
      for (let delay = 200; !inner.aborted; delay = Math.min(delay * 2, 5_000)) {
        try {
          await this.removeLeftovers(await this.lease.read(inner));
          break;
        } catch (err) {
          if (inner.aborted) return;
          this.log.warn({ err: describeError(err), retryMs: delay }, 'cannot read our member Lease yet; retrying');
          await sleep(delay, undefined, { unref: true });
        }
      }
      await this.lease.run(inner);
    })();
    this.log.info({ node: this.me, lease: this.lease.name, allocator: this.allocator ? ALLOCATOR_LEASE : 'the VIP Lease holder' }, 'services started');
    try {
      await untilAborted(signal);
    } finally {
      await this.shutdown(writer, tasks);
    }
  }

  private async shutdown(writer: Promise<void>, tasks: Array<Promise<unknown>>): Promise<void> {
    this.stopping = true;
    if (this.changeTimer) clearTimeout(this.changeTimer);
    // Holders let go first; only then may the other nodes be told (release) that our IPs are free.
    await Promise.race([this.holderSet.closeAll('shutdown'), sleep(3_000, undefined, { unref: true })]);
    // The last record writes run alongside the release, never delaying it (tasks waits for them).
    void this.announcer.finish(ANNOUNCEMENT_SETTLE_MS);
    this.inner.abort();
    await writer.catch(() => undefined);
    await this.lease.release(Math.min(this.opts.timing.renewDeadlineMs, 5_000));
    this.unsubAllocator?.();
    await Promise.allSettled(tasks);
    this.closed = true;
    this.log.info('services stopped; service IPs removed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopping = true;
    this.inner.abort();
    void this.announcer.finish(0);
    this.unsubAllocator?.();
    await this.holderSet.closeAll('closed');
    this.closed = true;
  }
}
