/**
 * vitest helper for suites that need the kubeadm cluster lab's assets (scripts/cluster-assets.sh):
 * the same rule as with-api.ts. With the assets the suite runs; without them it is skipped with ONE
 * line saying how to get them, except under CI=true, where a miss is a failing test.
 */
import { describe, it } from 'vitest';
import { clusterAssets, type ClusterAssets } from '../../lab/cluster.js';

export function describeWithCluster(name: string, fn: (assets: ClusterAssets) => void): void {
  const found = clusterAssets();
  if (!('skip' in found)) {
    describe(name, () => fn(found));
    return;
  }
  const ci = process.env.CI;
  if (ci && !['0', 'false'].includes(ci.toLowerCase())) {
    describe(name, () => {
      it('has the cluster lab assets (required under CI=true)', () => {
        throw new Error(found.skip);
      });
    });
    return;
  }
  console.warn(`[vipd] skipping the kubeadm cluster suite: ${found.skip}`);
  describe.skip(name, () => fn(found as unknown as ClusterAssets));
}
