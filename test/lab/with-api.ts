/**
 * vitest helper for suites that need a real kube-apiserver + etcd.
 *
 * Rule: with the binaries present the suite runs. Without them it is skipped with ONE line that
 * says how to enable it, except under CI=true, where a missing API is a failing test, never a
 * skip (.ci/run builds the binaries first, so a miss there is a broken pipeline).
 */
import { describeRequiring } from './requires.js';
import { apiAssets } from '../../lab/k8s-assets.js';

// One line per test file, however many suites it skips.
let warned = false;

export function describeWithApi(name: string, fn: (assetsDir: string) => void): void {
  const found = apiAssets();
  const first = () => {
    const w = !warned;
    warned = true;
    return w;
  };
  describeRequiring(name, 'dir' in found ? { ok: true, assets: found.dir } : { ok: false, skip: found.skip }, { needs: 'kube-apiserver and etcd', skipping: 'the suites that need a Kubernetes API', warn: first, unused: '' }, fn);
}
