import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { DROP_REASONS, MAX_PACKET, ReplayGuard, WIRE_VERSION, decodeMessage, encodeMessage, type DecodeContext } from '../../src/election/peers/codec.js';
import { REJECT_REASONS, type Body, type PeerMessage } from '../../src/election/peers/messages.js';

const KEY = createHmac('sha256', 'codec-test').update('k').digest();
const OTHER_KEY = createHmac('sha256', 'codec-test').update('other').digest();
const PEERS = ['cp1', 'cp2', 'cp3'];
const AT_CP2: DecodeContext = { key: KEY, self: 'cp2', peers: PEERS };

const epochArb = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex'));
const roundArb = fc.double({ min: 0, max: 1e12, noNaN: true, noDefaultInfinity: true });
const reasonArb = fc.constantFrom(...REJECT_REASONS.filter((r) => r !== 'none'));
const answerArb = fc.oneof(
  fc.constant({ granted: true, reason: 'none' as const }),
  reasonArb.map((reason) => ({ granted: false, reason })),
);
const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  fc.boolean().map((bootstrap) => ({ type: 'prevote' as const, bootstrap })),
  answerArb.map((a) => ({ type: 'prevote-resp' as const, ...a })),
  roundArb.map((round) => ({ type: 'vote' as const, round })),
  fc.tuple(answerArb, epochArb, roundArb).map(([a, reqEpoch, round]) => ({ type: 'vote-resp' as const, ...a, reqEpoch, round })),
  fc.tuple(roundArb, fc.boolean()).map(([round, bootstrap]) => ({ type: 'heartbeat' as const, round, bootstrap })),
  // apiHealthy implies eligible: the three states the byte carries.
  fc.tuple(answerArb, epochArb, roundArb, fc.constantFrom([false, false], [true, false], [true, true])).map(([a, reqEpoch, round, [eligible, apiHealthy]]) => ({ type: 'heartbeat-resp' as const, ...a, reqEpoch, round, eligible, apiHealthy })),
  fc.tuple(roundArb, fc.constantFrom(null, ...PEERS)).map(([round, transferTo]) => ({ type: 'release' as const, round, transferTo })),
);
const msgArb: fc.Arbitrary<PeerMessage> = fc.record({
  from: fc.constantFrom('cp1', 'cp3'),
  to: fc.constant('cp2'),
  epoch: epochArb,
  term: fc.nat({ max: 2 ** 40 }),
  body: bodyArb,
});
const metaArb = fc.record({ counter: fc.integer({ min: 1, max: 2 ** 40 }), wallMs: fc.nat({ max: 2 ** 45 }) });

describe('peer wire codec', () => {
  test('round trip: every message decodes to itself with its header', () => {
    fc.assert(
      fc.property(msgArb, metaArb, (m, meta) => {
        const r = decodeMessage(encodeMessage(m, meta, KEY), AT_CP2);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.msg).toEqual(m);
        expect(r.header).toEqual({ from: m.from, to: m.to, epoch: m.epoch, counter: meta.counter, wallMs: meta.wallMs, term: m.term });
      }),
      { numRuns: 2000, seed: 1 },
    );
  });

  test('golden bytes of a heartbeat (layout documented in codec.ts)', () => {
    const b = encodeMessage(
      { from: 'cp1', to: 'cp2', epoch: '0102030405060708', term: 7, body: { type: 'heartbeat', round: 1.5, bootstrap: false } },
      { counter: 3, wallMs: 1000 },
      KEY,
    );
    const head = b.subarray(0, b.length - 32).toString('hex');
    expect(head).toBe(
      '5650' + '02' + '04' + '00' + '03' + Buffer.from('cp1').toString('hex') + '03' + Buffer.from('cp2').toString('hex') +
        '0102030405060708' + '0000000000000003' + '00000000000003e8' + '0000000000000007' + '0009' + '3ff8000000000000' + '00',
    );
    expect(b.subarray(b.length - 32)).toEqual(createHmac('sha256', KEY).update(b.subarray(0, b.length - 32)).digest());
  });

  test('each drop reason, never an exception', () => {
    const m: PeerMessage = { from: 'cp1', to: 'cp2', epoch: '00000000000000ff', term: 1, body: { type: 'vote', round: 5 } };
    const good = encodeMessage(m, { counter: 1, wallMs: 0 }, KEY);
    const reason = (b: Uint8Array, ctx = AT_CP2) => {
      const r = decodeMessage(b, ctx);
      return r.ok ? 'ok' : r.reason;
    };
    expect(reason(good)).toBe('ok');
    expect(reason(Buffer.alloc(MAX_PACKET + 1))).toBe('oversized');
    expect(reason(good.subarray(0, good.length - 1))).toBe('truncated');
    expect(reason(good.subarray(0, 2))).toBe('truncated');
    expect(reason(Buffer.concat([good, Buffer.from([0])]))).toBe('malformed');
    const v2 = Buffer.from(good);
    v2[2] = WIRE_VERSION + 1;
    expect(reason(v2)).toBe('wrong-version');
    expect(reason(encodeMessage(m, { counter: 1, wallMs: 0 }, OTHER_KEY))).toBe('bad-mac');
    expect(reason(good, { ...AT_CP2, peers: ['cp2', 'cp3'] })).toBe('unknown-sender');
    expect(reason(good, { ...AT_CP2, self: 'cp3' })).toBe('wrong-recipient');
    // A packet that is well formed and correctly signed but means nothing (bad type) is malformed.
    const bad = Buffer.from(good);
    bad[3] = 99;
    createHmac('sha256', KEY).update(bad.subarray(0, bad.length - 32)).digest().copy(bad, bad.length - 32);
    expect(reason(bad)).toBe('malformed');
  });

  test('fuzz: random bytes never throw and are never accepted', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), (b) => {
        const r = decodeMessage(b, AT_CP2);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(DROP_REASONS).toContain(r.reason);
      }),
      { numRuns: 20_000, seed: 2 },
    );
  });

  test('fuzz: a valid prefix with random bytes after it never throws and is accepted only if it is the packet', () => {
    const valid = encodeMessage({ from: 'cp1', to: 'cp2', epoch: '0000000000000001', term: 1, body: { type: 'prevote', bootstrap: false } }, { counter: 1, wallMs: 0 }, KEY);
    fc.assert(
      fc.property(fc.nat({ max: valid.length }), fc.uint8Array({ maxLength: 300 }), (cut, tail) => {
        const b = Buffer.concat([valid.subarray(0, cut), tail]);
        expect(decodeMessage(b, AT_CP2).ok).toBe(b.equals(valid));
      }),
      { numRuns: 20_000, seed: 3 },
    );
  });

  test('fuzz: a mutated valid packet (flips, cuts, splices) is never accepted', () => {
    const mutation = fc.oneof(
      fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ k: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ k: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      fc.record({ k: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
    );
    fc.assert(
      fc.property(msgArb, metaArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (m, meta, muts) => {
        const orig = encodeMessage(m, meta, KEY);
        let b = Buffer.from(orig);
        for (const u of muts) {
          const at = u.at % (b.length + 1);
          if (u.k === 'flip' && b.length > 0) b[at % b.length]! ^= 1 << u.bit;
          else if (u.k === 'set' && b.length > 0) b[at % b.length] = u.v;
          else if (u.k === 'cut') b = b.subarray(0, at);
          else if (u.k === 'insert') b = Buffer.concat([b.subarray(0, at), u.bytes, b.subarray(at)]);
          else if (u.k === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + u.n)]);
        }
        const r = decodeMessage(b, AT_CP2);
        if (b.equals(orig)) expect(r.ok).toBe(true);
        else expect(r.ok).toBe(false);
      }),
      { numRuns: 20_000, seed: 4 },
    );
  });

  test('encoder refuses what it cannot represent', () => {
    const m: PeerMessage = { from: 'cp1', to: 'cp2', epoch: 'zz', term: 1, body: { type: 'prevote', bootstrap: false } };
    expect(() => encodeMessage(m, { counter: 1, wallMs: 0 }, KEY)).toThrow(/epoch/);
    expect(() => encodeMessage({ ...m, epoch: '0000000000000000', term: -1 }, { counter: 1, wallMs: 0 }, KEY)).toThrow(/term/);
    expect(() => encodeMessage({ ...m, epoch: '0000000000000000', from: 'x'.repeat(256) }, { counter: 1, wallMs: 0 }, KEY)).toThrow(/name/);
  });
});

describe('replay guard', () => {
  const h = (epoch: string, counter: number, wallMs = 1_000_000) => ({ from: 'cp1', to: 'cp2', epoch, counter, wallMs, term: 1 });

  test('accepts increasing counters, drops repeats and older ones', () => {
    const g = new ReplayGuard({ peers: PEERS });
    expect(g.admit(h('a'.repeat(16), 1), 0, 1_000_000)).toEqual({ ok: true });
    expect(g.admit(h('a'.repeat(16), 2), 1, 1_000_000)).toEqual({ ok: true });
    expect(g.admit(h('a'.repeat(16), 2), 2, 1_000_000)).toEqual({ ok: false, reason: 'replay' });
    expect(g.admit(h('a'.repeat(16), 1), 3, 1_000_000)).toEqual({ ok: false, reason: 'replay' });
  });

  test('a restarted sender (new epoch, counter from 1) is accepted; its old epoch cannot be replayed', () => {
    const g = new ReplayGuard({ peers: PEERS });
    expect(g.admit(h('a'.repeat(16), 50), 0, 1_000_000).ok).toBe(true);
    expect(g.admit(h('b'.repeat(16), 1), 10, 1_000_010).ok).toBe(true);
    expect(g.admit(h('a'.repeat(16), 50), 20, 1_000_020)).toEqual({ ok: false, reason: 'replay' });
  });

  test('wall stamps outside the window are stale (an old epoch forgotten after 2W cannot come back)', () => {
    const g = new ReplayGuard({ peers: PEERS, windowMs: 30_000 });
    expect(g.admit(h('a'.repeat(16), 1, 1_000_000), 0, 1_000_000).ok).toBe(true);
    // 61 s later the epoch is forgotten, but its packets carry a 61 s old stamp.
    expect(g.admit(h('a'.repeat(16), 1, 1_000_000), 61_000, 1_061_000)).toEqual({ ok: false, reason: 'stale' });
    expect(g.admit(h('c'.repeat(16), 1, 1_100_000), 61_000, 1_061_000)).toEqual({ ok: false, reason: 'stale' });
  });

  test('the number of remembered epochs per sender is bounded', () => {
    const g = new ReplayGuard({ peers: PEERS, maxEpochs: 3 });
    for (let i = 0; i < 100; i++) expect(g.admit(h(i.toString(16).padStart(16, '0'), 1), i, 1_000_000).ok).toBe(true);
    // The newest ones are still remembered.
    expect(g.admit(h((99).toString(16).padStart(16, '0'), 1), 200, 1_000_000).ok).toBe(false);
  });

  test('unknown senders are refused', () => {
    const g = new ReplayGuard({ peers: PEERS });
    expect(g.admit({ ...h('a'.repeat(16), 1), from: 'mallory' }, 0, 1_000_000)).toEqual({ ok: false, reason: 'unknown-sender' });
  });
});
