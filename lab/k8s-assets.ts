/**
 * Where tests and the lab find the kube-apiserver and etcd binaries (controller-runtime envtest
 * layout: one folder holding both, named by KUBEBUILDER_ASSETS).
 *
 * Order: KUBEBUILDER_ASSETS if it holds both executables, else a finished build under
 * `.cache/k8s/<version>/` (or $VIPD_K8S_CACHE/<version>/, as for the script) made by
 * `npm run k8s:assets` (finished = has the `.complete` stamp the
 * script writes before renaming the folder into place). Never starts a build: that takes minutes
 * and belongs to `npm run k8s:assets` / .ci/run, not to a test run.
 *
 * No vitest imports here: the lab uses this too. The skip-or-fail rule lives in the test helper.
 */
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ApiAssets = { dir: string } | { skip: string };

/** The one line that tells a person how to get the API suites to run. */
export const API_ASSETS_HINT =
  'run `npm run k8s:assets` (a one-time Go build, about 6 min) or set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd';

const STAMP = '.complete';

export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

export function hasApiBinaries(dir: string): boolean {
  return isExecutable(join(dir, 'kube-apiserver')) && isExecutable(join(dir, 'etcd'));
}

/** The repository root: the nearest folder above this module whose package.json is vipd's. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'vipd') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the vipd project root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** The versions scripts/k8s-assets.sh builds, read from its wrapper modules (the single source). */
export function pinnedAssetVersions(root: string = projectRoot()): { kubernetes: string; etcd: string } | undefined {
  try {
    const k = /^require k8s\.io\/kubernetes (v[\d.]+)$/m.exec(
      readFileSync(join(root, 'scripts/k8s-assets/kube-apiserver/go.mod'), 'utf8'),
    );
    const e = /^require go\.etcd\.io\/etcd\/server\/v3 (v[\d.]+)$/m.exec(
      readFileSync(join(root, 'scripts/k8s-assets/etcd/go.mod'), 'utf8'),
    );
    return k?.[1] && e?.[1] ? { kubernetes: k[1], etcd: e[1] } : undefined;
  } catch {
    return undefined;
  }
}

/** The cache folder name the script uses for a version pair. Keep in step with scripts/k8s-assets.sh. */
export function assetsFolderName(v: { kubernetes: string; etcd: string }): string {
  return `${v.kubernetes}-etcd-${v.etcd}`;
}

export function apiAssets(env: NodeJS.ProcessEnv = process.env, root: string = projectRoot()): ApiAssets {
  const fromEnv = env.KUBEBUILDER_ASSETS;
  if (fromEnv && hasApiBinaries(fromEnv)) return { dir: resolve(fromEnv) };

  const cache = env.VIPD_K8S_CACHE ?? join(root, '.cache', 'k8s');
  let finished: string[] = [];
  try {
    finished = readdirSync(cache)
      .filter((name) => !name.startsWith('.'))
      .map((name) => join(cache, name))
      .filter((dir) => existsSync(join(dir, STAMP)) && hasApiBinaries(dir));
  } catch {
    // no cache folder yet
  }
  const pinned = pinnedAssetVersions(root);
  const preferred = pinned && finished.find((dir) => dir.endsWith('/' + assetsFolderName(pinned)));
  const newest = finished.sort((a, b) => statSync(join(b, STAMP)).mtimeMs - statSync(join(a, STAMP)).mtimeMs)[0];
  const dir = preferred ?? newest;
  if (dir) return { dir };

  const why = fromEnv
    ? `KUBEBUILDER_ASSETS=${fromEnv} lacks kube-apiserver or etcd`
    : 'no kube-apiserver/etcd (KUBEBUILDER_ASSETS unset, nothing built in .cache/k8s)';
  return { skip: `${why}: ${API_ASSETS_HINT}` };
}

/** The assets folder, or an Error that says how to get one. */
export function requireApiAssets(env: NodeJS.ProcessEnv = process.env): string {
  const found = apiAssets(env);
  if ('skip' in found) throw new Error(found.skip);
  return found.dir;
}

/**
 * kube-controller-manager of the pinned Kubernetes version, for tests that need one of its
 * controllers (the garbage collector): $VIPD_KCM_BIN, else the kubeadm cluster lab's build
 * (`npm run cluster:assets`, `.cache/cluster/<version>-…/bin/`). Never builds.
 */
export function controllerManagerBinary(env: NodeJS.ProcessEnv = process.env, root: string = projectRoot()): { bin: string } | { skip: string } {
  if (env.VIPD_KCM_BIN) return isExecutable(env.VIPD_KCM_BIN) ? { bin: resolve(env.VIPD_KCM_BIN) } : { skip: `VIPD_KCM_BIN=${env.VIPD_KCM_BIN} is not an executable` };
  const version = pinnedAssetVersions(root)?.kubernetes;
  const cache = join(root, '.cache', 'cluster');
  const dirs = version && existsSync(cache) ? readdirSync(cache).filter((d) => d.startsWith(`${version}-`)) : [];
  for (const d of dirs) {
    const bin = join(cache, d, 'bin', 'kube-controller-manager');
    if (isExecutable(bin)) return { bin };
  }
  return { skip: `no kube-controller-manager ${version ?? ''} under ${cache}: run \`npm run --silent cluster:assets\` or set VIPD_KCM_BIN` };
}
