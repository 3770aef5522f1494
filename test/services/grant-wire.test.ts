import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { decodeGrant, encodeGrant, GRANT_WIRE_VERSION, MAX_GRANT_PACKET, type GrantDecodeContext } from '../../src/services/grant-wire.js';
import { encodeMessage } from '../../src/election/peers/codec.js';
import { ReplayGuard } from '../../src/election/peers/codec.js';
import type { GrantMsg } from '../../src/services/logic/grants.js';

const KEY = createHmac('sha256', 'grant-wire-test').update('k').digest();
const OTHER_KEY = createHmac('sha256', 'grant-wire-test').update('other').digest();
const META = { counter: 7, wallMs: 1_700_000_000_000 };

const epochArb = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex'));
const v4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `198.18.${a}.${b}`);
const v6 = fc.nat(0xfffe).map((x) => `2001:db8::${(x + 1).toString(16)}`);
const ips = fc.uniqueArray(fc.oneof(v4, v6), { maxLength: 40 });
const names = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), { maxLength: 20 });
const roundArb = fc.double({ min: 0, max: 1e12, noNaN: true, noDefaultInfinity: true });
const msgArb: fc.Arbitrary<GrantMsg> = fc.oneof(
  fc.record(
    { type: fc.constant('claim' as const), from: fc.constant('w1'), to: fc.constant('cp2'), epoch: epochArb, round: roundArb, ips, candidate: fc.boolean(), leaving: fc.constant(true), liveSeen: fc.record({ epoch: epochArb, version: fc.nat() }) },
    { requiredKeys: ['type', 'from', 'to', 'epoch', 'round', 'ips', 'candidate'] },
  ),
  fc.record({ type: fc.constant('claim-resp' as const), from: fc.constant('w1'), to: fc.constant('cp2'), epoch: epochArb, reqEpoch: epochArb, round: roundArb, quiet: fc.boolean(), granted: ips, live: fc.option(names, { nil: null }), liveVersion: fc.nat() }),
);
const AT_CP2: GrantDecodeContext = { key: KEY, self: 'cp2', accept: () => true };

describe('service grant wire format', () => {
  test('round trip: every message decodes to itself, with its header', () => {
    fc.assert(
      fc.property(msgArb, (m) => {
        const d = decodeGrant(encodeGrant(m, META, KEY), AT_CP2);
        expect(d.ok && d.msg).toEqual(m);
        expect(d.ok && d.header).toMatchObject({ from: 'w1', to: 'cp2', epoch: m.epoch, counter: META.counter, wallMs: META.wallMs });
      }),
    );
  });

  test('any flipped bit, a truncation or the wrong key is dropped, never misread', () => {
    fc.assert(
      fc.property(msgArb, fc.nat(), (m, at) => {
        const b = encodeGrant(m, META, KEY);
        const flipped = Buffer.from(b);
        flipped[at % b.length]! ^= 1 << at % 8;
        expect(decodeGrant(flipped, AT_CP2).ok).toBe(false);
        expect(decodeGrant(b.subarray(0, at % b.length), AT_CP2).ok).toBe(false);
        expect(decodeGrant(b, { ...AT_CP2, key: OTHER_KEY })).toEqual({ ok: false, reason: 'bad-mac' });
      }),
    );
  });

  test('a peer election packet, even with the same key, is not a grant message (different magic)', () => {
    const peer = encodeMessage({ from: 'w1', to: 'cp2', epoch: '0123456789abcdef', term: 1, body: { type: 'prevote', bootstrap: false } }, META, KEY);
    expect(decodeGrant(peer, AT_CP2)).toEqual({ ok: false, reason: 'malformed' });
  });

  test('another version, an unwanted sender, another recipient are dropped by name', () => {
    const m: GrantMsg = { type: 'claim', from: 'w1', to: 'cp2', epoch: '0123456789abcdef', round: 5, ips: ['198.18.0.10'], candidate: true };
    const b = Buffer.from(encodeGrant(m, META, KEY));
    b[2] = GRANT_WIRE_VERSION + 1;
    expect(decodeGrant(b, AT_CP2)).toEqual({ ok: false, reason: 'wrong-version' });
    const good = encodeGrant(m, META, KEY);
    expect(decodeGrant(good, { ...AT_CP2, accept: (_f, type) => type === 'claim-resp' })).toEqual({ ok: false, reason: 'unknown-sender' });
    expect(decodeGrant(good, { ...AT_CP2, self: 'cp3' })).toEqual({ ok: false, reason: 'wrong-recipient' });
  });

  test('a control-plane node talks to itself: its member claims from its own voter', () => {
    const m: GrantMsg = { type: 'claim', from: 'cp2', to: 'cp2', epoch: '0123456789abcdef', round: 5, ips: [], candidate: true };
    expect(decodeGrant(encodeGrant(m, META, KEY), AT_CP2).ok).toBe(true);
  });

  test('a claim set that does not fit one packet is refused at the sender, naming the limit', () => {
    const many = Array.from({ length: 4000 }, (_, i) => `198.18.${i >> 8}.${i & 255}`);
    expect(() => encodeGrant({ type: 'claim', from: 'w1', to: 'cp2', epoch: '0123456789abcdef', round: 1, ips: many, candidate: true }, META, KEY)).toThrow(`> ${MAX_GRANT_PACKET} bytes`);
  });

  test('the replay guard can admit senders it was not told about, forgetting the longest silent first', () => {
    const g = new ReplayGuard({ peers: [], openSenders: 2 });
    const h = (from: string, counter: number) => ({ from, to: 'cp2', epoch: '0123456789abcdef', counter, wallMs: 1000, term: 0 });
    expect(g.admit(h('w1', 1), 0, 1000).ok).toBe(true);
    expect(g.admit(h('w2', 1), 10, 1000).ok).toBe(true);
    expect(g.admit(h('w1', 1), 20, 1000)).toEqual({ ok: false, reason: 'replay' });
    expect(g.admit(h('w1', 2), 30, 1000).ok).toBe(true);
    expect(g.admit(h('w3', 1), 40, 1000).ok).toBe(true); // w2 (silent since 10) is forgotten
    expect(g.admit(h('w1', 2), 50, 1000)).toEqual({ ok: false, reason: 'replay' });
    expect(new ReplayGuard({ peers: ['cp1'] }).admit(h('w1', 1), 0, 1000)).toEqual({ ok: false, reason: 'unknown-sender' });
  });
});
