/**
 * Pure timing and record logic of the Lease elector (client-go leaderelection semantics).
 *
 * Invariants this module encodes:
 * - Only the LOCAL monotonic clock decides expiry. A candidate treats the Lease as expired
 *   `leaseDuration` after it locally observed the last change of the record (holderIdentity,
 *   renewTime or resourceVersion). The remote renewTime is compared for equality only,
 *   never against our clock, so clock offset between nodes does not matter (clock RATE does:
 *   that is what the skew margin covers).
 * - A holder's grant ends `renewDeadline` after the moment its last successful renew REQUEST
 *   WAS SENT (not answered): the write happened after the send, every candidate observed it
 *   after the write, so every candidate's expiry is later than send + leaseDuration.
 * - Safety needs leaseDuration > renewDeadline + retryPeriod + linger + skewMargin: the VIP
 *   stops answering (deadline + kernel linger) before anyone else can take the Lease.
 *
 * No I/O here: everything takes `now` (monotonic ms) or wall-clock ms as arguments.
 */
import { RuleError } from '../../util/rule-error.js';
import { microTime } from '../../k8s/resources.js';

export { microTime };

export interface LeaseTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** How long this node may still answer for the VIP after its grant's deadline (kernel address lifetime etc.). */
  lingerMs: number;
  /** Margin for clock-rate differences between nodes over one leaseDuration. */
  skewMarginMs: number;
}

export const LEASE_DEFAULTS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  lingerMs: 0,
} as const;

/** client-go's JitterFactor: renewDeadline must exceed retryPeriod by this factor. */
export const JITTER_FACTOR = 1.2;

/**
 * Default clock-rate margin: 2% of the lease duration (two crystals drifting 1% apart each
 * way is far beyond NTP-disciplined hardware), at least 100 ms for scheduling noise.
 */
export function defaultSkewMarginMs(leaseDurationMs: number): number {
  return Math.max(100, Math.ceil(leaseDurationMs * 0.02));
}

export type TimingSetting = 'leaseDuration' | 'renewDeadline' | 'retryPeriod' | 'linger' | 'skewMargin';

/** A timing rule that does not hold; names the settings involved so config can point at them. */
export class LeaseTimingError extends RuleError<TimingSetting> {
  override readonly name = 'LeaseTimingError';
}

export interface LeaseTimingInput {
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  lingerMs?: number;
  skewMarginMs?: number;
}

/** Display names for settings in error messages (e.g. kube-vip's `vip_leaseduration`). */
export type TimingNames = Partial<Record<TimingSetting, string>>;

/**
 * Fills defaults and checks every rule; returns the first violation, or the resolved timing.
 * Pure, so the config module can call it while validating flags/env.
 */
export function checkLeaseTiming(
  input: LeaseTimingInput,
  names: TimingNames = {},
): { ok: true; timing: LeaseTiming } | { ok: false; error: LeaseTimingError } {
  const n = (s: TimingSetting): string => names[s] ?? s;
  const ld = input.leaseDurationMs ?? LEASE_DEFAULTS.leaseDurationMs;
  const rd = input.renewDeadlineMs ?? LEASE_DEFAULTS.renewDeadlineMs;
  const rp = input.retryPeriodMs ?? LEASE_DEFAULTS.retryPeriodMs;
  const linger = input.lingerMs ?? LEASE_DEFAULTS.lingerMs;
  const skew = input.skewMarginMs ?? defaultSkewMarginMs(ld);
  const value: Record<TimingSetting, number> = { leaseDuration: ld, renewDeadline: rd, retryPeriod: rp, linger, skewMargin: skew };
  // The message leads with the first setting and its value; the rule is the rest of the sentence.
  const fail = (rule: string, settings: [TimingSetting, ...TimingSetting[]]) => {
    const first = settings[0];
    return { ok: false as const, error: new LeaseTimingError(settings, String(value[first]), rule, `${n(first)} (${value[first]} ms) ${rule}`) };
  };

  for (const setting of ['leaseDuration', 'renewDeadline', 'retryPeriod'] as const) {
    if (!Number.isFinite(value[setting]) || value[setting] <= 0) return fail('must be a positive number of milliseconds', [setting]);
  }
  for (const setting of ['linger', 'skewMargin'] as const) {
    if (!Number.isFinite(value[setting]) || value[setting] < 0) return fail('must be zero or more milliseconds', [setting]);
  }
  if (!(ld > rd)) {
    return fail(`must be greater than ${n('renewDeadline')} (${rd} ms)`, ['leaseDuration', 'renewDeadline']);
  }
  if (!(rd > JITTER_FACTOR * rp)) {
    return fail(`must be greater than ${JITTER_FACTOR} × ${n('retryPeriod')} (${rp} ms → ${JITTER_FACTOR * rp} ms)`, ['renewDeadline', 'retryPeriod']);
  }
  const needed = rd + rp + linger + skew;
  if (!(ld > needed)) {
    return fail(
      `must be greater than ${n('renewDeadline')} + ${n('retryPeriod')} + ${n('linger')} + ${n('skewMargin')} ` +
        `(${rd} + ${rp} + ${linger} + ${skew} = ${needed} ms), or another node could take the Lease while this one still answers for the VIP`,
      ['leaseDuration', 'renewDeadline', 'retryPeriod', 'linger', 'skewMargin'],
    );
  }
  return { ok: true, timing: { leaseDurationMs: ld, renewDeadlineMs: rd, retryPeriodMs: rp, lingerMs: linger, skewMarginMs: skew } };
}

/** Like checkLeaseTiming but throws the LeaseTimingError. */
export function validateLeaseTiming(input: LeaseTimingInput, names?: TimingNames): LeaseTiming {
  const r = checkLeaseTiming(input, names);
  if (!r.ok) throw r.error;
  return r.timing;
}

/** What the elector keeps of a Lease object; times are the API's strings (MicroTime), compared for equality only. */
export interface LeaseRecord {
  holderIdentity: string;
  acquireTime?: string;
  renewTime?: string;
  leaseDurationSeconds?: number;
  transitions: number;
  resourceVersion: string;
  uid?: string;
}

/** A record plus the local monotonic time at which we first saw it in this form. */
export interface Observation {
  record: LeaseRecord;
  observedAt: number;
}

/** client-go's "record changed" test: a different holderIdentity, renewTime or resourceVersion. */
export function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return a.holderIdentity === b.holderIdentity && a.renewTime === b.renewTime && a.resourceVersion === b.resourceVersion;
}

/**
 * Orders resourceVersions when both are integers (etcd revisions, what kube-apiserver uses);
 * otherwise they are opaque and we can only say "different", reported as newer.
 */
export function isNewerVersion(candidate: string, than: string): boolean {
  if (/^\d+$/.test(candidate) && /^\d+$/.test(than)) return BigInt(candidate) > BigInt(than);
  return candidate !== than;
}

/**
 * Folds a freshly read record into the observation. The observation time moves only when
 * the record changed; a record older than the one we have (a lagging watch) is ignored.
 */
export function observe(prev: Observation | undefined, record: LeaseRecord, now: number): { obs: Observation; changed: boolean } {
  if (prev === undefined) return { obs: { record, observedAt: now }, changed: true };
  if (sameRecord(prev.record, record)) return { obs: prev, changed: false };
  if (record.resourceVersion !== prev.record.resourceVersion && !isNewerVersion(record.resourceVersion, prev.record.resourceVersion)) {
    return { obs: prev, changed: false };
  }
  return { obs: { record, observedAt: now }, changed: true };
}

/**
 * When the observed holder's claim runs out by our clock: our own leaseDuration, or the
 * holder's advertised one if longer (a holder configured more conservatively than us must be
 * given what it promised itself).
 */
export function expiresAt(obs: Observation, leaseDurationMs: number): number {
  const advertised = (obs.record.leaseDurationSeconds ?? 0) * 1000;
  return obs.observedAt + Math.max(leaseDurationMs, advertised);
}

export type LeaseView =
  | { kind: 'absent' }
  | { kind: 'free'; previous?: string }
  | { kind: 'ours' }
  | { kind: 'held'; holderIdentity: string; expiresAt: number }
  | { kind: 'expired'; holderIdentity: string };

/** What a candidate may do about the Lease right now. */
export function viewLease(obs: Observation | undefined, identity: string, now: number, leaseDurationMs: number): LeaseView {
  if (obs === undefined) return { kind: 'absent' };
  const holderIdentity = obs.record.holderIdentity;
  if (holderIdentity === '') return { kind: 'free' };
  if (holderIdentity === identity) return { kind: 'ours' };
  const at = expiresAt(obs, leaseDurationMs);
  return now < at ? { kind: 'held', holderIdentity, expiresAt: at } : { kind: 'expired', holderIdentity };
}

/** The spec fields we write (the store keeps any fields we do not know). */
export interface LeaseSpecWrite {
  holderIdentity: string;
  acquireTime: string;
  renewTime: string;
  leaseDurationSeconds: number;
  transitions: number;
}


/**
 * Whole seconds advertised in the record. client-go truncates; we round UP so a reader that
 * trusts the record (client-go does) never waits less than we promised ourselves.
 */
export function advertisedSeconds(leaseDurationMs: number): number {
  return Math.max(1, Math.ceil(leaseDurationMs / 1000));
}

/** Acquire or renew: transitions count holder changes (client-go: also from empty). */
export function claimSpec(prev: LeaseRecord | undefined, identity: string, wallMs: number, leaseDurationMs: number): LeaseSpecWrite {
  const t = microTime(wallMs);
  const keep = prev !== undefined && prev.holderIdentity === identity;
  return {
    holderIdentity: identity,
    acquireTime: keep && prev.acquireTime !== undefined ? prev.acquireTime : t,
    renewTime: t,
    leaseDurationSeconds: advertisedSeconds(leaseDurationMs),
    transitions: prev === undefined ? 0 : keep ? prev.transitions : prev.transitions + 1,
  };
}

/** client-go ReleaseOnCancel: empty holderIdentity, 1 s, transitions kept. */
export function releaseSpec(prev: LeaseRecord, wallMs: number): LeaseSpecWrite {
  const t = microTime(wallMs);
  return { holderIdentity: '', acquireTime: t, renewTime: t, leaseDurationSeconds: 1, transitions: prev.transitions };
}

/** The grant a successful renew buys: counted from when its request was sent. */
export function holdUntil(renewSentAt: number, renewDeadlineMs: number): number {
  return renewSentAt + renewDeadlineMs;
}

/** Candidate poll interval, jittered like client-go's wait.JitterUntil (retryPeriod … (1+factor)·retryPeriod). */
export function jitteredRetry(retryPeriodMs: number, random: number, factor = JITTER_FACTOR): number {
  return retryPeriodMs * (1 + factor * Math.min(Math.max(random, 0), 1));
}
