/**
 * Lease elector: client-go leaderelection semantics on a coordination.k8s.io/v1 Lease,
 * answering "may this node hold the VIP, and until when" as Verdicts.
 *
 * Guarantees (given the timing rule checked at construction, see lease/state.ts):
 * - A `hold` verdict's `until` is lastSuccessfulRenewSentAt + renewDeadline on the local
 *   monotonic clock. A timer that waits for no HTTP request emits `standby` when `until`
 *   passes without a newer success, and in-flight renews are aborted then.
 * - A candidate takes the Lease only when it is absent, released (empty holder), names this
 *   node, or has not changed for leaseDuration since this node LOCALLY observed its last
 *   change. Expiry is acted on by a timer set for exactly that moment; a release is seen on
 *   the watch and taken at once. Every write is a compare-and-swap on the resourceVersion
 *   read, so two candidates racing cannot both succeed.
 * - With a health gate (control-plane mode), the Lease is neither taken nor kept while the
 *   gate is closed: closing emits `standby` at once, then releases the Lease.
 * - On shutdown (run's signal aborts) a holder emits `standby` FIRST, waits (bounded) for
 *   listeners that return a promise (the holder unbinding the VIP), then releases the Lease
 *   (empty holder, leaseDurationSeconds 1) so a watching candidate takes over at once.
 * - Losing the Lease never ends run(): the node steps down and campaigns again. The loop is
 *   supervised: a throw restarts it, a watchdog restarts it if it stops making progress, and
 *   a watch that stops delivering changes the polls see is restarted.
 *
 * Not guaranteed (same as client-go): fencing of API writes, and tolerance of clock RATE
 * differences beyond the skew margin. Clock OFFSET between nodes does not matter.
 */
import type { Clock } from '../../util/clock.js';
import { monotonicClock } from '../../util/clock.js';
import type { HealthGate } from '../../health/livez.js';
import { sleep, untilAborted, withSignal } from '../../util/signals.js';
import type { EventSink } from '../../k8s/events.js';
import { createLogger, type Logger } from '../../observe/log.js';
import type { Elector, Verdict } from '../types.js';
import {
  claimSpec,
  holdUntil,
  jitteredRetry,
  observe,
  releaseSpec,
  validateLeaseTiming,
  viewLease,
  type LeaseRecord,
  type LeaseTiming,
  type LeaseTimingInput,
  type Observation,
  type TimingNames,
} from './state.js';
import { LeaseConflictError, LeaseNotFoundError, type LeaseStore, type LeaseWatchEvent } from './store.js';

export interface LeaseElectorOptions extends LeaseTimingInput {
  store: LeaseStore;
  /** holderIdentity: the node name. */
  identity: string;
  /** Names used in timing errors (e.g. kube-vip's `vip_leaseduration`). */
  timingNames?: TimingNames;
  /** Control-plane mode: the local API server's health. Absent = always healthy. */
  gate?: HealthGate;
  events?: EventSink;
  /** Bound on one store operation (all endpoint attempts); default renewDeadline. */
  opTimeoutMs?: number;
  /** Bound on the release at shutdown, including waiting for verdict listeners; default min(renewDeadline, 5 s). */
  releaseTimeoutMs?: number;
  /** The loop is restarted when it makes no progress for this long; default 2·renewDeadline + 3·retryPeriod. */
  watchdogMs?: number;
  /** Clear the holder when run()'s signal aborts (client-go ReleaseOnCancel); default true. */
  releaseOnCancel?: boolean;
  /** Watch the Lease (default true); polling every retryPeriod…2.2·retryPeriod always runs as the fallback. */
  watch?: boolean;
  clock?: Clock;
  /** Wall clock for acquireTime/renewTime labels only. */
  wallClock?: () => number;
  random?: () => number;
  log?: Logger;
}

type Role = { kind: 'candidate' } | { kind: 'holding'; until: number; since: number; nextRenewAt: number };

export interface LeaseElectorStatus {
  role: 'candidate' | 'holding';
  until?: number;
  leader?: string;
  observedAt?: number;
  resourceVersion?: string;
  /** The record's renewTime as its holder wrote it (wall clock, RFC 3339). */
  renewTime?: string;
  gateHealthy: boolean;
}

/** Logs the first of a run of identical failures and then at most every `everyMs`. */
class Throttle {
  private last = new Map<string, number>();
  constructor(private readonly clock: Clock, private readonly everyMs: number) {}
  allow(key: string): boolean {
    const now = this.clock.now();
    const t = this.last.get(key);
    if (t !== undefined && now - t < this.everyMs) return false;
    this.last.set(key, now);
    return true;
  }
  reset(key: string): void {
    this.last.delete(key);
  }
}

export class LeaseElector implements Elector {
  readonly timing: LeaseTiming;
  private readonly store: LeaseStore;
  private readonly identity: string;
  private readonly gate: HealthGate | undefined;
  private readonly events: EventSink | undefined;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly opTimeoutMs: number;
  private readonly releaseTimeoutMs: number;
  private readonly watchdogMs: number;
  private readonly useWatch: boolean;
  private readonly releaseOnCancel: boolean;
  private readonly listeners = new Set<(v: Verdict) => unknown>();
  private readonly throttle: Throttle;

  private role: Role = { kind: 'candidate' };
  private obs: Observation | undefined;
  private absent = false;
  private lastVerdict: Verdict | undefined;
  /** The last non-empty holder seen other than us: who a takeover is from when the record is already released. */
  private lastOtherHolder: string | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Aborted when a grant ends, so renews in flight stop with it. */
  private holdAbort = new AbortController();
  private releasePending = false;
  private releaseReason = '';
  private nextPollAt = 0;
  private beat = 0;
  private wakers = new Set<() => void>();
  private running = false;
  private incarnation: AbortController | undefined;
  private watchCtl: AbortController | undefined;
  private watchLagSince: number | undefined;
  private pendingListeners: Promise<unknown>[] = [];

  constructor(o: LeaseElectorOptions) {
    this.timing = validateLeaseTiming(o, o.timingNames);
    if (!o.identity) throw new Error('lease elector: identity (node name) must not be empty');
    this.store = o.store;
    this.identity = o.identity;
    this.gate = o.gate;
    this.events = o.events;
    this.clock = o.clock ?? monotonicClock;
    this.wall = o.wallClock ?? Date.now;
    this.random = o.random ?? Math.random;
    this.log = o.log ?? createLogger(undefined, { mod: 'lease' });
    this.opTimeoutMs = o.opTimeoutMs ?? this.timing.renewDeadlineMs;
    this.releaseTimeoutMs = o.releaseTimeoutMs ?? Math.min(this.timing.renewDeadlineMs, 5_000);
    this.watchdogMs = o.watchdogMs ?? 2 * this.timing.renewDeadlineMs + 3 * this.timing.retryPeriodMs;
    this.useWatch = o.watch ?? true;
    this.releaseOnCancel = o.releaseOnCancel ?? true;
    this.throttle = new Throttle(this.clock, Math.max(10_000, this.timing.leaseDurationMs));
  }

  private get leaseName(): string {
    return `${this.store.namespace}/${this.store.name}`;
  }

  onVerdict(listener: (verdict: Verdict) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): LeaseElectorStatus {
    const s: LeaseElectorStatus = { role: this.role.kind, gateHealthy: this.gateOpen() };
    if (this.role.kind === 'holding') s.until = this.role.until;
    if (this.obs) {
      if (this.obs.record.holderIdentity) s.leader = this.obs.record.holderIdentity;
      s.observedAt = this.obs.observedAt;
      s.resourceVersion = this.obs.record.resourceVersion;
      if (this.obs.record.renewTime) s.renewTime = this.obs.record.renewTime;
    }
    return s;
  }

  // ---------------------------------------------------------------- verdicts

  private emit(v: Verdict): void {
    this.lastVerdict = v;
    for (const l of [...this.listeners]) {
      try {
        const r = l(v);
        // A listener may return a promise (the holder unbinding); shutdown waits for it before releasing.
        if (r && typeof (r as Promise<unknown>).then === 'function') this.pendingListeners.push(Promise.resolve(r).catch(() => {}));
      } catch (err) {
        this.log.error({ err }, 'verdict listener threw');
      }
    }
    if (this.pendingListeners.length > 32) this.pendingListeners = this.pendingListeners.slice(-8);
  }

  private emitStandbyInfo(reason: string): void {
    const leader = this.obs?.record.holderIdentity || undefined;
    const last = this.lastVerdict;
    if (last && last.kind === 'standby' && last.leader === leader) return;
    this.emit(leader ? { kind: 'standby', leader, reason } : { kind: 'standby', reason });
  }

  private gateOpen(): boolean {
    return this.gate ? this.gate.healthy() : true;
  }

  // ---------------------------------------------------------------- waking

  private wake(): void {
    const ws = [...this.wakers];
    this.wakers.clear();
    for (const w of ws) w();
  }

  /** Sleeps until `ms` passes, something wakes the loop, or `signal` aborts. */
  private async sleepOrWake(ms: number, signal: AbortSignal): Promise<void> {
    const woken = new AbortController();
    const wake = () => woken.abort();
    this.wakers.add(wake);
    await withSignal([signal, woken.signal], undefined, (s) => sleep(ms, s));
    this.wakers.delete(wake);
  }

  // ---------------------------------------------------------------- holding

  private becomeHolder(sentAt: number, previous: LeaseRecord | undefined, how: string): void {
    const now = this.clock.now();
    const until = holdUntil(sentAt, this.timing.renewDeadlineMs);
    if (until <= now) {
      this.log.warn({ lease: this.leaseName, tookMs: Math.round(now - sentAt) }, 'acquired the Lease but the answer came after the renew deadline; not holding');
      return;
    }
    this.holdAbort = new AbortController();
    this.role = { kind: 'holding', until, since: now, nextRenewAt: sentAt + this.timing.retryPeriodMs };
    this.armDeadline(until);
    const from = previous?.holderIdentity ? (previous.holderIdentity !== this.identity ? previous.holderIdentity : undefined) : previous ? this.lastOtherHolder : undefined;
    const reason = `acquired Lease ${this.leaseName} (${how}${from ? `; previous holder ${from}` : ''})`;
    // Naming the previous holder tells the holder this is a failover: it claims without probing.
    this.emit({ kind: 'hold', until, reason, ...(from ? { previousHolder: from } : {}) });
    this.log.info({ lease: this.leaseName, node: this.identity, reason, from, untilInMs: Math.round(until - now) }, 'Lease acquired');
    this.events?.record({
      type: 'Normal',
      reason: from ? 'LeaseHandover' : 'LeaseAcquired',
      action: 'Acquire',
      note: `${this.identity} ${reason}`,
    });
  }

  private extend(sentAt: number): void {
    if (this.role.kind !== 'holding') return;
    const until = holdUntil(sentAt, this.timing.renewDeadlineMs);
    this.role.nextRenewAt = sentAt + this.timing.retryPeriodMs;
    if (until <= this.role.until) return;
    if (until <= this.clock.now()) return;
    this.role.until = until;
    this.armDeadline(until);
    this.emit({ kind: 'hold', until, reason: `renewed Lease ${this.leaseName}` });
  }

  private armDeadline(until: number): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const fire = () => {
      this.deadlineTimer = undefined;
      if (this.role.kind !== 'holding' || this.role.until !== until) return;
      const left = until - this.clock.now();
      // Timers may round; never step down (or stay) on a wrong reading of the deadline.
      if (left > 0) {
        this.deadlineTimer = setTimeout(fire, Math.ceil(left));
        return;
      }
      this.stepDown(`renew deadline passed: no successful renew of Lease ${this.leaseName} within ${this.timing.renewDeadlineMs} ms`, 'LeaseLost');
    };
    this.deadlineTimer = setTimeout(fire, Math.max(0, Math.ceil(until - this.clock.now())));
  }

  /**
   * Ends a grant: standby first (synchronously), then everything else. `LeaseLost` is involuntary
   * (Warning event); `StepDown` is chosen (gate, shutdown) and the release that follows records it.
   */
  private stepDown(reason: string, kind: 'LeaseLost' | 'StepDown'): void {
    if (this.role.kind !== 'holding') return;
    const heldMs = Math.round(this.clock.now() - this.role.since);
    this.role = { kind: 'candidate' };
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.holdAbort.abort(new Error(reason));
    const leader = this.obs?.record.holderIdentity;
    const other = leader && leader !== this.identity ? leader : undefined;
    this.emit(other ? { kind: 'standby', leader: other, reason } : { kind: 'standby', reason });
    if (kind === 'LeaseLost') {
      this.log.warn({ lease: this.leaseName, node: this.identity, reason, heldMs }, 'Lease lost; standing by');
      this.events?.record({ type: 'Warning', reason: 'LeaseLost', action: 'StepDown', note: `${this.identity}: ${reason}` });
    } else {
      this.log.info({ lease: this.leaseName, node: this.identity, reason, heldMs }, 'stepping down');
    }
    this.wake();
  }

  // ---------------------------------------------------------------- observing

  private ingest(record: LeaseRecord, source: 'watch' | 'poll' | 'write'): void {
    const prevHolder = this.obs?.record.holderIdentity;
    const { obs, changed } = observe(this.obs, record, this.clock.now());
    this.obs = obs;
    if (obs.record.holderIdentity && obs.record.holderIdentity !== this.identity) this.lastOtherHolder = obs.record.holderIdentity;
    this.absent = false;
    if (source === 'watch') this.watchLagSince = undefined;
    if (!changed) return;
    if (source === 'poll' && this.useWatch) this.noteWatchLag();
    if (this.role.kind === 'holding' && record.holderIdentity !== this.identity) {
      this.stepDown(
        record.holderIdentity ? `Lease ${this.leaseName} now names ${record.holderIdentity}` : `Lease ${this.leaseName} was released by someone else`,
        'LeaseLost',
      );
    } else if (this.role.kind === 'candidate' && record.holderIdentity !== prevHolder && record.holderIdentity !== this.identity) {
      this.emitStandbyInfo(record.holderIdentity ? `Lease ${this.leaseName} held by ${record.holderIdentity}` : `Lease ${this.leaseName} is free`);
    }
    this.wake();
  }

  private onWatchEvent(ev: LeaseWatchEvent): void {
    if (ev.type === 'upsert') {
      this.ingest(ev.record, 'watch');
      return;
    }
    this.watchLagSince = undefined;
    this.leaseGone(`Lease ${this.leaseName} was deleted`);
    this.wake();
  }

  /** A poll saw a change first. If the watch keeps missing changes for 2 retry periods, it is hung: restart it. */
  private noteWatchLag(): void {
    const now = this.clock.now();
    if (this.watchLagSince === undefined) {
      this.watchLagSince = now;
      return;
    }
    if (now - this.watchLagSince > 2 * this.timing.retryPeriodMs && this.watchCtl) {
      this.log.warn({ lease: this.leaseName, lagMs: Math.round(now - this.watchLagSince) }, 'Lease watch is not delivering changes; restarting it');
      this.watchLagSince = undefined;
      this.watchCtl.abort(new Error('watch stalled'));
    }
  }

  /** One store operation under the loop's signal, the op timeout and (for renews) the grant. */
  private op<T>(signal: AbortSignal, fn: (s: AbortSignal) => Promise<T>, extra?: AbortSignal): Promise<T> {
    return withSignal([signal, extra], this.opTimeoutMs, fn);
  }

  private failed(what: string, err: unknown): void {
    if (this.throttle.allow(what)) this.log.warn({ lease: this.leaseName, err: errText(err) }, `${what} failed`);
  }

  /** Absent when read, or deleted: a grant cannot outlive its Lease, and the next acquire creates it. */
  private leaseGone(reason: string): void {
    if (this.role.kind === 'holding') this.stepDown(reason, 'LeaseLost');
    this.obs = undefined;
    this.absent = true;
  }

  /**
   * What every write (acquire, renew, release) does when the API refuses its compare-and-swap:
   * on a conflict it re-reads, so the caller decides again on a fresh view; a deleted Lease is
   * noted. 'other' leaves the error to the caller.
   */
  private async writeRefused(err: unknown, signal: AbortSignal): Promise<'conflict' | 'gone' | 'other'> {
    if (err instanceof LeaseConflictError) {
      await this.poll(signal);
      return 'conflict';
    }
    if (err instanceof LeaseNotFoundError) {
      this.leaseGone(`Lease ${this.leaseName} was deleted`);
      return 'gone';
    }
    return 'other';
  }

  private async poll(signal: AbortSignal): Promise<void> {
    this.nextPollAt = this.clock.now() + jitteredRetry(this.timing.retryPeriodMs, this.random());
    try {
      const r = await this.op(signal, (s) => this.store.get(s));
      this.throttle.reset('reading the Lease');
      if (r === undefined) this.leaseGone(`Lease ${this.leaseName} does not exist any more`);
      else this.ingest(r, 'poll');
    } catch (err) {
      if (!signal.aborted) this.failed('reading the Lease', err);
    }
  }

  // ---------------------------------------------------------------- the loop

  async run(signal: AbortSignal): Promise<void> {
    if (this.running) throw new Error('lease elector is already running');
    this.running = true;
    const unsubGate = this.gate?.onChange((healthy, reason) => this.onGate(healthy, reason));
    const watchDone = this.useWatch ? this.watchLoop(signal) : Promise.resolve();
    const watchdog = setInterval(() => this.checkWatchdog(), Math.max(50, Math.min(this.timing.retryPeriodMs, 1000)));
    this.log.info({ lease: this.leaseName, node: this.identity, ...this.timing }, 'Lease elector started');
    this.emitStandbyInfo('campaigning');
    try {
      while (!signal.aborted) {
        const inc = new AbortController();
        this.incarnation = inc;
        this.beat = this.clock.now();
        try {
          // A loop stuck in an await that ignores its signal is abandoned, not awaited: the
          // watchdog's abort starts the next incarnation at once (the old one exits at its next check).
          await withSignal([signal, inc.signal], undefined, (s) => Promise.race([this.loop(s), untilAborted(inc.signal)]));
        } catch (err) {
          if (signal.aborted) break;
          this.log.error({ lease: this.leaseName, err: errText(err) }, 'election loop threw; restarting it');
          await this.sleepOrWake(Math.min(this.timing.retryPeriodMs, 1000), signal);
        }
      }
    } finally {
      clearInterval(watchdog);
      unsubGate?.();
      this.watchCtl?.abort();
      await watchDone.catch(() => {});
      await this.shutdown();
      this.running = false;
    }
  }

  private checkWatchdog(): void {
    const stalled = this.clock.now() - this.beat;
    if (stalled > this.watchdogMs && this.incarnation && !this.incarnation.signal.aborted) {
      this.log.error({ lease: this.leaseName, stalledMs: Math.round(stalled) }, 'election loop made no progress; restarting it');
      this.beat = this.clock.now();
      this.incarnation.abort(new Error('watchdog'));
    }
  }

  private async watchLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const ctl = new AbortController();
      this.watchCtl = ctl;
      try {
        await withSignal([signal, ctl.signal], undefined, (s) => this.store.watch((ev) => this.onWatchEvent(ev), s));
        this.throttle.reset('watching the Lease');
      } catch (err) {
        if (signal.aborted) break;
        if (!ctl.signal.aborted) this.failed('watching the Lease', err);
        await sleep(Math.min(this.timing.retryPeriodMs, 1000), signal);
      }
    }
  }

  private onGate(healthy: boolean, reason: string): void {
    if (!healthy) {
      if (this.role.kind === 'holding') this.stepDown(`health gate closed: ${reason}`, 'StepDown');
      if (this.obs?.record.holderIdentity === this.identity) {
        this.releasePending = true;
        this.releaseReason = `health gate closed: ${reason}`;
      }
    } else {
      this.releasePending = false;
    }
    this.wake();
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.beat = this.clock.now();
      if (this.role.kind === 'holding') await this.holdStep(signal);
      else await this.candidateStep(signal);
    }
  }

  private async holdStep(signal: AbortSignal): Promise<void> {
    const role = this.role;
    if (role.kind !== 'holding') return;
    const wait = role.nextRenewAt - this.clock.now();
    if (wait > 0) {
      await this.sleepOrWake(wait, signal);
      return;
    }
    await this.renew(signal);
  }

  private async renew(signal: AbortSignal): Promise<void> {
    const prev = this.obs?.record;
    const role = this.role;
    if (!prev || role.kind !== 'holding') return;
    const sentAt = this.clock.now();
    const holdSignal = this.holdAbort.signal;
    try {
      const spec = claimSpec(prev, this.identity, this.wall(), this.timing.leaseDurationMs);
      const rec = await this.op(signal, (s) => this.store.update(prev.resourceVersion, spec, s), holdSignal);
      this.throttle.reset('renewing the Lease');
      this.ingest(rec, 'write');
      if (this.role.kind === 'holding' && !holdSignal.aborted) this.extend(sentAt);
    } catch (err) {
      if (signal.aborted || holdSignal.aborted) return;
      // On a conflict, client-go's slow path: if the fresh read still names us, the next renew goes out at once.
      if ((await this.writeRefused(err, signal)) !== 'other') return;
      this.failed('renewing the Lease', err);
      if (this.role.kind === 'holding') this.role.nextRenewAt = this.clock.now() + this.timing.retryPeriodMs / 2;
    }
  }

  private async candidateStep(signal: AbortSignal): Promise<void> {
    const now = this.clock.now();
    if (this.releasePending) {
      await this.release(signal, this.releaseReason);
      if (this.releasePending) await this.sleepOrWake(this.timing.retryPeriodMs / 2, signal);
      return;
    }
    if (!this.gateOpen()) {
      // Keep observing (so an eventual acquire uses a fresh view), never acquire.
      if (now >= this.nextPollAt && !this.useWatch) await this.poll(signal);
      else await this.sleepOrWake(this.useWatch ? this.timing.retryPeriodMs * 2 : this.nextPollAt - now, signal);
      return;
    }
    if (this.obs === undefined && !this.absent) {
      await this.poll(signal);
      if (this.obs === undefined && !this.absent) await this.sleepOrWake(this.nextPollAt - this.clock.now(), signal);
      return;
    }
    const view = viewLease(this.obs, this.identity, now, this.timing.leaseDurationMs);
    switch (view.kind) {
      case 'held': {
        const wake = Math.min(view.expiresAt, this.nextPollAt);
        if (now >= this.nextPollAt) {
          await this.poll(signal);
          return;
        }
        await this.sleepOrWake(wake - now, signal);
        return;
      }
      case 'absent':
        await this.acquire(signal, undefined, 'created');
        return;
      case 'free':
        await this.acquire(signal, this.obs?.record, 'released');
        return;
      case 'ours':
        await this.acquire(signal, this.obs?.record, 're-acquired');
        return;
      case 'expired':
        await this.acquire(signal, this.obs?.record, `expired ${Math.round(now - (this.obs?.observedAt ?? now))} ms after last observed change`);
        return;
    }
  }

  private async acquire(signal: AbortSignal, prev: LeaseRecord | undefined, how: string): Promise<void> {
    const sentAt = this.clock.now();
    const spec = claimSpec(prev, this.identity, this.wall(), this.timing.leaseDurationMs);
    try {
      const rec = await this.op(signal, (s) => (prev === undefined ? this.store.create(spec, s) : this.store.update(prev.resourceVersion, spec, s)));
      this.throttle.reset('acquiring the Lease');
      this.ingest(rec, 'write');
      // An abandoned incarnation (watchdog) or shutdown: the Lease names us, the next loop re-acquires or releases it.
      if (signal.aborted) return;
      if (!this.gateOpen()) {
        // The gate closed while the request was in flight: never hold, give it back.
        this.releasePending = true;
        this.releaseReason = 'health gate closed while acquiring';
        return;
      }
      this.becomeHolder(sentAt, prev, how);
    } catch (err) {
      if (signal.aborted) return;
      // A conflict: someone else wrote first (or the Lease appeared); decide again on the fresh read.
      if ((await this.writeRefused(err, signal)) !== 'other') return;
      this.failed('acquiring the Lease', err);
      await this.sleepOrWake(this.timing.retryPeriodMs, signal);
    }
  }

  /** Clears holderIdentity if the Lease still names us (client-go ReleaseOnCancel). */
  private async release(signal: AbortSignal, why: string): Promise<boolean> {
    for (let attempt = 0; attempt < 3 && !signal.aborted; attempt++) {
      const rec = this.obs?.record;
      if (!rec || rec.holderIdentity !== this.identity) {
        this.releasePending = false;
        return true;
      }
      const sentAt = this.clock.now();
      try {
        const spec = releaseSpec(rec, this.wall());
        const r = await this.op(signal, (s) => this.store.update(rec.resourceVersion, spec, s));
        this.ingest(r, 'write');
        this.releasePending = false;
        this.log.info({ lease: this.leaseName, node: this.identity, reason: why, tookMs: Math.round(this.clock.now() - sentAt) }, 'Lease released');
        this.events?.record({ type: 'Normal', reason: 'LeaseReleased', action: 'Release', note: `${this.identity} released Lease ${this.leaseName}: ${why}` });
        return true;
      } catch (err) {
        const refused = await this.writeRefused(err, signal);
        if (refused === 'conflict') continue;
        if (refused === 'gone') {
          this.releasePending = false;
          return true;
        }
        if (!signal.aborted) this.failed('releasing the Lease', err);
        return false;
      }
    }
    return false;
  }

  private async shutdown(): Promise<void> {
    this.pendingListeners = [];
    if (this.role.kind === 'holding') this.stepDown('shutting down', 'StepDown');
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    if (!this.releaseOnCancel || this.obs?.record.holderIdentity !== this.identity) return;
    const signal = AbortSignal.timeout(this.releaseTimeoutMs);
    if (this.pendingListeners.length > 0) {
      // The holder unbinds first; only then may another node be told the VIP is free.
      await Promise.race([Promise.all(this.pendingListeners), sleep(this.releaseTimeoutMs / 2, signal)]);
      this.pendingListeners = [];
    }
    await this.release(signal, 'shutting down');
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}
