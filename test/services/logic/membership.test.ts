import { describe, expect, it } from 'vitest';
import { ClaimBook, MemberTable, formatClaims, memberLeaseName, memberState, nodeOfLease, parseClaims, versionAtLeast, type MemberRecord } from '../../../src/services/logic/membership.js';

const LD = 3000;
const rec = (node: string, rv: number, claims: string[] = [], holderIdentity = node): MemberRecord => ({ node, holderIdentity, claims, resourceVersion: String(rv) });

describe('member Lease names and claims', () => {
  it('maps nodes to Lease names and back', () => {
    expect(memberLeaseName('n1')).toBe('vipd-member-n1');
    expect(nodeOfLease('vipd-member-n1')).toBe('n1');
    expect(nodeOfLease('vipd-member-')).toBeUndefined();
    expect(nodeOfLease('plndr-cp-lock')).toBeUndefined();
  });

  it('claims are canonical, sorted and unique; junk is dropped', () => {
    expect(parseClaims('198.18.0.130, 2001:DB8::1,198.18.0.130,junk,,198.18.0.129')).toEqual(['198.18.0.129', '198.18.0.130', '2001:db8::1']);
    expect(parseClaims(undefined)).toEqual([]);
    expect(formatClaims(['b', 'a', 'a'])).toBe('a,b');
  });

  it('orders integer resourceVersions, opaque ones only by equality', () => {
    expect(versionAtLeast('10', '9')).toBe(true);
    expect(versionAtLeast('9', '10')).toBe(false);
    expect(versionAtLeast('x', 'x')).toBe(true);
    expect(versionAtLeast('x', 'y')).toBe(false);
  });
});

describe('MemberTable', () => {
  it('a member is live for leaseDuration after its last observed CHANGE, by the local clock', () => {
    const t = new MemberTable(LD);
    t.apply(rec('n1', 5), 1000);
    expect(t.live(3999)).toEqual(['n1']);
    t.apply(rec('n1', 5), 3500); // same version again (a relist): not a change
    expect(t.live(4000)).toEqual([]);
    expect(t.expired(4000).map((o) => o.record.node)).toEqual(['n1']);
    t.apply(rec('n1', 6), 4100);
    expect(t.live(7099)).toEqual(['n1']);
  });

  it('an older version (a lagging stream) does not move the observation', () => {
    const t = new MemberTable(LD);
    t.apply(rec('n1', 7), 0);
    expect(t.apply(rec('n1', 6), 2000)).toBe(false);
    expect(t.live(3000)).toEqual([]);
  });

  it('a longer advertised leaseDuration is honoured', () => {
    const t = new MemberTable(LD);
    t.apply({ ...rec('n1', 1), leaseDurationSeconds: 10 }, 0);
    expect(t.live(9999)).toEqual(['n1']);
  });

  it('a released or fenced member is not live and its claims do not count', () => {
    const t = new MemberTable(LD);
    t.apply(rec('n1', 1, ['198.18.0.130'], ''), 0);
    expect(memberState(t.get('n1')!, 1, LD).kind).toBe('released');
    expect(t.claimant('198.18.0.130', 'n2', 1)).toBeUndefined();
  });

  it('claims of live and of expired (not yet fenced) members count', () => {
    const t = new MemberTable(LD);
    t.apply(rec('n1', 1, ['198.18.0.130']), 0);
    expect(t.claimant('198.18.0.130', 'n2', 10)).toBe('n1');
    expect(t.claimant('198.18.0.130', 'n1', 10)).toBeUndefined();
    expect(t.claimant('198.18.0.130', 'n2', 100_000)).toBe('n1');
  });

  it('a deleted Lease keeps its claims for leaseDuration after the deletion was seen, and cannot be fenced', () => {
    const t = new MemberTable(LD);
    t.apply(rec('n1', 1, ['198.18.0.130']), 0);
    t.remove('n1', 500);
    expect(t.expired(600)).toEqual([]);
    expect(t.claimant('198.18.0.130', 'n2', 3499)).toBe('n1');
    expect(t.claimant('198.18.0.130', 'n2', 3500)).toBeUndefined();
    expect(t.nextChange(600)).toBe(3500);
    t.prune(3500);
    expect(t.nodes()).toEqual([]);
  });

  it('a fresh list treats members missing from it as deleted', () => {
    const t = new MemberTable(LD);
    t.replaceAll([rec('n1', 1), rec('n2', 2)], 0);
    t.replaceAll([rec('n2', 2)], 100);
    expect(t.get('n1')?.deleted).toBe(true);
    expect(t.get('n2')?.observedAt).toBe(0);
  });
});

describe('ClaimBook', () => {
  const X = '198.18.0.130';
  const Y = '198.18.0.131';

  it('wanted → pending at the written version → confirmed when our own Lease is seen at or after it', () => {
    const b = new ClaimBook();
    b.setWanted(new Set([X]), () => true);
    expect(b.published()).toEqual([X]);
    expect(b.state(X)).toEqual({ kind: 'wanted' });
    b.written([X], '10');
    expect(b.observedOwn('9', () => false).confirmed).toEqual([]);
    expect(b.observedOwn('10', () => false).confirmed).toEqual([X]);
    expect(b.confirmed()).toEqual([X]);
  });

  it('a conflicting claim seen at confirmation time retracts ours', () => {
    const b = new ClaimBook();
    b.setWanted(new Set([X, Y]), () => true);
    b.written([X, Y], '10');
    const r = b.observedOwn('12', (ip) => ip === X);
    expect(r).toEqual({ confirmed: [Y], retracted: [X] });
    expect(b.published()).toEqual([Y]);
  });

  it('an IP claimed by someone else is not claimed at all', () => {
    const b = new ClaimBook();
    b.setWanted(new Set([X]), () => false);
    expect(b.published()).toEqual([]);
  });

  it('an IP added while a write is in flight stays wanted until a write lists it', () => {
    const b = new ClaimBook();
    b.setWanted(new Set([X]), () => true);
    const inFlight = b.published();
    b.setWanted(new Set([X, Y]), () => true);
    b.written(inFlight, '10');
    expect(b.state(Y)).toEqual({ kind: 'wanted' });
    b.observedOwn('10', () => false);
    expect(b.confirmed()).toEqual([X]);
  });

  it('a confirmed IP no longer wanted stays published until the holder let go; undecided ones are dropped at once', () => {
    const b = new ClaimBook();
    b.setWanted(new Set([X, Y]), () => true);
    b.written([X], '10');
    b.observedOwn('10', () => false);
    b.written([X, Y], '11');
    b.setWanted(new Set(), () => true);
    expect(b.state(X)).toEqual({ kind: 'releasing' });
    expect(b.state(Y)).toBeUndefined();
    expect(b.published()).toEqual([X]);
    b.setWanted(new Set([X]), () => true); // wanted again before the unbind finished: still releasing
    expect(b.state(X)).toEqual({ kind: 'releasing' });
    b.released(X);
    expect(b.published()).toEqual([]);
  });

  it('reset (fenced) voids everything', () => {
    const b = new ClaimBook();
    b.setWanted(new Set([X]), () => true);
    b.written([X], '1');
    b.observedOwn('1', () => false);
    expect(b.reset()).toEqual([X]);
    expect(b.published()).toEqual([]);
  });
});
