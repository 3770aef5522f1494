/**
 * The generated files that are checked in: manifests/{pod,daemonset,rbac}.yaml, the examples
 * (manifests/pod-bgp.yaml) and docs/settings.md. `npm run manifests` / `npm run docs:settings` rewrite them; a test compares
 * them with the generator so they cannot drift.
 *
 *   node dist/src/manifest/files.js manifests|docs|all [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultManifestOptions, generateManifest, type ManifestKind } from './generate.js';
import { settingsMarkdown } from './settings-doc.js';

/** The documented flags the checked-in manifests are generated with (docs/quickstart-kubeadm.md). */
export const DOCUMENTED_ARGS: Record<ManifestKind, readonly string[]> = {
  pod: ['--address=192.0.2.10', '--vip_leaderelection=true', '--cp_enable=true'],
  daemonset: ['--address=192.0.2.10', '--vip_leaderelection=true', '--cp_enable=true'],
  rbac: [],
};

/** Checked-in examples beyond the defaults, each documented where it is named. */
export const EXAMPLE_MANIFESTS: ReadonlyArray<{ path: string; kind: ManifestKind; args: readonly string[] }> = [
  // docs/bgp.md: BGP mode, with the FRR sidecar.
  { path: 'manifests/pod-bgp.yaml', kind: 'pod', args: ['--address=192.0.2.10', '--cp_enable=true', '--bgp_enable=true', '--bgp_as=65010', '--bgp_peers=192.0.2.1:65000'] },
];

export interface GeneratedFile {
  path: string;
  content: string;
}

export function generatedFiles(which: 'manifests' | 'docs' | 'all' = 'all'): GeneratedFile[] {
  const files: GeneratedFile[] = [];
  if (which !== 'docs') {
    for (const kind of ['pod', 'daemonset', 'rbac'] as const) {
      // Deterministic whatever machine runs it: no environment, a fixed node name for validation
      // only (the manifests take the node name from spec.nodeName).
      const out = generateManifest(kind, {}, [...DOCUMENTED_ARGS[kind], '--vip_nodename=cp1'], defaultManifestOptions(), DOCUMENTED_ARGS[kind]);
      files.push({ path: `manifests/${kind}.yaml`, content: out.yaml });
    }
    for (const ex of EXAMPLE_MANIFESTS) {
      const out = generateManifest(ex.kind, {}, [...ex.args, '--vip_nodename=cp1'], defaultManifestOptions(), ex.args);
      files.push({ path: ex.path, content: out.yaml });
    }
  }
  if (which !== 'manifests') files.push({ path: 'docs/settings.md', content: settingsMarkdown() });
  return files;
}

/** Paths (relative to root) whose content differs from the generator's. */
export function staleFiles(root: string, which: 'manifests' | 'docs' | 'all' = 'all'): string[] {
  return generatedFiles(which)
    .filter((f) => {
      try {
        return readFileSync(join(root, f.path), 'utf8') !== f.content;
      } catch {
        return true;
      }
    })
    .map((f) => f.path);
}

function main(argv: string[]): number {
  const which = (argv.find((a) => !a.startsWith('--')) ?? 'all') as 'manifests' | 'docs' | 'all';
  if (!['manifests', 'docs', 'all'].includes(which)) {
    process.stderr.write('usage: files.js manifests|docs|all [--check]\n');
    return 2;
  }
  const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
  if (argv.includes('--check')) {
    const stale = staleFiles(root, which);
    for (const p of stale) process.stderr.write(`stale: ${p} (run npm run ${p.startsWith('docs') ? 'docs:settings' : 'manifests'})\n`);
    return stale.length ? 1 : 0;
  }
  for (const f of generatedFiles(which)) {
    writeFileSync(join(root, f.path), f.content);
    process.stdout.write(`wrote ${f.path}\n`);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
