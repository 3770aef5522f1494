import { describe, expect, it } from 'vitest';
import { countRequests, isServerInternal, parseAuditLine, parseAuditLog, perMinute } from '../../bench/lib/audit.js';

const ev = (o: Record<string, unknown>): string =>
  JSON.stringify({
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: 'a1',
    stage: 'ResponseComplete',
    requestURI: '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-cp-lock',
    verb: 'update',
    user: { username: 'system:serviceaccount:kube-system:vipd' },
    sourceIPs: ['127.0.0.1'],
    userAgent: 'vipd',
    objectRef: { resource: 'leases', namespace: 'kube-system', name: 'plndr-cp-lock', apiVersion: 'coordination.k8s.io/v1' },
    responseStatus: { metadata: {}, code: 200 },
    requestReceivedTimestamp: '2026-01-01T00:00:01.500000Z',
    stageTimestamp: '2026-01-01T00:00:01.510000Z',
    ...o,
  });

describe('audit log counting', () => {
  it('parses an event: target is the resource (with subresource) or the non-resource path', () => {
    const e = parseAuditLine(ev({}))!;
    expect(e).toMatchObject({ verb: 'update', target: 'leases', user: 'system:serviceaccount:kube-system:vipd', code: 200, receivedAt: Date.parse('2026-01-01T00:00:01.5Z') });
    expect(parseAuditLine(ev({ objectRef: { resource: 'services', subresource: 'status' } }))!.target).toBe('services/status');
    expect(parseAuditLine(ev({ objectRef: undefined, requestURI: '/livez?verbose', verb: 'get' }))!.target).toBe('/livez');
  });

  it('skips what is not an audit event', () => {
    expect(parseAuditLine('I0101 00:00:00 klog line')).toBeNull();
    expect(parseAuditLine('{"kind":"Event","auditID":"x"')).toBeNull();
    expect(parseAuditLine('{"kind":"Other"}')).toBeNull();
  });

  it('one request per auditID, whichever stages were logged', () => {
    const text = [ev({ stage: 'ResponseStarted', verb: 'watch' }), ev({}), ev({ auditID: 'a2' }), 'garbage'].join('\n');
    expect(parseAuditLog(text).map((e) => e.auditID)).toEqual(['a1', 'a2']);
  });

  it('counts by window and filter; writes are create/update/patch/delete', () => {
    const events = parseAuditLog(
      [
        ev({ auditID: '1' }),
        ev({ auditID: '2', verb: 'get' }),
        ev({ auditID: '3', verb: 'patch', objectRef: { resource: 'services', subresource: 'status' } }),
        ev({ auditID: '4', requestReceivedTimestamp: '2026-01-01T00:01:30Z' }),
        ev({ auditID: '5', user: { username: 'system:apiserver' } }),
      ].join('\n'),
    );
    const from = Date.parse('2026-01-01T00:00:00Z');
    const c = countRequests(events, from, from + 60_000, (e) => !isServerInternal(e));
    expect(c).toEqual({ total: 3, writes: 2, byKind: { 'update leases': 1, 'get leases': 1, 'patch services/status': 1 }, byClient: { vipd: 3 } });
    expect(perMinute(c.total, 60_000)).toBe(3);
    expect(perMinute(10, 30_000)).toBe(20);
    expect(perMinute(1, 0)).toBe(0);
  });
});
