import { describe, expect, it } from 'vitest';
import { grantMs, type PeerTiming } from '../../../src/election/peers/timing.js';
import {
  holdUntil,
  initMember,
  initVoter,
  liveMembers,
  memberHolds,
  memberLive,
  memberNextWakeup,
  memberStep,
  voterGrantOf,
  voterOnClaim,
  type ClaimMsg,
  type ClaimRespMsg,
  type MemberEffect,
  type MemberState,
  type VoterState,
} from '../../../src/services/logic/grants.js';

const X = '198.18.0.130';
const Y = '198.18.0.131';
const E = 200;
const H = 50;
const VOTERS = ['v1', 'v2', 'v3'] as const;
const timing = (lingerMs = 0): PeerTiming => ({ heartbeatMs: H, electionTimeoutMs: E, lingerMs, skew: 0.01 });

const claim = (from: string, to: string, round: number, ips: string[], epoch = `${from}-1`): ClaimMsg => ({ type: 'claim', from, to, epoch, round, ips, candidate: true });
// Booted long enough ago that its boot quiet is over.
const voter = (self = 'v1', bootAt = -10 * E): VoterState => initVoter({ self, electionTimeoutMs: E }, bootAt, `${self}-1`);

const member = (lingerMs = 0, self = 'A', now = 0): MemberState => initMember({ ...timing(lingerMs), self, voters: VOTERS }, now, `${self}-1`);
const resp = (from: string, round: number, granted: string[], o: Partial<ClaimRespMsg> = {}): ClaimRespMsg => ({
  type: 'claim-resp',
  from,
  to: 'A',
  epoch: `${from}-1`,
  reqEpoch: 'A-1',
  round,
  quiet: false,
  granted,
  live: ['A'],
  liveVersion: 1,
  ...o,
});
const answer = (m: MemberState, now: number, msg: ClaimRespMsg) => memberStep(m, { type: 'message', now, msg });
const tick = (m: MemberState, now: number) => memberStep(m, { type: 'tick', now });
const want = (m: MemberState, now: number, ips: string[]) => memberStep(m, { type: 'want', now, ips });
const sends = (fx: MemberEffect[]) => fx.flatMap((e) => (e.type === 'send' ? [e.msg] : []));
/** The claims sent, without the live-list version each names (tested on its own). */
const bare = (fx: MemberEffect[]) => sends(fx).map(({ liveSeen: _seen, ...c }) => c);
const holdsFx = (fx: MemberEffect[]) => fx.flatMap((e) => (e.type === 'holds' ? [e.holds] : []));
const liveFx = (fx: MemberEffect[]) => fx.flatMap((e) => (e.type === 'live' ? [e.members] : []));

describe('voter', () => {
  it('grants a free IP until now + E', () => {
    const v = voter();
    const r = voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    expect(r).toMatchObject({ type: 'claim-resp', from: 'v1', to: 'A', epoch: 'v1-1', reqEpoch: 'A-1', round: 1000, quiet: false, granted: [X], live: ['A'] });
    expect(voterGrantOf(v, X, 1000 + E - 1)).toEqual({ member: 'A', epoch: 'A-1', until: 1000 + E });
    expect(voterGrantOf(v, X, 1000 + E)).toBeNull();
  });

  it('refuses an IP another member holds while that grant runs', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    expect(voterOnClaim(v, 1000 + E - 1, claim('B', 'v1', 1, [X, Y]))?.granted).toEqual([Y]);
    expect(voterGrantOf(v, X)?.member).toBe('A');
  });

  it('grants it to another member once the grant ran out', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    expect(voterOnClaim(v, 1000 + E, claim('B', 'v1', 1, [X]))?.granted).toEqual([X]);
    expect(voterGrantOf(v, X)).toEqual({ member: 'B', epoch: 'B-1', until: 1000 + 2 * E });
  });

  it('a renewal by the holder extends its grant', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    expect(voterOnClaim(v, 1150, claim('A', 'v1', 1150, [X]))?.granted).toEqual([X]);
    expect(voterGrantOf(v, X)?.until).toBe(1150 + E);
  });

  it('a claim that no longer lists an IP frees it at once for another member', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X, Y]));
    expect(voterOnClaim(v, 1010, claim('A', 'v1', 1010, [Y]))?.granted).toEqual([Y]);
    expect(voterGrantOf(v, X)).toBeNull();
    expect(voterOnClaim(v, 1011, claim('B', 'v1', 1, [X]))?.granted).toEqual([X]);
  });

  it('a claim not newer than the last processed from that member epoch is ignored and frees nothing', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    // A reordered datagram: the release was sent before the claim that granted X again.
    expect(voterOnClaim(v, 1010, claim('A', 'v1', 990, []))).toBeNull();
    expect(voterOnClaim(v, 1010, claim('A', 'v1', 1000, []))).toBeNull();
    expect(voterGrantOf(v, X)?.member).toBe('A');
    expect(voterOnClaim(v, 1020, claim('B', 'v1', 1, [X]))?.granted).toEqual([]);
  });

  it('remembers a member epoch’s last round for 2E of silence', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    // Another claim arriving is what prunes old records.
    voterOnClaim(v, 1000 + E + 10, claim('B', 'v1', 1, []));
    expect(voterOnClaim(v, 1000 + E + 20, claim('A', 'v1', 990, [X]))).toBeNull();
    voterOnClaim(v, 1000 + 2 * E, claim('B', 'v1', 2, []));
    expect(voterOnClaim(v, 1000 + 2 * E, claim('A', 'v1', 990, [X]))?.granted).toEqual([X]);
  });

  it('a new epoch of a member is another member: refused while the old epoch’s grant runs', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    // Its rounds restart too; they are not compared with the old epoch's.
    expect(voterOnClaim(v, 1010, claim('A', 'v1', 5, [X], 'A-2'))?.granted).toEqual([]);
    expect(voterOnClaim(v, 1020, claim('A', 'v1', 6, [], 'A-2'))?.granted).toEqual([]);
    expect(voterGrantOf(v, X)).toEqual({ member: 'A', epoch: 'A-1', until: 1000 + E });
    expect(voterOnClaim(v, 1000 + E, claim('A', 'v1', 7, [X], 'A-2'))?.granted).toEqual([X]);
  });

  it('ignores a claim addressed to another voter', () => {
    const v = voter();
    expect(voterOnClaim(v, 1000, claim('A', 'v2', 1000, [X]))).toBeNull();
    expect(voterGrantOf(v, X)).toBeNull();
    expect(liveMembers(v)).toEqual([]);
  });

  it('grants nothing for E after boot, but lists the members it hears from', () => {
    const v = voter('v1', 0);
    expect(voterOnClaim(v, 0, claim('A', 'v1', 0, [X]))).toMatchObject({ quiet: true, granted: [], live: ['A'] });
    expect(voterOnClaim(v, E - 1, claim('B', 'v1', 1, [Y]))).toMatchObject({ quiet: true, granted: [], live: ['A', 'B'] });
    expect(voterGrantOf(v, X)).toBeNull();
    expect(voterOnClaim(v, E, claim('A', 'v1', E, [X]))).toMatchObject({ quiet: false, granted: [X] });
  });

  it('a leaving claim frees everything and drops the member from the live list at once, but its round still guards', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, [X]));
    voterOnClaim(v, 1000, claim('B', 'v1', 1, []));
    const bye = voterOnClaim(v, 1010, { ...claim('A', 'v1', 1010, []), leaving: true });
    expect(bye?.live).toEqual(['B']);
    expect(voterGrantOf(v, X, 1010)).toBeNull();
    expect(voterOnClaim(v, 1020, claim('A', 'v1', 1005, [X]))).toBeNull();
    expect(voterOnClaim(v, 1020, claim('B', 'v1', 2, [X]))?.granted).toEqual([X]);
  });

  it('lists only candidates as live: a member still starting up learns who is live, but is handed nothing', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, []));
    expect(voterOnClaim(v, 1000, { ...claim('B', 'v1', 1, []), candidate: false })?.live).toEqual(['A']);
    expect(voterOnClaim(v, 1010, claim('B', 'v1', 2, []))?.live).toEqual(['A', 'B']);
    const m = member();
    memberStep(m, { type: 'candidate', now: 0, candidate: false });
    expect(sends(tick(m, 0)).every((c) => !c.candidate)).toBe(true);
    expect(sends(memberStep(m, { type: 'candidate', now: 5, candidate: true })).map((c) => c.candidate)).toEqual(VOTERS.map(() => true));
  });

  it('liveMembers drops members silent for E', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, []));
    voterOnClaim(v, 1100, claim('B', 'v1', 1, []));
    expect(liveMembers(v, 1000 + E - 1)).toEqual(['A', 'B']);
    expect(liveMembers(v, 1000 + E)).toEqual(['B']);
    expect(liveMembers(v, 1100 + E)).toEqual([]);
  });

  it('an ignored claim does not refresh liveness', () => {
    const v = voter();
    voterOnClaim(v, 1000, claim('A', 'v1', 1000, []));
    expect(voterOnClaim(v, 1150, claim('A', 'v1', 1000, []))).toBeNull();
    expect(liveMembers(v, 1000 + E)).toEqual([]);
  });
});

describe('member', () => {
  const D0 = grantMs(timing(0));
  const D1 = grantMs(timing(100));

  it('derives D from the peer timing', () => {
    expect(member(0).d).toEqual({ grantMs: D0, quorum: 2, releaseDelayMs: 0 });
    expect(member(100).d).toEqual({ grantMs: D1, quorum: 2, releaseDelayMs: 101 });
    // D/(1−ρ) + L < E/(1+ρ)
    expect(D1 / 0.99 + 100).toBeLessThan(E / 1.01);
  });

  it('sends its claim set to every voter at once when want grows, then every heartbeat', () => {
    const m = member();
    expect(sends(want(m, 0, [X]))).toEqual(VOTERS.map((v) => claim('A', v, 0, [X])));
    expect(memberNextWakeup(m)).toBe(H);
    expect(sends(tick(m, H - 1))).toEqual([]);
    expect(sends(tick(m, H))).toEqual(VOTERS.map((v) => claim('A', v, H, [X])));
    expect(memberNextWakeup(m)).toBe(2 * H);
    expect(sends(want(m, H + 10, [X, Y]))).toEqual(VOTERS.map((v) => claim('A', v, H + 10, [X, Y])));
    expect(memberNextWakeup(m)).toBe(2 * H + 10);
    expect(sends(want(m, H + 20, [Y, X]))).toEqual([]);
  });

  it('rounds strictly increase even when the clock does not', () => {
    const m = member();
    const r1 = sends(want(m, 0, [X]))[0]!.round;
    const r2 = sends(want(m, 0, [X, Y]))[0]!.round;
    expect(r2).toBeGreaterThan(r1);
  });

  it('one voter’s grant is not enough', () => {
    const m = member();
    want(m, 0, [X]);
    expect(holdsFx(answer(m, 5, resp('v1', 0, [X])))).toEqual([]);
    expect(answer(m, 6, resp('v2', 0, [])).filter((e) => e.type === 'holds')).toEqual([]);
    expect(holdUntil(m, X)).toBe(Number.NEGATIVE_INFINITY);
    expect(memberHolds(m)).toEqual(new Map());
  });

  it('holds an IP once a majority granted it, until the q-th newest granting round + D', () => {
    const m = member();
    want(m, 0, [X]);
    answer(m, 5, resp('v1', 0, [X]));
    expect(holdsFx(answer(m, 6, resp('v2', 0, [X])))).toEqual([new Map([[X, D0]])]);
    tick(m, H);
    // The q-th newest round is still 0.
    expect(holdsFx(answer(m, H + 5, resp('v1', H, [X])))).toEqual([]);
    expect(holdUntil(m, X)).toBe(D0);
    expect(holdsFx(answer(m, H + 6, resp('v3', H, [X])))).toEqual([new Map([[X, H + D0]])]);
  });

  it('a hold lapses at its deadline when no fresh grants arrive', () => {
    const m = member();
    want(m, 0, [X]);
    answer(m, 1, resp('v1', 0, [X]));
    answer(m, 1, resp('v2', 0, [X]));
    let at = memberNextWakeup(m);
    while (at < D0) {
      expect(holdsFx(tick(m, at))).toEqual([]);
      at = memberNextWakeup(m);
    }
    expect(at).toBe(D0);
    expect(holdsFx(tick(m, D0))).toEqual([new Map()]);
  });

  it('a voter that took its grant back (a newer answer without the IP) no longer backs the hold', () => {
    const m = member();
    want(m, 0, [X]);
    answer(m, 1, resp('v1', 0, [X]));
    answer(m, 1, resp('v2', 0, [X]));
    tick(m, H);
    // v2 restarted: its new life answers in boot quiet.
    expect(holdsFx(answer(m, H + 1, resp('v2', H, [], { epoch: 'v2-2', quiet: true })))).toEqual([new Map()]);
  });

  it('an answer for a round before the IP re-entered the claim set does not count', () => {
    const m = member();
    want(m, 0, [X]);
    expect(sends(want(m, 10, [])).map((c) => c.ips)).toEqual([[], [], []]);
    expect(sends(want(m, 20, [X])).map((c) => [c.round, c.ips])).toEqual(VOTERS.map(() => [20, [X]]));
    // Granted to the first run; the release in between may have been lost or reordered.
    answer(m, 21, resp('v1', 0, [X]));
    answer(m, 22, resp('v2', 0, [X]));
    expect(memberHolds(m)).toEqual(new Map());
    answer(m, 23, resp('v1', 20, [X]));
    expect(holdsFx(answer(m, 24, resp('v2', 20, [X])))).toEqual([new Map([[X, 20 + D0]])]);
  });

  it('ignores answers for another epoch of itself, from unknown voters, to another member or for rounds it never sent', () => {
    const m = member();
    want(m, 0, [X]);
    answer(m, 1, resp('v1', 0, [X]));
    answer(m, 2, resp('v2', 0, [X], { reqEpoch: 'A-0' }));
    answer(m, 2, resp('v9', 0, [X]));
    answer(m, 2, resp('v2', 0, [X], { to: 'B' }));
    answer(m, 2, resp('v2', 5, [X]));
    expect(memberHolds(m)).toEqual(new Map());
    expect(holdsFx(answer(m, 3, resp('v2', 0, [X])))).toEqual([new Map([[X, D0]])]);
  });

  it('an older answer from the same voter life does not replace a newer one', () => {
    const m = member();
    want(m, 0, [X]);
    tick(m, H);
    answer(m, H + 1, resp('v1', H, [X]));
    answer(m, H + 1, resp('v2', H, [X]));
    expect(holdUntil(m, X)).toBe(H + D0);
    answer(m, H + 2, resp('v1', 0, []));
    expect(holdUntil(m, X)).toBe(H + D0);
  });

  it('dropping an IP stops the hold at once, keeps it claimed for the linger, then releases it', () => {
    const m = member(100);
    const R = m.d.releaseDelayMs;
    want(m, 0, [X, Y]);
    answer(m, 1, resp('v1', 0, [X, Y]));
    answer(m, 1, resp('v2', 0, [X, Y]));
    expect(memberHolds(m)).toEqual(new Map([[X, D1], [Y, D1]]));
    const fx = want(m, 10, [Y]);
    expect(holdsFx(fx)).toEqual([new Map([[Y, D1]])]);
    expect(sends(fx)).toEqual([]);
    expect(memberNextWakeup(m)).toBe(H);
    expect(sends(tick(m, H)).map((c) => c.ips)).toEqual(VOTERS.map(() => [X, Y]));
    // Grants still arriving for it never bring the hold back in this run.
    answer(m, H + 1, resp('v1', H, [X, Y]));
    answer(m, H + 1, resp('v2', H, [X, Y]));
    expect(memberHolds(m)).toEqual(new Map([[Y, H + D1]]));
    expect(sends(tick(m, 2 * H)).map((c) => c.ips)).toEqual(VOTERS.map(() => [X, Y]));
    expect(memberNextWakeup(m)).toBe(10 + R);
    expect(bare(tick(m, 10 + R))).toEqual(VOTERS.map((v) => claim('A', v, 10 + R, [Y])));
  });

  // grants.ts reconcile(): the linger's end and the re-want run in one pass, so the next claim lists X again.
  it('an IP wanted again during its linger is claimed again at once, and only answers from the new run back it', () => {
    const m = member(100);
    want(m, 0, [X]);
    answer(m, 1, resp('v1', 0, [X]));
    answer(m, 1, resp('v2', 0, [X]));
    want(m, 10, []);
    const again = sends(want(m, 20, [X]));
    expect(again.map((c) => c.ips)).toEqual(VOTERS.map(() => [X]));
    expect(memberHolds(m)).toEqual(new Map());
    answer(m, 21, resp('v1', 0, [X]));
    expect(memberHolds(m)).toEqual(new Map());
    answer(m, 21, resp('v1', 20, [X]));
    answer(m, 21, resp('v2', 20, [X]));
    expect([...memberHolds(m).keys()]).toEqual([X]);
  });

  it('shutdown: holds nothing at once, sends an empty claim after the linger, then stops', () => {
    const m = member(100);
    const R = m.d.releaseDelayMs;
    want(m, 0, [X]);
    answer(m, 1, resp('v1', 0, [X]));
    answer(m, 1, resp('v2', 0, [X]));
    let fx = memberStep(m, { type: 'shutdown', now: 10 });
    expect(holdsFx(fx)).toEqual([new Map()]);
    expect(fx.some((e) => e.type === 'stopped')).toBe(false);
    expect(sends(want(m, 20, [X]))).toEqual([]);
    expect(sends(tick(m, H)).map((c) => c.ips)).toEqual(VOTERS.map(() => [X]));
    answer(m, H + 1, resp('v1', H, [X]));
    answer(m, H + 1, resp('v2', H, [X]));
    expect(memberHolds(m)).toEqual(new Map());
    expect(sends(tick(m, 2 * H)).map((c) => c.ips)).toEqual(VOTERS.map(() => [X]));
    expect(memberNextWakeup(m)).toBe(10 + R);
    fx = tick(m, 10 + R);
    expect(bare(fx)).toEqual(VOTERS.map((v) => ({ ...claim('A', v, 10 + R, []), leaving: true, candidate: false })));
    expect(fx.at(-1)).toEqual({ type: 'stopped' });
    expect(memberNextWakeup(m)).toBe(Number.POSITIVE_INFINITY);
    expect(tick(m, 10 + R + H)).toEqual([]);
    expect(want(m, 10 + R + H, [X])).toEqual([]);
    expect(answer(m, 10 + R + H, resp('v1', 10 + R, []))).toEqual([]);
  });

  it('shutdown without a linger releases and stops at once', () => {
    const m = member(0);
    want(m, 0, [X]);
    answer(m, 1, resp('v1', 0, [X]));
    answer(m, 1, resp('v2', 0, [X]));
    const fx = memberStep(m, { type: 'shutdown', now: 10 });
    expect(fx.map((e) => e.type)).toEqual(['holds', ...VOTERS.map(() => 'send'), 'stopped']);
    expect(fx[0]).toEqual({ type: 'holds', holds: new Map() });
    expect(bare(fx)).toEqual(VOTERS.map((v) => ({ ...claim('A', v, 10, []), leaving: true, candidate: false })));
  });

  it('names the live list it has from each voter, and a voter leaves an unchanged list out', () => {
    const v = voter();
    const m = member();
    const first = voterOnClaim(v, 1000, sends(want(m, 0, [X])).find((c) => c.to === 'v1')!)!;
    expect(first.live).toEqual(['A']);
    answer(m, 1, first);
    const again = sends(tick(m, H)).find((c) => c.to === 'v1')!;
    expect(again.liveSeen).toEqual({ epoch: 'v1-1', version: first.liveVersion });
    const second = voterOnClaim(v, 1000 + H, again)!;
    expect(second.live).toBeNull();
    answer(m, H + 1, second);
    expect(m.acks.get('v1')?.live).toEqual(['A']);
    // Someone joins: the list changes version and travels again.
    voterOnClaim(v, 1000 + H + 5, claim('B', 'v1', 1, []));
    const third = voterOnClaim(v, 1000 + 2 * H, sends(tick(m, 2 * H)).find((c) => c.to === 'v1')!)!;
    expect(third.live).toEqual(['A', 'B']);
    expect(third.liveVersion).toBeGreaterThan(first.liveVersion);
  });

  it('reports as live what a majority of fresh answers list; it changes as answers grow older than E, and is kept without a fresh majority', () => {
    const m = member();
    want(m, 0, [X]);
    // One voter's word is not enough (it may be the only one that has not noticed a departure).
    expect(liveFx(answer(m, 1, resp('v1', 0, [], { live: ['A'] })))).toEqual([]);
    expect(liveFx(answer(m, 2, resp('v2', 0, [], { live: ['A', 'B'] })))).toEqual([['A']]);
    expect(liveFx(answer(m, 3, resp('v3', 0, [], { live: ['B'] })))).toEqual([['A', 'B']]);
    tick(m, H);
    expect(liveFx(answer(m, H + 1, resp('v1', H, [], { live: ['A', 'C'] })))).toEqual([]);
    expect(liveFx(answer(m, H + 1, resp('v2', H, [], { live: ['A', 'C'] })))).toEqual([['A', 'C']]);
    expect(memberNextWakeup(m)).toBe(2 * H);
    for (let t = 2 * H; t < E; t += H) tick(m, t);
    expect(memberNextWakeup(m)).toBe(E);
    // v3's answer (round 0) ages out, which changes nothing; v1's and v2's (round H) are still fresh.
    expect(liveFx(tick(m, E))).toEqual([]);
    expect(memberNextWakeup(m)).toBe(E + H);
    // v1's and v2's answers age out too: with no majority of fresh answers the view is kept.
    expect(liveFx(tick(m, E + H))).toEqual([]);
    expect(memberLive(m)).toEqual(['A', 'C']);
  });
});

describe('end to end: 3 voters, 2 members', () => {
  // The clocks disagree by arbitrary offsets (only durations on one clock matter); rates are exact.
  const offsets: Record<string, number> = { v1: 0, v2: 7_000, v3: -3_000, A: 1_000_000, B: 42 };

  function cluster(lingerMs: number) {
    const voters = new Map(VOTERS.map((id) => [id as string, initVoter({ self: id, electionTimeoutMs: E }, offsets[id]!, `${id}-1`)]));
    const members = new Map(['A', 'B'].map((id) => [id, initMember({ ...timing(lingerMs), self: id, voters: VOTERS }, offsets[id]!, `${id}-1`)]));
    const crashed = new Set<string>();
    /** Per member, its holds effects in true time: [at, ip → until]. */
    const holds = new Map<string, Array<[number, Map<string, number>]>>([['A', []], ['B', []]]);
    const live = new Map<string, Array<[number, readonly string[]]>>([['A', []], ['B', []]]);
    let t = 0;

    const run = (id: string, input: { type: 'tick' } | { type: 'want'; ips: string[] }) => {
      const queue: Array<{ id: string; fx: MemberEffect[] }> = [{ id, fx: memberStep(members.get(id)!, { ...input, now: t + offsets[id]! }) }];
      while (queue.length > 0) {
        const { id: from, fx } = queue.shift()!;
        for (const e of fx) {
          if (e.type === 'holds') holds.get(from)!.push([t, new Map([...e.holds].map(([ip, u]) => [ip, u - offsets[from]!]))]);
          if (e.type === 'live') live.get(from)!.push([t, e.members]);
          if (e.type !== 'send' || crashed.has(from)) continue;
          const r = voterOnClaim(voters.get(e.msg.to)!, t + offsets[e.msg.to]!, e.msg);
          if (r === null || crashed.has(r.to)) continue;
          queue.push({ id: r.to, fx: memberStep(members.get(r.to)!, { type: 'message', now: t + offsets[r.to]!, msg: r }) });
        }
      }
    };
    const until = (end: number) => {
      for (; t < end; t++) {
        for (const [id, m] of members) if (!crashed.has(id) && memberNextWakeup(m) - offsets[id]! <= t) run(id, { type: 'tick' });
      }
    };
    /** The member's hold on ip at true time `at`, as it last reported it. */
    const heldAt = (id: string, ip: string, at: number) => {
      const last = holds.get(id)!.filter(([when]) => when <= at).at(-1);
      return last !== undefined && (last[1].get(ip) ?? Number.NEGATIVE_INFINITY) > at;
    };
    return { run, until, heldAt, holds, live, crashed, now: () => t };
  }

  for (const lingerMs of [0, 100]) {
    it(`one member at a time holds an IP, and it moves only after the holder's grants ran out (linger ${lingerMs})`, () => {
      const c = cluster(lingerMs);
      c.run('A', { type: 'want', ips: [X] });
      c.run('B', { type: 'want', ips: [] });
      c.until(E + 1);
      // The voters' boot quiet ends at E; A's claim at E is the first one granted.
      expect(c.heldAt('A', X, E)).toBe(true);
      expect(c.live.get('B')!.at(-1)?.[1]).toEqual(['A', 'B']);

      c.until(500);
      c.run('B', { type: 'want', ips: [X] });
      c.until(2000);
      for (let at = 0; at < 2000; at++) expect(c.heldAt('B', X, at)).toBe(false);
      for (let at = E; at < 2000; at++) expect(c.heldAt('A', X, at)).toBe(true);

      c.crashed.add('A');
      const aLast = c.holds.get('A')!.at(-1)![1].get(X)!;
      c.until(3000);
      const bStart = c.holds.get('B')!.find(([, h]) => h.has(X))![0];
      // A answers until its deadline plus the linger; B's grants come only after A's ran out.
      expect(bStart).toBeGreaterThanOrEqual(aLast + lingerMs);
      expect(bStart).toBeLessThanOrEqual(aLast - grantMs(timing(lingerMs)) + E + H);
      for (let at = bStart; at < 3000; at++) expect(c.heldAt('B', X, at)).toBe(true);
      // B's view loses A when A's grants run out, not later.
      const aGone = c.live.get('B')!.find(([when, ms]) => when >= 2000 && !ms.includes('A'))![0];
      expect(aGone).toBe(bStart);
    });
  }
});
