/**
 * Member Leases against a real kube-apiserver + etcd, with the vipd ServiceAccount only: renewals
 * buy grants, claims are written and seen in resourceVersion order, an expired member is fenced
 * by compare-and-swap and its next write finds out, a release clears the holder.
 */
import { expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateLeaseTiming } from '../../src/election/lease/state.js';
import { fenceMember, MemberLease, MemberView, type GrantChange } from '../../src/services/member-lease.js';
import { CLAIMS_ANNOTATION, ClaimBook } from '../../src/services/logic/membership.js';
import { describeWithApi } from '../lab/with-api.js';
import { log, useServicesApi, type Runner } from './with-services-api.js';

const timing = validateLeaseTiming({ leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 });

describeWithApi('member Leases against kube-apiserver', (assetsDir) => {
  const api = useServicesApi({ assetsDir, untilMs: 10_000, stepMs: 20 });
  const { until } = api;

  function start<T extends Runner>(x: T): { x: T; stop: AbortController; done: Promise<void> } {
    return { x, ...api.start(x) };
  }

  it('a member renews its Lease, claims are written at once and confirmed when its own write comes back on the watch', async () => {
    const view = start(new MemberView({ client: api.client, namespace: 'kube-system', leaseDurationMs: timing.leaseDurationMs, retryPeriodMs: timing.retryPeriodMs, log }));
    const lease = new MemberLease({ client: api.client, namespace: 'kube-system', node: 'n1', timing, log });
    const grants: GrantChange[] = [];
    lease.onGrant((g) => grants.push(g));
    const book = new ClaimBook();
    lease.onWritten((claims, v) => book.written(claims, v));
    view.x.onUpdate(() => {
      const own = view.x.table.get('n1');
      if (own?.record.holderIdentity === 'n1') book.observedOwn(own.record.resourceVersion, (ip) => view.x.table.claimant(ip, 'n1', performance.now()) !== undefined);
    });
    await lease.read(new AbortController().signal);
    const w = start(lease);
    await until('grant', () => lease.hasGrant());
    expect(grants[0]).toMatchObject({ kind: 'hold' });
    expect(lease.grantUntil() - performance.now()).toBeLessThanOrEqual(2000);
    await until('live in the view', () => view.x.table.live(performance.now()).includes('n1'));

    book.setWanted(new Set(['198.18.0.130']), () => true);
    lease.setClaims(book.published());
    await until('confirmed', () => book.confirmed().includes('198.18.0.130'));
    const r = await api.cp.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/vipd-member-n1');
    const obj = JSON.parse(r.body) as { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { holderIdentity: string } };
    expect(obj.metadata.labels['vipd.io/member']).toBe('true');
    expect(obj.metadata.annotations[CLAIMS_ANNOTATION]).toBe('198.18.0.130');
    expect(obj.spec.holderIdentity).toBe('n1');

    // Renewals keep going every retryPeriod: the grant moves forward.
    const before = lease.grantUntil();
    await sleep(1200);
    expect(lease.grantUntil()).toBeGreaterThan(before);

    w.stop.abort();
    await w.done;
    expect(await lease.release(2000)).toBe(true);
    await until('released in the view', () => view.x.table.get('n1')?.record.holderIdentity === '');
    expect(view.x.table.claimant('198.18.0.130', 'n2', performance.now())).toBeUndefined();
    view.stop.abort();
    await view.done;
  });

  it('a member that stops writing expires; a fence (CAS) voids its claims; its next write finds out and it starts over', async () => {
    const view = start(new MemberView({ client: api.client, namespace: 'kube-system', leaseDurationMs: timing.leaseDurationMs, retryPeriodMs: timing.retryPeriodMs, log }));
    const lease = new MemberLease({ client: api.client, namespace: 'kube-system', node: 'n2', timing, log });
    const fenced: string[] = [];
    lease.onFenced((why) => fenced.push(why));
    await lease.read(new AbortController().signal);
    lease.setClaims(['198.18.0.140']);
    let w = start(lease);
    await until('claimed', () => view.x.table.get('n2')?.record.claims.includes('198.18.0.140'));
    w.stop.abort(); // frozen: no more writes, no release
    await w.done;
    const seen = view.x.raw('n2')!;
    await until('expired', () => view.x.table.expired(performance.now()).some((o) => o.record.node === 'n2'), 6000);
    expect(view.x.table.claimant('198.18.0.140', 'n1', performance.now())).toBe('n2'); // still counts until fenced

    // A stale copy cannot fence: CAS on an older version.
    expect(await fenceMember(api.client, 'kube-system', { ...seen, metadata: { ...seen.metadata, resourceVersion: '1' } }, new AbortController().signal)).toBe('changed');
    expect(await fenceMember(api.client, 'kube-system', seen, new AbortController().signal)).toBe('fenced');
    await until('fence seen', () => view.x.table.get('n2')?.record.holderIdentity === '');
    expect(view.x.table.claimant('198.18.0.140', 'n1', performance.now())).toBeUndefined();

    // The member wakes up: its CAS fails, it learns it was fenced, and acquires again.
    w = start(lease);
    await until('fenced noticed', () => fenced.length > 0);
    await until('re-acquired', () => lease.hasGrant() && view.x.table.get('n2')?.record.holderIdentity === 'n2');
    w.stop.abort();
    await w.done;
    view.stop.abort();
    await view.done;
  });
});
