/** Builders the allocator tests share: one Service's claim, and the addresses an outcome assigned. */
import type { Outcome, ServiceClaim } from '../../../src/services/logic/ipam.js';

/** A claim builder whose claims name `requestSource` as where requested addresses came from. */
export function claimFrom(requestSource: string): (key: string, over?: Partial<ServiceClaim>) => ServiceClaim {
  return (key, over = {}) => {
    const [namespace = 'default'] = key.split('/');
    return {
      key,
      namespace,
      priority: '2026-01-01T00:00:00Z',
      families: [4],
      policy: 'SingleStack',
      requested: [],
      requestSource,
      ports: [{ port: 80, protocol: 'TCP' }],
      externalTrafficPolicy: 'Cluster',
      current: [],
      ...over,
    };
  };
}

export const ips = (o: Outcome | undefined) => (o?.kind === 'assigned' ? o.ips : undefined);
