/**
 * Where the chart tests find helm and the Prometheus Operator CRDs (scripts/helm-assets.sh puts
 * both in .cache/helm). The versions are read from that script, the single place they are named.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isExecutable, projectRoot } from './k8s-assets.js';

export interface HelmAssets {
  helm: string;
  /** Folder with the ServiceMonitor, PodMonitor and PrometheusRule CRDs. */
  crdDir: string;
}

export const HELM_ASSETS_HINT = 'run `npm run helm:assets` (a one-time Go build of helm, a few minutes) or set VIPD_HELM to a helm binary';

export function helmAssets(env: NodeJS.ProcessEnv = process.env, root: string = projectRoot()): { ok: true; assets: HelmAssets } | { ok: false; skip: string } {
  const script = readFileSync(join(root, 'scripts/helm-assets.sh'), 'utf8');
  const helmVersion = /^\s*HELM_VERSION=(v[\d.]+)$/m.exec(script)?.[1];
  const operatorVersion = /^\s*PROM_OPERATOR_VERSION=(v[\d.]+)$/m.exec(script)?.[1];
  if (!helmVersion || !operatorVersion) return { ok: false, skip: 'cannot read the pinned versions from scripts/helm-assets.sh' };
  const cache = env.VIPD_HELM_CACHE ?? join(root, '.cache/helm');
  const helm = env.VIPD_HELM ?? join(cache, helmVersion, 'helm');
  const crdDir = join(cache, `prometheus-operator-crds-${operatorVersion}`);
  if (!isExecutable(helm)) return { ok: false, skip: `no helm at ${helm}: ${HELM_ASSETS_HINT}` };
  try {
    statSync(join(crdDir, 'monitoring.coreos.com_prometheusrules.yaml'));
  } catch {
    return { ok: false, skip: `no Prometheus Operator CRDs in ${crdDir}: ${HELM_ASSETS_HINT}` };
  }
  return { ok: true, assets: { helm, crdDir } };
}
