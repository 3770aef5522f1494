/**
 * vitest helper for suites that need a real kube-apiserver + etcd.
 *
 * Rule: with the binaries present the suite runs. Without them it is skipped with ONE line that
 * says how to enable it, except under CI=true, where a missing API is a failing test, never a
 * skip (.ci/run builds the binaries first, so a miss there is a broken pipeline).
 */
import { describe, it } from 'vitest';
import { apiAssets } from '../../lab/k8s-assets.js';

// One line per test file, however many suites it skips.
let warned = false;

export function describeWithApi(name: string, fn: (assetsDir: string) => void): void {
  const found = apiAssets();
  if ('dir' in found) {
    describe(name, () => fn(found.dir));
    return;
  }
  const ci = process.env.CI;
  if (ci && !['0', 'false'].includes(ci.toLowerCase())) {
    describe(name, () => {
      it('has kube-apiserver and etcd (required under CI=true)', () => {
        throw new Error(found.skip);
      });
    });
    return;
  }
  if (!warned) console.warn(`[vipd] skipping the suites that need a Kubernetes API: ${found.skip}`);
  warned = true;
  describe.skip(name, () => fn(''));
}
