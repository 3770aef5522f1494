/**
 * The holder: one lifecycle per VIP address. It turns verdicts ("you may hold X until T") into
 * kernel state and wire behaviour, and never talks to Kubernetes.
 *
 * Invariants
 * - The node answers for the VIP only while `now < until` of the last hold verdict. A timer unbinds
 *   at `until`; every frame the announcer sends is also gated on the same check, so a late timer
 *   (a stalled event loop, SIGSTOP then SIGCONT) cannot make the node answer past its deadline.
 * - After a kill -9 or while frozen nothing of ours runs, so the bound comes from outside the
 *   agent's timers:
 *     responder `agent`: the VIP sits on `lo`, the kernel is told not to answer ARP for addresses
 *       that are not on the receiving interface (arp_ignore=1; IPv6 never answers NS for another
 *       interface's address), and only the agent answers. A dead or frozen agent is silent at once.
 *       The address on lo has a kernel lifetime too (vip_lo_address_lifetime), so a killed agent
 *       that never restarts (kubeadm reset) does not leave its node delivering VIP traffic to
 *       itself.
 *     responder `kernel`: the VIP sits on the uplink with a kernel lifetime of L seconds that the
 *       holder refreshes; the kernel deletes it at most L (+ its timer slack) after the last refresh.
 * - Every VIP address configured is removed at start before anything else: whatever is there was
 *   left by an earlier run of this agent (crash) or is about to be claimed by us anyway.
 * - The kernel side of the agent responder (strict-ARP sysctls) is the host step's job
 *   (src/config/host.ts), done once before any holder starts.
 * - close() leaves nothing behind: address removed, announcing stopped.
 */
import type { Clock } from '../util/clock.js';
import type { Verdict } from '../election/types.js';
import type { Logger } from '../observe/log.js';
import { metrics } from '../observe/metrics.js';
import { canonicalIp } from '../net/ip.js';
import type { NetlinkEvent, NetlinkWatcher, Rtnl } from '../net/netlink.js';

/** What the holder needs from the wire (src/net/announce.ts implements it). */
export interface AnnouncerPort {
  startHolding(mayAnswer: () => boolean, answerUntil?: () => number): void;
  stopHolding(): void;
  announceNow(reason: string): void;
  probe(durationMs: number): Promise<string | null>;
  close(): void;
}

export type Responder = 'agent' | 'kernel';

/**
 * Makes a started Holder (src/app/holders.ts). `interfaces`: announce on the first of these this
 * node has (L2Advertisement interfaces) instead of the agent's own interface.
 */
export type MakeHolder = (vip: VipSpec, log: Logger, interfaces?: readonly string[]) => Promise<Holder>;

/** None of the interfaces an address is to be announced on exists on this node. */
export class NoAnnounceInterfaceError extends Error {
  constructor(
    readonly ip: string,
    readonly wanted: readonly string[],
    readonly have: readonly string[],
  ) {
    super(`not announcing ${ip}: none of its L2Advertisement interfaces (${wanted.join(', ')}) is on this node (have: ${have.join(', ') || 'none'})`);
    this.name = 'NoAnnounceInterfaceError';
  }
}

/** One address to hold, as the settings give it (vip_address, vip_subnet) or a service IP. */
export interface VipSpec {
  ip: string;
  family: 4 | 6;
  prefix: number;
}

export interface HolderOptions {
  vip: VipSpec;
  /** The uplink: where the VIP is announced and answered. */
  ifname: string;
  ifindex: number;
  loIndex: number;
  responder: Responder;
  /**
   * The address's kernel lifetime in whole seconds, refreshed every quarter while held. kernel
   * responder: the bound on how long a dead agent's node answers. agent responder: how long the
   * address a killed agent leaves on lo survives it (the node would deliver VIP traffic to itself).
   */
  lifetimeSec: number;
  probeMs: number;
  claimOnConflict: boolean;
  conflictRetryMs: number;
  /** How often kernel state is checked against what it should be (missed notifications). */
  reconcileMs?: number;
}

export interface HolderDeps {
  rtnl: Rtnl;
  watcher: NetlinkWatcher;
  announcer: AnnouncerPort;
  clock: Clock;
  log: Logger;
}

export type HolderState =
  | { kind: 'idle' }
  | { kind: 'probing'; until: number }
  | { kind: 'blocked'; until: number; owner: string }
  | { kind: 'holding'; until: number; since: number };

/** A holder started answering for its VIP (after the bind) or stopped (`holding: false`). */
export interface HoldingChange {
  holding: boolean;
  /** The verdict's reason: why it holds, or why it let go. */
  reason: string;
}

export class Holder {
  private state: HolderState = { kind: 'idle' };
  private claimedOnce = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private linkUp = true;
  private closed = false;
  /** Serialises kernel changes so a bind and an unbind never interleave. */
  private queue: Promise<void> = Promise.resolve();
  private readonly onNetlink = (ev: NetlinkEvent): void => this.handleNetlink(ev);
  private readonly holdingListeners = new Set<(c: HoldingChange) => void>();
  readonly ip: string;

  constructor(
    private readonly opts: HolderOptions,
    private readonly deps: HolderDeps,
  ) {
    const ip = canonicalIp(opts.vip.ip);
    if (ip === undefined) throw new Error(`holder: vip ${JSON.stringify(opts.vip.ip)} is not an IP address`);
    this.ip = ip;
  }

  get current(): HolderState {
    return this.state;
  }

  /** The uplink the VIP is announced on. */
  get iface(): string {
    return this.opts.ifname;
  }

  /**
   * Tells `fn` when this holder starts answering (the address is bound and announced) and when
   * it stops. For records (ServiceAnnouncements), never for decisions; a throwing listener is logged.
   */
  onHolding(fn: (c: HoldingChange) => void): () => void {
    this.holdingListeners.add(fn);
    return () => this.holdingListeners.delete(fn);
  }

  private tell(c: HoldingChange): void {
    for (const fn of this.holdingListeners) {
      try {
        fn(c);
      } catch (err) {
        this.log().error({ err }, 'holding listener threw');
      }
    }
  }

  /** True while this node answers for the VIP. */
  holding(): boolean {
    return this.state.kind === 'holding' && this.deps.clock.now() < this.state.until;
  }

  private get addressIndex(): number {
    return this.opts.responder === 'agent' ? this.opts.loIndex : this.opts.ifindex;
  }

  private log(): Logger {
    return this.deps.log;
  }

  /** Removes leftovers of an earlier run and prepares the kernel. Call once, before any verdict. */
  async start(): Promise<void> {
    await this.removeStale();
    // Every node that may hold the VIP reports 0 from the start: were the series only on the
    // holder, it would vanish with the holder, and "nobody holds this VIP" could not be seen.
    metrics.holding.set({ vip: this.ip }, 0);
    this.deps.watcher.on('event', this.onNetlink);
    this.reconcileTimer = setInterval(() => this.reconcile(), this.opts.reconcileMs ?? 1000);
    this.reconcileTimer.unref();
  }

  private async removeStale(): Promise<void> {
    for (const a of await this.deps.rtnl.addresses()) {
      if (a.ip !== this.ip) continue;
      if (a.ifindex !== this.opts.loIndex && a.ifindex !== this.opts.ifindex) continue;
      await this.deps.rtnl.delAddress({ ifindex: a.ifindex, ip: a.ip, prefix: a.prefix });
      this.log().warn({ ifindex: a.ifindex, reason: 'stale' }, 'removed a VIP address left behind by an earlier run');
    }
  }

  /** Feeds the elector's answer in. Safe to call at any rate; deadlines only move with new verdicts. */
  apply(verdict: Verdict): void {
    if (this.closed) return;
    if (verdict.kind === 'standby') {
      if (this.state.kind !== 'idle') this.release(verdict.reason);
      return;
    }
    const now = this.deps.clock.now();
    if (verdict.until <= now) {
      if (this.state.kind !== 'idle') this.release('grant expired');
      return;
    }
    switch (this.state.kind) {
      case 'holding':
        this.state = { ...this.state, until: verdict.until };
        this.armDeadline();
        return;
      case 'probing':
      case 'blocked':
        this.state = { ...this.state, until: verdict.until };
        return;
      case 'idle': {
        const coldStart = !this.claimedOnce && verdict.previousHolder === undefined;
        if (coldStart && this.opts.probeMs > 0) this.probeThenClaim(verdict.until, verdict.reason);
        else this.claim(verdict.until, verdict.reason);
      }
    }
  }

  private probeThenClaim(until: number, reason: string): void {
    this.state = { kind: 'probing', until };
    void this.deps.announcer.probe(this.opts.probeMs).then(
      (owner) => {
        if (this.state.kind !== 'probing') return; // released meanwhile
        const grantUntil = this.state.until;
        if (owner === null) return this.claim(grantUntil, reason);
        metrics.conflicts.inc({ vip: this.ip });
        if (this.opts.claimOnConflict) {
          this.log().warn({ owner, reason: 'conflict' }, 'another MAC answers for the VIP; claiming anyway (vip_claim_on_conflict)');
          return this.claim(grantUntil, reason);
        }
        this.log().error({ owner, reason: 'conflict' }, `another MAC answers for the VIP; not claiming, probing again in ${this.opts.conflictRetryMs} ms`);
        this.state = { kind: 'blocked', until: grantUntil, owner };
        this.retryTimer = setTimeout(() => {
          if (this.state.kind === 'blocked' && this.state.until > this.deps.clock.now()) this.probeThenClaim(this.state.until, reason);
          else if (this.state.kind === 'blocked') this.state = { kind: 'idle' };
        }, this.opts.conflictRetryMs);
      },
      (err: unknown) => {
        this.log().error({ err }, 'probe failed; claiming without it');
        if (this.state.kind === 'probing') this.claim(this.state.until, reason);
      },
    );
  }

  private claim(until: number, reason: string): void {
    const since = this.deps.clock.now();
    if (until <= since) {
      this.state = { kind: 'idle' };
      return;
    }
    this.state = { kind: 'holding', until, since };
    this.claimedOnce = true;
    this.armDeadline();
    this.enqueue(async () => {
      if (!this.holding()) return;
      await this.bind();
      // The kernel now accepts traffic for the VIP; announce at once so clients move to us.
      this.deps.announcer.startHolding(
        () => this.holding(),
        () => (this.state.kind === 'holding' ? this.state.until : Number.NEGATIVE_INFINITY),
      );
      metrics.takeoverSeconds.observe({ vip: this.ip }, (this.deps.clock.now() - since) / 1000);
      metrics.holding.set({ vip: this.ip }, 1);
      metrics.transitions.inc({ vip: this.ip, to: 'holding', reason: short(reason) });
      this.log().info({ iface: this.opts.ifname, responder: this.opts.responder, reason }, 'holding VIP');
      this.scheduleRefresh();
      this.tell({ holding: true, reason });
    });
  }

  private release(reason: string): void {
    const was = this.state.kind;
    this.state = { kind: 'idle' };
    this.clearTimers();
    // Stop answering synchronously: the deadline may be now.
    this.deps.announcer.stopHolding();
    if (was !== 'holding') return;
    this.tell({ holding: false, reason });
    this.enqueue(async () => {
      if (this.state.kind === 'holding') return; // re-claimed meanwhile; bind() already ran again
      await this.unbind();
      metrics.holding.set({ vip: this.ip }, 0);
      metrics.transitions.inc({ vip: this.ip, to: 'idle', reason: short(reason) });
      this.log().info({ reason }, 'released VIP');
    });
  }

  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.state.kind !== 'holding' || !Number.isFinite(this.state.until)) return;
    const ms = Math.max(0, this.state.until - this.deps.clock.now());
    this.deadlineTimer = setTimeout(() => {
      if (this.state.kind === 'holding' && this.deps.clock.now() >= this.state.until) this.release('grant deadline passed');
      else this.armDeadline();
    }, ms);
  }

  private scheduleRefresh(): void {
    // Refresh well within the lifetime so one late timer does not let the kernel drop a held VIP.
    const every = Math.max(200, (this.opts.lifetimeSec * 1000) / 4);
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = setInterval(() => {
      if (this.holding()) this.enqueue(() => this.bind());
    }, every);
  }

  private async bind(): Promise<void> {
    await this.deps.rtnl.addAddress({
      ifindex: this.addressIndex,
      ip: this.ip,
      prefix: this.opts.vip.prefix,
      lifetimeSec: this.opts.lifetimeSec,
    });
  }

  private async unbind(): Promise<void> {
    await this.deps.rtnl.delAddress({ ifindex: this.addressIndex, ip: this.ip, prefix: this.opts.vip.prefix });
  }

  private enqueue(job: () => Promise<void>): void {
    this.queue = this.queue.then(job).catch((err: unknown) => {
      this.log().error({ err }, 'kernel address change failed');
    });
  }

  private handleNetlink(ev: NetlinkEvent): void {
    if (ev.type === 'addr-del') {
      if (ev.address.ip !== this.ip || ev.address.ifindex !== this.addressIndex) return;
      if (!this.holding()) return;
      this.log().warn({ reason: 'removed' }, 'VIP address was removed by someone else; adding it back');
      this.enqueue(async () => {
        if (!this.holding()) return;
        await this.bind();
        this.deps.announcer.announceNow('address re-added');
      });
    } else if (ev.type === 'link' && ev.link.index === this.opts.ifindex) {
      const wasUp = this.linkUp;
      this.linkUp = ev.link.up;
      if (!wasUp && ev.link.up && this.holding()) {
        this.log().info({ iface: this.opts.ifname, reason: 'link-up' }, 'link came back; announcing again');
        this.deps.announcer.announceNow('link up');
      }
    }
  }

  /** Catches what notifications missed: a held VIP that is gone, a released one that is still there. */
  private reconcile(): void {
    if (this.closed) return;
    this.enqueue(async () => {
      const present = (await this.deps.rtnl.addresses()).some((a) => a.ip === this.ip && a.ifindex === this.addressIndex);
      if (this.holding() && !present) {
        this.log().warn({ reason: 'missing' }, 'held VIP address missing; adding it back');
        await this.bind();
        this.deps.announcer.announceNow('address re-added');
      } else if (!this.holding() && present && this.state.kind !== 'holding') {
        await this.unbind();
      }
    });
  }

  private clearTimers(): void {
    for (const t of [this.deadlineTimer, this.retryTimer, this.refreshTimer]) if (t) clearTimeout(t);
    this.deadlineTimer = this.retryTimer = this.refreshTimer = undefined;
  }

  /** Resolves when the kernel changes queued so far are done. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** Unbinds, stops announcing and detaches. Idempotent. */
  async close(reason = 'shutdown'): Promise<void> {
    if (this.closed) return this.queue;
    this.release(reason);
    this.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.deps.watcher.off('event', this.onNetlink);
    // Unbind even if a job failed or the state was not 'holding' (a bind may be in flight).
    this.enqueue(() => this.unbind());
    await this.queue;
    this.deps.announcer.close();
    // A closed holder (a Service IP this node no longer claims) must not report a VIP held by nobody.
    metrics.holding.remove({ vip: this.ip });
  }
}

function short(reason: string): string {
  // Metric labels must be a bounded set: keep the first words only.
  return reason.split(/[:(]/)[0]!.trim().slice(0, 40);
}
