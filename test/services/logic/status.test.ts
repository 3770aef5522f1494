import { describe, expect, it } from 'vitest';
import { releasePatch, statusPatch } from '../../../src/services/logic/status.js';
import type { ServiceLike } from '../../../src/services/logic/model.js';

const now = new Date('2026-03-01T10:00:00.000Z');
const svc = (status: ServiceLike['status'] = {}): ServiceLike => ({ metadata: { name: 's', namespace: 'a', resourceVersion: '42', generation: 3 }, spec: { type: 'LoadBalancer' }, status });
const mine = (ips: string, extra: object = {}) => ({ type: 'vipd.io/Allocated', status: 'True', reason: 'Allocated', message: `allocated: ${ips}`, observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z', ...extra });

describe('status patches', () => {
  it('assigned: ingress with ipMode VIP and the record, guarded by resourceVersion; other conditions kept', () => {
    const other = { type: 'example.io/Other', status: 'True', reason: 'X', message: '', lastTransitionTime: new Date('2026-01-02T00:00:00Z') };
    const p = statusPatch(svc({ conditions: [other] }), { kind: 'assigned', ips: ['198.18.0.1', '2001:db8::1'], missing: [] }, now);
    expect(p).toEqual({
      metadata: { resourceVersion: '42' },
      status: {
        loadBalancer: { ingress: [{ ip: '198.18.0.1', ipMode: 'VIP' }, { ip: '2001:db8::1', ipMode: 'VIP' }] },
        conditions: [
          { ...other, lastTransitionTime: '2026-01-02T00:00:00Z' },
          { type: 'vipd.io/Allocated', status: 'True', reason: 'Allocated', message: 'allocated: 198.18.0.1,2001:db8::1', lastTransitionTime: '2026-03-01T10:00:00Z', observedGeneration: 3 },
        ],
      },
    });
  });

  it('nothing to write when status already says it (ipMode dropped by an older server does not count)', () => {
    const s = svc({ loadBalancer: { ingress: [{ ip: '198.18.0.1' }] }, conditions: [mine('198.18.0.1')] });
    expect(statusPatch(s, { kind: 'assigned', ips: ['198.18.0.1'], missing: [] }, now)).toBeUndefined();
  });

  it('pending: no ingress, condition False with the reason; the transition time moves only on a flip', () => {
    const s = svc({ loadBalancer: { ingress: [{ ip: '198.18.0.1' }] }, conditions: [mine('198.18.0.1')] });
    const p = statusPatch(s, { kind: 'pending', reason: 'requested-ip-in-use', message: 'taken' }, now);
    expect(p?.status.loadBalancer.ingress).toBeNull();
    expect(p?.status.conditions?.[0]).toMatchObject({ status: 'False', reason: 'RequestedIPInUse', message: 'taken', lastTransitionTime: '2026-03-01T10:00:00Z' });
    const again = svc({ conditions: [{ ...p!.status.conditions![0]!, message: 'older words' }] });
    expect(statusPatch(again, { kind: 'pending', reason: 'requested-ip-in-use', message: 'taken' }, new Date('2026-04-01T00:00:00Z'))?.status.conditions?.[0]?.lastTransitionTime).toBe('2026-03-01T10:00:00Z');
  });

  it('release: drops the record, and the ingress only if it is still exactly what vipd wrote', () => {
    expect(releasePatch(svc({ loadBalancer: { ingress: [{ ip: '198.18.0.1' }] } }))).toBeUndefined();
    const ours = releasePatch(svc({ loadBalancer: { ingress: [{ ip: '198.18.0.1' }] }, conditions: [mine('198.18.0.1')] }));
    expect(ours).toEqual({ metadata: { resourceVersion: '42' }, status: { loadBalancer: { ingress: null }, conditions: null } });
    const foreign = releasePatch(svc({ loadBalancer: { ingress: [{ ip: '198.18.0.9' }] }, conditions: [mine('198.18.0.1')] }));
    expect(foreign?.status).toEqual({ conditions: null });
  });
});
