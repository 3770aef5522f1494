import { apiAssets } from '../../lab/k8s-assets.js';

/**
 * What every benchmark needs before it builds a lab: root (network namespaces) when asked, and the
 * kube-apiserver + etcd build. Returns the one-line reason it cannot run, or undefined.
 */
export function preflight(name: string, opts: { root: boolean }): string | undefined {
  if (opts.root && process.getuid?.() !== 0) return `${name}: needs root (network namespaces)`;
  const assets = apiAssets();
  if ('skip' in assets) return `${name}: ${assets.skip}`;
  return undefined;
}
