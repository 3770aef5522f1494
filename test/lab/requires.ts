/**
 * The rule for suites that need built assets (kube-apiserver + etcd, the kubeadm cluster lab):
 * with the assets the suite runs. Without them it is skipped with ONE line that says how to get
 * them, except under CI=true, where a miss is a failing test, never a skip (.ci/run builds the
 * assets first, so a miss there is a broken pipeline).
 */
import { describe, it } from 'vitest';

export function describeRequiring<T>(
  name: string,
  found: { ok: true; assets: T } | { ok: false; skip: string },
  /** `unused`: what a skipped suite's body is collected with (vitest still runs it to list the tests). */
  what: { needs: string; skipping: string; warn: () => boolean; unused: T },
  fn: (assets: T) => void,
): void {
  if (found.ok) {
    describe(name, () => fn(found.assets));
    return;
  }
  const ci = process.env.CI;
  if (ci && !['0', 'false'].includes(ci.toLowerCase())) {
    describe(name, () => {
      it(`has ${what.needs} (required under CI=true)`, () => {
        throw new Error(found.skip);
      });
    });
    return;
  }
  if (what.warn()) console.warn(`[vipd] skipping ${what.skipping}: ${found.skip}`);
  describe.skip(name, () => fn(what.unused));
}
