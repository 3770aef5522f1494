import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  advertisedSeconds,
  checkLeaseTiming,
  claimSpec,
  defaultSkewMarginMs,
  expiresAt,
  holdUntil,
  isNewerVersion,
  jitteredRetry,
  LeaseTimingError,
  microTime,
  observe,
  releaseSpec,
  validateLeaseTiming,
  viewLease,
  type LeaseRecord,
  type Observation,
} from '../../../src/election/lease/state.js';

const rec = (over: Partial<LeaseRecord> = {}): LeaseRecord => ({
  holderIdentity: 'a',
  renewTime: '2025-01-01T00:00:00.000000Z',
  acquireTime: '2025-01-01T00:00:00.000000Z',
  leaseDurationSeconds: 3,
  transitions: 0,
  resourceVersion: '10',
  ...over,
});

describe('timing validation', () => {
  it('accepts the client-go defaults and the short test timings', () => {
    expect(validateLeaseTiming({})).toEqual({ leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 2000, lingerMs: 0, skewMarginMs: 300 });
    expect(validateLeaseTiming({ leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 }).skewMarginMs).toBe(100);
  });

  it('names both settings and the rule when leaseDuration <= renewDeadline', () => {
    const r = checkLeaseTiming({ leaseDurationMs: 10000, renewDeadlineMs: 10000 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(LeaseTimingError);
    expect(r.error.message).toBe('leaseDuration (10000 ms) must be greater than renewDeadline (10000 ms)');
    expect(r.error.settings).toEqual(['leaseDuration', 'renewDeadline']);
    expect(r.error.message).not.toContain('\n');
  });

  it('enforces renewDeadline > 1.2 x retryPeriod (client-go)', () => {
    expect(() => validateLeaseTiming({ leaseDurationMs: 15000, renewDeadlineMs: 2400, retryPeriodMs: 2000 })).toThrow(
      /renewDeadline \(2400 ms\) must be greater than 1.2 × retryPeriod \(2000 ms → 2400 ms\)/,
    );
  });

  it('enforces the safety rule leaseDuration > renewDeadline + retryPeriod + linger + skew', () => {
    // client-go accepts 3/2/0.9 s; with a 1 s kernel linger the VIP could outlive the grant on the wire.
    const r = checkLeaseTiming({ leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500, lingerMs: 1000 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toMatch(/^leaseDuration \(3000 ms\) must be greater than renewDeadline \+ retryPeriod \+ linger \+ skewMargin \(2000 \+ 500 \+ 1000 \+ 100 = 3600 ms\)/);
    expect(r.error.settings).toContain('linger');
    expect(validateLeaseTiming({ leaseDurationMs: 4000, renewDeadlineMs: 2000, retryPeriodMs: 500, lingerMs: 1000 }).lingerMs).toBe(1000);
  });

  it('uses the caller names (kube-vip settings) in messages', () => {
    expect(() =>
      validateLeaseTiming({ leaseDurationMs: 5000, renewDeadlineMs: 6000 }, { leaseDuration: 'vip_leaseduration', renewDeadline: 'vip_renewdeadline' }),
    ).toThrow('vip_leaseduration (5000 ms) must be greater than vip_renewdeadline (6000 ms)');
  });

  it('rejects non-positive and non-finite values', () => {
    expect(() => validateLeaseTiming({ retryPeriodMs: 0 })).toThrow(/retryPeriod \(0 ms\) must be a positive/);
    expect(() => validateLeaseTiming({ leaseDurationMs: Number.NaN })).toThrow(/leaseDuration/);
    expect(() => validateLeaseTiming({ lingerMs: -1 })).toThrow(/linger \(-1 ms\) must be zero or more/);
  });

  it('property: whatever it accepts satisfies every rule', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60000 }), fc.integer({ min: 1, max: 60000 }), fc.integer({ min: 1, max: 20000 }), fc.integer({ min: 0, max: 5000 }), (ld, rd, rp, linger) => {
        const r = checkLeaseTiming({ leaseDurationMs: ld, renewDeadlineMs: rd, retryPeriodMs: rp, lingerMs: linger });
        const safe = ld > rd && rd > 1.2 * rp && ld > rd + rp + linger + defaultSkewMarginMs(ld);
        expect(r.ok).toBe(safe);
      }),
    );
  });
});

describe('observation by the local clock', () => {
  it('moves observedAt only when holder, renewTime or resourceVersion changes', () => {
    const a = observe(undefined, rec(), 1000);
    expect(a).toEqual({ obs: { record: rec(), observedAt: 1000 }, changed: true });
    const same = observe(a.obs, rec(), 5000);
    expect(same.changed).toBe(false);
    expect(same.obs.observedAt).toBe(1000);
    const renewed = observe(a.obs, rec({ renewTime: '2025-01-01T00:00:02.000000Z', resourceVersion: '11' }), 6000);
    expect(renewed).toMatchObject({ changed: true, obs: { observedAt: 6000 } });
  });

  it('ignores an older resourceVersion (a lagging watch) but treats opaque versions as new', () => {
    const a = observe(undefined, rec({ resourceVersion: '20' }), 1000).obs;
    expect(observe(a, rec({ resourceVersion: '19', holderIdentity: 'b' }), 2000)).toEqual({ obs: a, changed: false });
    expect(isNewerVersion('100', '99')).toBe(true);
    expect(isNewerVersion('99', '100')).toBe(false);
    expect(isNewerVersion('x2', 'x1')).toBe(true);
  });

  it('never compares the remote renewTime with the local clock: a holder whose clock is hours off is still live', () => {
    const ancient = rec({ renewTime: '1999-01-01T00:00:00.000000Z' });
    const obs: Observation = { record: ancient, observedAt: 50_000 };
    expect(viewLease(obs, 'b', 50_000 + 2999, 3000)).toEqual({ kind: 'held', holderIdentity: 'a', expiresAt: 53_000 });
    expect(viewLease(obs, 'b', 53_000, 3000)).toEqual({ kind: 'expired', holderIdentity: 'a' });
  });

  it('waits for the longer of our leaseDuration and the one the holder advertised', () => {
    const obs: Observation = { record: rec({ leaseDurationSeconds: 15 }), observedAt: 0 };
    expect(expiresAt(obs, 3000)).toBe(15_000);
    expect(expiresAt({ record: rec({ leaseDurationSeconds: 1 }), observedAt: 0 }, 3000)).toBe(3000);
  });

  it('classifies absent, free (released), ours', () => {
    expect(viewLease(undefined, 'b', 0, 3000)).toEqual({ kind: 'absent' });
    expect(viewLease({ record: rec({ holderIdentity: '' }), observedAt: 0 }, 'b', 0, 3000).kind).toBe('free');
    expect(viewLease({ record: rec({ holderIdentity: 'b' }), observedAt: 0 }, 'b', 0, 3000).kind).toBe('ours');
  });

  it('fake clock scenario: B sees A renew every 500 ms, A stops, B may act exactly leaseDuration after the last change it saw', () => {
    let obs: Observation | undefined;
    let t = 0;
    for (let i = 0; i < 10; i++) {
      t = i * 500 + 37; // B's poll/watch delivery times
      obs = observe(obs, rec({ resourceVersion: String(100 + i), renewTime: `r${i}` }), t).obs;
    }
    const lastChange = t;
    for (; t < lastChange + 3000; t += 100) expect(viewLease(obs, 'b', t, 3000).kind).toBe('held');
    expect(viewLease(obs, 'b', lastChange + 3000, 3000).kind).toBe('expired');
  });
});

describe('records written', () => {
  it('acquire from another holder counts a transition and sets acquireTime; renew keeps both', () => {
    const prev = rec({ holderIdentity: 'a', transitions: 4 });
    const acq = claimSpec(prev, 'b', Date.UTC(2025, 0, 2), 3000);
    expect(acq).toEqual({ holderIdentity: 'b', acquireTime: '2025-01-02T00:00:00.000000Z', renewTime: '2025-01-02T00:00:00.000000Z', leaseDurationSeconds: 3, transitions: 5 });
    const mine = rec({ holderIdentity: 'b', transitions: 5, acquireTime: acq.acquireTime });
    const ren = claimSpec(mine, 'b', Date.UTC(2025, 0, 2, 0, 0, 1, 250), 3000);
    expect(ren).toMatchObject({ transitions: 5, acquireTime: '2025-01-02T00:00:00.000000Z', renewTime: '2025-01-02T00:00:01.250000Z' });
    expect(claimSpec(undefined, 'b', 0, 15000).transitions).toBe(0);
    expect(claimSpec(rec({ holderIdentity: '', transitions: 2 }), 'b', 0, 15000).transitions).toBe(3);
  });

  it('release clears the holder with leaseDurationSeconds 1 and keeps transitions', () => {
    expect(releaseSpec(rec({ holderIdentity: 'b', transitions: 7 }), 0)).toEqual({
      holderIdentity: '',
      acquireTime: microTime(0),
      renewTime: microTime(0),
      leaseDurationSeconds: 1,
      transitions: 7,
    });
  });

  it('advertises whole seconds rounded up, at least 1', () => {
    expect(advertisedSeconds(15000)).toBe(15);
    expect(advertisedSeconds(3500)).toBe(4);
    expect(advertisedSeconds(200)).toBe(1);
  });

  it('the grant counts from when the renew was sent', () => {
    expect(holdUntil(1000, 2000)).toBe(3000);
  });

  it('polls at retryPeriod … 2.2 × retryPeriod', () => {
    expect(jitteredRetry(2000, 0)).toBe(2000);
    expect(jitteredRetry(2000, 1)).toBeCloseTo(4400);
  });
});
