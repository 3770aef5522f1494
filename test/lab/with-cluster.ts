/**
 * vitest helper for suites that need the kubeadm cluster lab's assets (scripts/cluster-assets.sh):
 * the same rule as with-api.ts. With the assets the suite runs; without them it is skipped with ONE
 * line saying how to get them, except under CI=true, where a miss is a failing test.
 */
import { describeRequiring } from './requires.js';
import { clusterAssets, type ClusterAssets } from '../../lab/cluster.js';

export function describeWithCluster(name: string, fn: (assets: ClusterAssets) => void): void {
  const found = clusterAssets();
  describeRequiring(name, 'skip' in found ? { ok: false, skip: found.skip } : { ok: true, assets: found }, { needs: 'the cluster lab assets', skipping: 'the kubeadm cluster suite', warn: () => true, unused: found as unknown as ClusterAssets }, fn);
}
