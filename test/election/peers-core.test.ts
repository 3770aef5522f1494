import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { initPeer, nextWakeup, step, verdictOf, type Input, type PeerState } from '../../src/election/peers/core.js';
import type { Body, PeerMessage } from '../../src/election/peers/messages.js';
import { checkPeerConfig, grantMs, type PeerConfig, type PeerTiming } from '../../src/election/peers/timing.js';

/** The timing these unit tests were written for (the product's defaults are in the settings table). */
const TIMING: PeerTiming = { heartbeatMs: 100, electionTimeoutMs: 400, lingerMs: 0, skew: 0.01 };

const PEERS = ['n1', 'n2', 'n3'];
const cfg = (o: Partial<PeerConfig> = {}): PeerConfig => ({ ...TIMING, self: 'n1', peers: PEERS, bootstrap: false, ...o });

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  fc.boolean().map((bootstrap) => ({ type: 'prevote' as const, bootstrap })),
  fc.boolean().map((granted) => ({ type: 'prevote-resp' as const, granted, reason: granted ? ('none' as const) : ('promised' as const) })),
  fc.nat({ max: 5000 }).map((r) => ({ type: 'vote' as const, round: 1_000_000 + r })),
  fc.tuple(fc.boolean(), fc.nat({ max: 5000 })).map(([granted, r]) => ({
    type: 'vote-resp' as const,
    granted,
    reason: granted ? ('none' as const) : ('voted' as const),
    reqEpoch: '0000000000000001',
    round: 1_000_000 + r,
  })),
  fc.tuple(fc.nat({ max: 5000 }), fc.boolean()).map(([r, bootstrap]) => ({ type: 'heartbeat' as const, round: 1_000_000 + r, bootstrap })),
  fc.tuple(fc.boolean(), fc.nat({ max: 5000 }), fc.boolean(), fc.boolean()).map(([granted, r, eligible, api]) => ({
    type: 'heartbeat-resp' as const,
    granted,
    reason: granted ? ('none' as const) : ('stale-term' as const),
    reqEpoch: '0000000000000001',
    round: 1_000_000 + r,
    eligible,
    apiHealthy: eligible && api,
  })),
  fc.tuple(fc.nat({ max: 5000 }), fc.constantFrom(null, 'n1', 'n2', 'n3')).map(([r, transferTo]) => ({ type: 'release' as const, round: 1_000_000 + r, transferTo })),
);

/** Inputs with time deltas; messages from n2/n3 with small terms so they interact with the state. */
const inputsArb = fc.array(
  fc.tuple(
    fc.nat({ max: 300 }),
    fc.oneof(
      fc.constant({ type: 'tick' as const }),
      fc.constant({ type: 'campaign' as const }),
      fc.record({ type: fc.constant('message' as const), from: fc.constantFrom('n2', 'n3'), term: fc.nat({ max: 4 }), body: bodyArb }),
      fc.record({ type: fc.constant('lease' as const), holder: fc.constantFrom(null, 'n1', 'n2', 'n3'), ttl: fc.nat({ max: 5000 }) }),
      fc.record({ type: fc.constant('eligible' as const), eligible: fc.boolean() }),
    ),
  ),
  { maxLength: 80 },
);

function toInput(now: number, x: fc.Arbitrary<unknown> extends never ? never : { type: string; [k: string]: unknown }): Input {
  switch (x.type) {
    case 'message': {
      const msg: PeerMessage = { from: x.from as string, to: 'n1', epoch: '0000000000000001', term: x.term as number, body: x.body as Body };
      return { type: 'message', now, msg };
    }
    case 'lease':
      return { type: 'lease', now, lease: { holderIdentity: x.holder as string | null, liveUntil: now + (x.ttl as number) } };
    case 'eligible':
      return { type: 'eligible', now, eligible: x.eligible as boolean };
    case 'campaign':
      return { type: 'campaign', now };
    default:
      return { type: 'tick', now };
  }
}

describe('peer core: pure step', () => {
  test('same state + same input → same output, and the input state is never mutated', () => {
    fc.assert(
      fc.property(inputsArb, fc.integer({ min: 1, max: 2 ** 31 }), (inputs, seed) => {
        let a: PeerState = deepFreeze(initPeer(cfg(), 1_000_000, '00000000000000aa', seed));
        let b: PeerState = initPeer(cfg(), 1_000_000, '00000000000000aa', seed);
        let now = 1_000_000;
        for (const [dt, x] of inputs) {
          now += dt;
          const input = toInput(now, x as { type: string });
          const snapshot = JSON.stringify(a);
          const ra = step(a, input);
          const rb = step(b, input);
          expect(JSON.stringify(a)).toBe(snapshot);
          expect(ra.effects).toEqual(rb.effects);
          expect(JSON.stringify(ra.state)).toBe(JSON.stringify(rb.state));
          a = deepFreeze(ra.state);
          b = rb.state;
          // A driver arms one timer for nextWakeup: it must never ask to be woken in the past,
          // or a real event loop would spin.
          expect(nextWakeup(a)).toBeGreaterThan(a.now);
          // Verdict sanity: a hold always names a deadline in the future.
          const v = verdictOf(a);
          if (v.kind === 'hold') expect(v.until).toBeGreaterThan(a.now);
        }
      }),
      { numRuns: 3000, seed: 11 },
    );
  });

  test('a single configured peer holds as soon as its boot quiet period ends, and keeps holding', () => {
    let s = initPeer(cfg({ peers: ['n1'] }), 0, '0000000000000001', 1);
    const verdicts: string[] = [];
    for (let t = 0; t <= 2000; t += 10) {
      const r = step(s, { type: 'tick', now: t });
      s = r.state;
      for (const e of r.effects) if (e.type === 'verdict') verdicts.push(`${t}:${e.verdict.kind}`);
    }
    expect(verdicts[0]).toMatch(/^4\d\d:hold$/);
    expect(verdicts.filter((v) => v.endsWith('standby'))).toEqual([]);
    expect(verdictOf(s).kind).toBe('hold');
  });

  test('a voter promises nothing during its boot quiet period and says nothing', () => {
    const s = initPeer(cfg(), 0, '0000000000000001', 1);
    const hb: PeerMessage = { from: 'n2', to: 'n1', epoch: '0000000000000002', term: 3, body: { type: 'heartbeat', round: 5, bootstrap: false } };
    const r = step(s, { type: 'message', now: 399, msg: hb });
    expect(r.effects.filter((e) => e.type === 'send')).toEqual([]);
    expect(r.state.promise).toBeNull();
    // ...but it remembers the leader and will not campaign against it.
    expect(r.state.leader).toBe('n2');
    const later = step(r.state, { type: 'message', now: 401, msg: { ...hb, body: { type: 'heartbeat', round: 6, bootstrap: false } } });
    expect(later.state.promise?.to).toBe('n2');
    expect(later.effects).toContainEqual({
      type: 'send',
      msg: { from: 'n1', to: 'n2', epoch: '0000000000000001', term: 3, body: { type: 'heartbeat-resp', granted: true, reason: 'none', reqEpoch: '0000000000000002', round: 6, eligible: true, apiHealthy: true } },
    });
  });

  test('messages not for us, from strangers or from ourselves are ignored', () => {
    const s = initPeer(cfg(), 0, '0000000000000001', 1);
    for (const m of [
      { from: 'n2', to: 'n3' },
      { from: 'mallory', to: 'n1' },
      { from: 'n1', to: 'n1' },
    ]) {
      const r = step(s, { type: 'message', now: 500, msg: { ...m, epoch: '0000000000000002', term: 1, body: { type: 'vote', round: 1 } } });
      // (It may campaign on its own at this time; it must not answer the message.)
      expect(r.effects.filter((e) => e.type === 'send' && e.msg.body.type === 'vote-resp')).toEqual([]);
      expect(r.state.promise?.to ?? 'n1').toBe('n1');
      expect(r.state.lastActive).toEqual({});
    }
  });

  test('time never moves backwards inside the core', () => {
    const s = initPeer(cfg(), 1000, '0000000000000001', 1);
    const r = step(s, { type: 'tick', now: 500 });
    expect(r.state.now).toBe(1000);
  });
});

describe('peer timing', () => {
  test('the grant plus the linger ends before the shortest promise behind it (any valid setting)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 2000 }),
        fc.integer({ min: 50, max: 60_000 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.double({ min: 0, max: 0.1, noNaN: true }),
        (H, E, L, skew) => {
          const c = cfg({ heartbeatMs: H, electionTimeoutMs: E, lingerMs: L, skew });
          const r = checkPeerConfig(c);
          if (!r.ok) return;
          const D = r.derived.grantMs;
          // Longest true duration of the leader's D, plus L, against the shortest true duration of a voter's E.
          expect(D / (1 - skew) + L).toBeLessThan(E / (1 + skew));
          expect(D).toBeGreaterThanOrEqual(2 * H);
        },
      ),
      { numRuns: 5000, seed: 12 },
    );
  });

  test('heartbeat 100 ms, election timeout 400 ms: grant 391 ms', () => {
    expect(grantMs(cfg())).toBe(391);
    const r = checkPeerConfig(cfg());
    expect(r.ok && r.derived).toMatchObject({ grantMs: 391, quorum: 2, jitterMs: 100, roundTimeoutMs: 50, claimWindowMs: 200, releaseDelayMs: 0 });
  });

  test.each([
    [{ heartbeatMs: 5 }, /vip_peer_heartbeat_ms=5: must be between 10 and 10000/, ['vip_peer_heartbeat_ms']],
    [{ electionTimeoutMs: 300, heartbeatMs: 200 }, /vip_peer_election_timeout_ms=300 is too short for vip_peer_heartbeat_ms=200.*at least 2 × heartbeat/, ['vip_peer_election_timeout_ms', 'vip_peer_heartbeat_ms', 'linger']],
    [{ electionTimeoutMs: 1000, lingerMs: 900 }, /linger 900 ms/, ['vip_peer_election_timeout_ms', 'vip_peer_heartbeat_ms', 'linger']],
    [{ self: 'cp9' }, /vip_nodename=cp9 is not in vip_peers \(n1,n2,n3\)/, ['vip_nodename', 'vip_peers']],
    [{ peers: ['n1', 'n1'] }, /names a node twice/, ['vip_peers']],
    [{ peers: [] }, /vip_peers is empty/, ['vip_peers']],
  ] as const)('rejects %j with a sentence naming the settings', (o, message, settings) => {
    const r = checkPeerConfig(cfg(o as Partial<PeerConfig>));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toMatch(message);
    expect(r.error.settings).toEqual(settings);
  });
});
