import { describe, expect, it } from 'vitest';
import { askedPool, requested, sharingKey } from '../../../src/services/logic/model.js';

const svc = (annotations: Record<string, string>, loadBalancerIP?: string) => ({ metadata: { annotations }, spec: { type: 'LoadBalancer', ...(loadBalancerIP ? { loadBalancerIP } : {}) } });

describe('MetalLB annotations', () => {
  it('reads metallb.io/loadBalancerIPs after kube-vip.io/loadbalancerIPs and before spec.loadBalancerIP', () => {
    expect(requested(svc({ 'metallb.io/loadBalancerIPs': '198.18.0.5, 2001:db8::5' }, '198.18.0.9'))).toEqual({ ips: ['198.18.0.5', '2001:db8::5'], source: 'annotation metallb.io/loadBalancerIPs' });
    expect(requested(svc({ 'kube-vip.io/loadbalancerIPs': '198.18.0.1', 'metallb.io/loadBalancerIPs': '198.18.0.5' })).ips).toEqual(['198.18.0.1']);
    expect(requested(svc({ 'metallb.io/loadBalancerIPs': ' ' }, '198.18.0.9')).ips).toEqual(['198.18.0.9']);
  });
  it('reads the sharing key and the asked pool, blank meaning unset', () => {
    expect(sharingKey(svc({ 'metallb.io/allow-shared-ip': 'web' }))).toBe('web');
    expect(sharingKey(svc({ 'metallb.io/allow-shared-ip': '' }))).toBeUndefined();
    expect(askedPool(svc({ 'metallb.io/address-pool': 'prod' }))).toBe('prod');
    expect(askedPool(svc({}))).toBeUndefined();
  });
});
