/**
 * The Helm chart (charts/vipd) against the generator and a real API server:
 * - for each set of settings, `helm template` gives the same objects that `vipd manifest daemonset`
 *   and `vipd manifest rbac` print (Helm's bookkeeping labels aside, and the environment compared
 *   by name, because Helm ranges over a map in key order where the generator keeps table order);
 * - with workers.enabled, the control-plane objects plus the worker DaemonSet (and its kubeconfig)
 *   that `vipd manifest daemonset` prints for a worker configuration;
 * - `helm lint --strict` passes, and bad values fail `helm template` with one line naming the value;
 * - every rendered object, the Prometheus Operator ones included (their CRDs from the operator's
 *   own module), is accepted by `kubectl apply --dry-run=server --validate=strict`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadAllYaml } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../lab/apiserver.js';
import { apiAssets } from '../../lab/k8s-assets.js';
import { helmAssets, type HelmAssets } from '../../lab/helm.js';
import { parsePeerKey } from '../../src/config/peer-key.js';
import { defaultManifestOptions, generateManifest, type ManifestOptions } from '../../src/manifest/generate.js';
import { describeRequiring } from '../lab/requires.js';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const CHART = join(ROOT, 'charts/vipd');

type Obj = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

const CP = ['--address=192.0.2.10', '--vip_leaderelection=true', '--cp_enable=true', '--vip_nodename=cp1'];
const PEERS = ['--vip_peers=cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', '--vip_peer_key_file=/etc/vipd/peer.key'];
const BGP = ['--address=192.0.2.10', '--cp_enable=true', '--vip_nodename=cp1', '--bgp_enable=true', '--bgp_peers=192.0.2.1:65000'];
// Services with workers: the control plane votes and allocates, a worker (w1, outside vip_peers) is a member.
const CP_SVC = [...CP, ...PEERS, '--svc_enable=true', '--vip_interface=eth0'];
const WORKER = ['--vip_nodename=w1', '--svc_enable=true', '--cp_enable=false', '--vip_interface=eth0', ...PEERS, '--kubernetes_addr=https://192.0.2.10:6443'];
/** The least the chart needs for workers.enabled. */
const WORKER_VALUES = {
  config: { address: '192.0.2.10' },
  env: { svc_enable: 'true', vip_interface: 'eth0', vip_peers: 'cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', vip_peer_key_file: '/etc/vipd/peer.key' },
  workers: { enabled: true },
};

const VARIANTS: Array<{ name: string; args: string[]; opts?: Partial<ManifestOptions> }> = [
  { name: 'control-plane VIP, defaults', args: CP },
  { name: 'peer voting, key from a Secret', args: [...CP, ...PEERS], opts: { peerKeySecret: 'cp-peer-key' } },
  { name: 'host kubeconfig instead of the ServiceAccount', args: CP, opts: { inCluster: false } },
  { name: 'kernel responder, IPv6, metrics on loopback, Lease in another namespace', args: [...CP, '--address=2001:db8::10', '--vip_responder=kernel', '--prometheus_server=[::1]:9100', '--cp_namespace=infra'] },
  { name: 'dual stack, named interface, metrics off, image by digest', args: [...CP, '--address=192.0.2.10,2001:db8::10', '--vip_subnet=24,64', '--vip_interface=eth0', '--prometheus_server='], opts: { image: 'registry.example/vipd@sha256:' + 'a'.repeat(64) } },
  { name: 'no strict-ARP init container', args: CP, opts: { sysctlInit: false } },
  { name: 'Services too', args: [...CP, '--svc_enable=true', '--vip_state_dir=/var/lib/vipd-svc'] },
  { name: 'BGP with the FRR sidecar, own socket directory, image and gid', args: [...BGP, '--bgp_frr_socket_dir=/run/vipd-frr'], opts: { frrImage: 'registry.example/frr:8.4.4', frrVtyGid: 300 } },
];

const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by'];

function dropHelmLabels(labels: Record<string, string> | undefined): void {
  if (labels) for (const k of HELM_LABELS) delete labels[k];
}

/** Helm's bookkeeping labels out, containers' env sorted by name. */
function normalise(o: Obj): Obj {
  const c = structuredClone(o) as Obj & { spec?: { selector?: { matchLabels?: Record<string, string> }; template?: { metadata?: { labels?: Record<string, string> }; spec?: { containers?: Array<{ env?: Array<{ name: string }> }> } } } };
  dropHelmLabels(c.metadata.labels);
  dropHelmLabels(c.spec?.selector?.matchLabels);
  dropHelmLabels(c.spec?.template?.metadata?.labels);
  for (const ct of c.spec?.template?.spec?.containers ?? []) ct.env?.sort((a, b) => a.name.localeCompare(b.name));
  return c;
}

function byKey(objs: Obj[]): Record<string, Obj> {
  return Object.fromEntries(objs.map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, normalise(o)]));
}

type LabelSelector = { matchLabels?: Record<string, string>; matchExpressions?: Array<{ key: string; operator: string; values?: string[] }> };

/** Whether a label selector (matchLabels, and In expressions) selects these labels. */
function selects(sel: LabelSelector, labels: Record<string, string>): boolean {
  const byLabels = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpressions = (sel.matchExpressions ?? []).every((e) => e.operator === 'In' && labels[e.key] !== undefined && (e.values ?? []).includes(labels[e.key]!));
  return byLabels && byExpressions;
}

/** Values with overrides merged in, maps deeply (as Helm merges -f files over values.yaml). */
function withValues(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b) ? withValues(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** The chart values that say what `vipd manifest daemonset <args>` says. */
function valuesFor(daemonSetEnv: Array<{ name: string; value?: string }>, opts: ManifestOptions): Record<string, unknown> {
  const env: Record<string, string> = {};
  let address = '';
  for (const e of daemonSetEnv) {
    if (e.value === undefined) continue; // vip_nodename: the chart always takes it from the node
    if (e.name === 'address') address = e.value;
    else if (e.name === 'k8s_config_file' && opts.inCluster) continue; // the chart mounts the ServiceAccount's
    else env[e.name] = e.value;
  }
  const at = opts.image.indexOf('@');
  const image = at >= 0 ? { repository: opts.image.slice(0, at), digest: opts.image.slice(at + 1) } : { repository: opts.image.slice(0, opts.image.lastIndexOf(':')), tag: opts.image.slice(opts.image.lastIndexOf(':') + 1) };
  return {
    image,
    config: { address },
    env,
    inCluster: opts.inCluster,
    strictArpInitContainer: opts.sysctlInit,
    peerKey: { secretName: opts.peerKeySecret },
    frr: { image: opts.frrImage, vtyGid: opts.frrVtyGid },
    metrics: { service: { enabled: false } },
  };
}

const found = helmAssets();
describeRequiring('the Helm chart', found, { needs: 'helm and the Prometheus Operator CRDs', skipping: 'the Helm chart tests', warn: () => true, unused: { helm: '', crdDir: '' } }, (assets: HelmAssets) => {
  let dir: string;
  let n = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vipd-chart-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function helm(args: string[], values?: unknown): Promise<{ code: number; stdout: string; stderr: string }> {
    const extra: string[] = [];
    if (values !== undefined) {
      const file = join(dir, `values-${++n}.json`);
      await writeFile(file, JSON.stringify(values));
      extra.push('-f', file);
    }
    try {
      const r = await exec(assets.helm, [...args, ...extra], { timeout: 60_000, env: { ...process.env, HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config'), HELM_DATA_HOME: join(dir, 'data') } });
      return { code: 0, ...r };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  }

  async function template(values: unknown): Promise<Obj[]> {
    const r = await helm(['template', 'vipd', CHART, '--namespace', 'kube-system'], values);
    expect(r.stderr, 'helm template stderr').toBe('');
    expect(r.code).toBe(0);
    return (loadAllYaml(r.stdout) as Array<Obj | null>).filter((o): o is Obj => o !== null);
  }

  it('helm lint --strict passes', async () => {
    const r = await helm(['lint', '--strict', CHART, '--set', 'config.address=192.0.2.10']);
    expect(r.stdout + r.stderr).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(r.code).toBe(0);
  });

  it('helm lint --strict passes with the workers DaemonSet and the monitors', async () => {
    const r = await helm(['lint', '--strict', CHART], withValues(WORKER_VALUES, { prometheus: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true } } }));
    expect(r.stdout + r.stderr).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(r.code).toBe(0);
  });

  it.each(VARIANTS)('$name: the same objects as vipd manifest daemonset + rbac', async ({ args, opts: partial }) => {
    const opts = { ...defaultManifestOptions(), ...partial };
    const generated = [...loadAllYaml(generateManifest('daemonset', {}, args, opts).yaml), ...loadAllYaml(generateManifest('rbac', {}, args, opts).yaml)] as Obj[];
    const ds = generated.find((o) => o.kind === 'DaemonSet') as Obj & { spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } } };
    const chart = await template(valuesFor(ds.spec.template.spec.containers[0]!.env, opts));
    expect(byKey(chart)).toEqual(byKey(generated));
  });

  it('workers.enabled: the control-plane objects and the worker DaemonSet of vipd manifest daemonset for a worker configuration', async () => {
    const opts = defaultManifestOptions();
    const cp = [...loadAllYaml(generateManifest('daemonset', {}, CP_SVC, opts).yaml), ...loadAllYaml(generateManifest('rbac', {}, CP_SVC, opts).yaml)] as Obj[];
    const worker = loadAllYaml(generateManifest('daemonset', {}, WORKER, opts).yaml) as Obj[];
    // The RBAC is one for both: the generator gives the worker configuration the same.
    expect(byKey(loadAllYaml(generateManifest('rbac', {}, WORKER, opts).yaml) as Obj[])).toEqual(byKey(cp.filter((o) => o.kind !== 'DaemonSet' && o.kind !== 'ConfigMap')));
    type Env = Array<{ name: string; value?: string }>;
    const envOf = (o: Obj) => (o as unknown as { spec: { template: { spec: { containers: Array<{ env: Env }> } } } }).spec.template.spec.containers[0]!.env;
    const expected = byKey([...cp, ...worker]);
    // The generator writes a worker's empty address and vip_subnet; the chart leaves them out, which means the same.
    const workerDs = expected['DaemonSet/kube-system/vipd-workers']!;
    const workerEnv = envOf(workerDs);
    workerEnv.splice(0, workerEnv.length, ...workerEnv.filter((e) => !((e.name === 'address' || e.name === 'vip_subnet') && e.value === '')));

    const cpDs = cp.find((o) => o.kind === 'DaemonSet')!;
    const chart = await template({ ...valuesFor(envOf(cpDs), opts), workers: { enabled: true } });
    const got = byKey(chart);
    expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
    expect(got).toEqual(expected);
    // The worker's kubeconfig names the VIP: a worker has no API server of its own.
    const cm = got['ConfigMap/kube-system/vipd-workers-kubeconfig'] as unknown as { data: { kubeconfig: string } };
    expect(cm.data.kubeconfig).toContain('server: https://192.0.2.10:6443');
  });

  it('workers: an IPv6 VIP is the API address in brackets; placement, resources and pod labels are the workers\' own; the monitors select both DaemonSets', async () => {
    const objs = await template(
      withValues(WORKER_VALUES, {
        config: { address: '2001:db8::10,192.0.2.10' },
        workers: { tolerations: [{ key: 'dedicated', operator: 'Exists' }], resources: { requests: { cpu: '50m' } }, podLabels: { tier: 'edge' } },
        podLabels: { team: 'net' },
        prometheus: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true } },
      }),
    );
    type Ds = Obj & { spec: { selector: LabelSelector; template: { metadata: { labels: Record<string, string> }; spec: { tolerations?: unknown[]; nodeSelector?: unknown; containers: Array<{ env: Array<{ name: string; value?: string }>; resources: unknown }> } } } };
    const ds = (name: string) => objs.find((o) => o.kind === 'DaemonSet' && o.metadata.name === name) as Ds;
    const [cp, w] = [ds('vipd'), ds('vipd-workers')];
    expect(w.spec.template.spec.containers[0]!.env.find((e) => e.name === 'kubernetes_addr')?.value).toBe('https://[2001:db8::10]:6443');
    expect(w.spec.template.spec.containers[0]!.env.map((e) => e.name)).not.toContain('address');
    expect(w.spec.template.spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Exists' }]);
    expect(w.spec.template.spec.nodeSelector).toBeUndefined();
    expect(w.spec.template.spec.containers[0]!.resources).toEqual({ requests: { cpu: '50m' } });
    expect(cp.spec.template.spec.containers[0]!.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' } });
    expect(w.spec.template.metadata.labels).toMatchObject({ team: 'net', tier: 'edge' });
    expect(cp.spec.template.metadata.labels.tier).toBeUndefined();
    // Neither DaemonSet selects the other's pods.
    expect(selects(cp.spec.selector, w.spec.template.metadata.labels)).toBe(false);
    expect(selects(w.spec.selector, cp.spec.template.metadata.labels)).toBe(false);
    const pm = objs.find((o) => o.kind === 'PodMonitor') as unknown as { spec: { selector: LabelSelector } };
    const sm = objs.find((o) => o.kind === 'ServiceMonitor') as unknown as { spec: { selector: LabelSelector } };
    const services = objs.filter((o) => o.kind === 'Service') as Array<Obj & { spec: { selector: Record<string, string> } }>;
    expect(services.map((o) => o.metadata.name).sort()).toEqual(['vipd-metrics', 'vipd-workers-metrics']);
    for (const d of [cp, w]) {
      expect(selects(pm.spec.selector, d.spec.template.metadata.labels), d.metadata.name).toBe(true);
      const svc = services.filter((o) => selects({ matchLabels: o.spec.selector }, d.spec.template.metadata.labels));
      expect(svc, d.metadata.name).toHaveLength(1);
      expect(selects(sm.spec.selector, svc[0]!.metadata.labels ?? {}), svc[0]!.metadata.name).toBe(true);
    }
  });

  it('the defaults in values.yaml are settings the agent accepts, and the chart fills in the same ones the generator writes', async () => {
    const chart = await template({ config: { address: '192.0.2.10' }, metrics: { service: { enabled: false } } });
    const generated = [...loadAllYaml(generateManifest('daemonset', {}, CP, defaultManifestOptions()).yaml), ...loadAllYaml(generateManifest('rbac', {}, CP, defaultManifestOptions()).yaml)] as Obj[];
    const expected = byKey(generated);
    const got = byKey(chart);
    // The generator also writes kubernetes_addr (kube-vip always does); unset, the agent derives the same URL.
    type Env = Array<{ name: string; value?: string }>;
    const envOf = (o: Obj | undefined) => (o as unknown as { spec: { template: { spec: { containers: Array<{ env: Env }> } } } }).spec.template.spec.containers[0]!.env;
    const key = 'DaemonSet/kube-system/vipd';
    const want = envOf(expected[key]).filter((e) => e.name !== 'kubernetes_addr' && e.name !== 'vip_subnet');
    expect(envOf(got[key])).toEqual(want);
    for (const k of Object.keys(expected)) if (k !== key) expect(got[k], k).toEqual(expected[k]);
  });

  it.each([
    { values: { config: { address: '192.0.2.10' }, env: { port: 6443 } }, message: 'env.port: must be a string' },
    { values: { config: { address: '192.0.2.10' }, env: { vip_peer_bootstrap: 'true' } }, message: 'env.vip_peer_bootstrap: cannot be used in a DaemonSet' },
    { values: { config: { address: '192.0.2.10' }, env: { vip_leaderelection: 'false' } }, message: 'env.vip_leaderelection: must be "true" (or env.vip_peers set) for a DaemonSet' },
    { values: { config: { address: '192.0.2.10' }, env: { prometheus_server: '2112' } }, message: 'env.prometheus_server: "2112" must be [host]:port' },
    { values: { config: { address: '192.0.2.10' }, env: { k8s_config_file: '/etc/kubernetes/admin.conf' } }, message: 'env.k8s_config_file: leave it out while inCluster is true' },
  ])('bad values fail with one line naming the value: $message', async ({ values, message }) => {
    const r = await helm(['template', 'vipd', CHART, '--namespace', 'kube-system'], values);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    // Helm frames it: "Error: execution error at (<template>): <our line>", then a hint about --debug.
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^Error: execution error at \(vipd\/templates\/[\w.-]+:\d+:\d+\): env\./);
    expect(lines[0]).toContain(message);
    expect(lines.slice(1).join('\n')).not.toContain('env.');
  });

  it.each([
    { values: { env: { svc_enable: 'false' } }, message: 'env.svc_enable: must be "true" with workers.enabled' },
    { values: { env: { vip_peers: '' } }, message: 'env.vip_peers: must be set with workers.enabled' },
    { values: { env: { vip_peer_key_file: '' } }, message: 'env.vip_peer_key_file: must be set with workers.enabled' },
    { values: { workers: { env: { svc_enable: 'false' } } }, message: 'workers.env.svc_enable: must be "true" for workers' },
    { values: { workers: { env: { address: '192.0.2.20' } } }, message: 'workers.env.address: leave it out: a worker holds no VIP' },
    { values: { workers: { env: { vip_subnet: '24' } } }, message: 'workers.env.vip_subnet: leave it out' },
    { values: { workers: { env: { vip_peers: 'w1=198.18.0.21:7946' } } }, message: 'workers.env.vip_peers: leave it out' },
    { values: { workers: { env: { cp_enable: 'true' } } }, message: 'workers.env.cp_enable: must be "false" for workers' },
    { values: { workers: { env: { vip_leaderelection: 'true' } } }, message: 'workers.env.vip_leaderelection: must be "false" for workers' },
    { values: { workers: { env: { svc_membership: 'lease' } } }, message: 'workers.env.svc_membership: must not be "lease"' },
    { values: { config: { address: '' } }, message: 'workers.env.kubernetes_addr: must be set when config.address is empty' },
    { values: { workers: { env: { port: 6443 } } }, message: 'workers.env.port: must be a string' },
    { values: { workers: { env: { vip_nodename: 'w1' } } }, message: 'workers.env.vip_nodename: leave it out' },
    { values: { workers: { env: { prometheus_server: '2112' } } }, message: 'workers.env.prometheus_server: "2112" must be [host]:port' },
  ])('bad worker values fail with one line naming the value: $message', async ({ values, message }) => {
    const r = await helm(['template', 'vipd', CHART, '--namespace', 'kube-system'], withValues(WORKER_VALUES, values));
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^Error: execution error at \(vipd\/templates\/[\w.-]+:\d+:\d+\): (workers\.)?env\./);
    expect(lines[0]).toContain(message);
    expect(lines.slice(1).join('\n')).not.toContain('env.');
  });

  it('monitoring: the PrometheusRule and the dashboard are the files in monitoring/, and the monitors select the agents', async () => {
    const objs = await template({
      config: { address: '192.0.2.10' },
      prometheus: { serviceMonitor: { enabled: true, interval: '15s' }, podMonitor: { enabled: true }, prometheusRule: { enabled: true, labels: { release: 'prom' } } },
      grafanaDashboard: { enabled: true },
    });
    // The test reads a few fields of each kind; the casts below say which.
    const get = (kind: string) => objs.find((o) => o.kind === kind) as unknown;
    const rules = loadAllYaml(await readFile(join(ROOT, 'monitoring/prometheus/vipd-rules.yaml'), 'utf8'))[0] as { spec: unknown };
    const rule = get('PrometheusRule') as Obj & { spec: unknown };
    expect(rule.spec).toEqual(rules.spec);
    expect(rule.metadata.labels?.release).toBe('prom');
    const dashboard = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'vipd-dashboard') as Obj & { data: Record<string, string> };
    expect(JSON.parse(dashboard.data['vipd-dashboard.json']!)).toEqual(JSON.parse(await readFile(join(ROOT, 'monitoring/grafana/vipd-dashboard.json'), 'utf8')));
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    const ds = get('DaemonSet') as { spec: { template: { metadata: { labels: Record<string, string> } } } };
    const svc = get('Service') as { metadata: { labels: Record<string, string> }; spec: { selector: Record<string, string>; clusterIP: string; ports: Array<{ port: number }> } };
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.ports[0]!.port).toBe(2112);
    expect(ds.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    const sm = get('ServiceMonitor') as { spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ interval: string }> } };
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.endpoints[0]!.interval).toBe('15s');
    const pm = get('PodMonitor') as { spec: { selector: { matchLabels: Record<string, string> } } };
    expect(ds.spec.template.metadata.labels).toMatchObject(pm.spec.selector.matchLabels);
  });

  it('peerKey.create makes a Secret with a key the agent accepts, marked to survive uninstall and upgrade', async () => {
    const objs = await template({ config: { address: '192.0.2.10' }, env: { vip_peers: 'cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', vip_peer_key_file: '/etc/vipd/peer.key' }, peerKey: { create: true } });
    const secret = objs.find((o) => o.kind === 'Secret') as Obj & { data: { key: string }; metadata: { annotations: Record<string, string> } };
    expect(secret.metadata.name).toBe('vipd-peer-key');
    expect(secret.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
    expect(parsePeerKey(Buffer.from(secret.data.key, 'base64').toString('utf8')).ok).toBe(true);
    const chosen = Buffer.from(Array.from({ length: 32 }, (_, i) => i * 7 + 1)).toString('base64');
    const again = await template({ config: { address: '192.0.2.10' }, env: { vip_peers: 'cp1=198.18.0.11:7946', vip_peer_key_file: '/etc/vipd/peer.key' }, peerKey: { create: true, key: chosen } });
    expect(Buffer.from((again.find((o) => o.kind === 'Secret') as unknown as { data: { key: string } }).data.key, 'base64').toString('utf8')).toBe(chosen);
  });

  const api = apiAssets();
  describeRequiring('against a real kube-apiserver', 'dir' in api ? { ok: true, assets: true } : { ok: false, skip: api.skip }, { needs: 'kube-apiserver and etcd', skipping: 'the chart dry-run', warn: () => false, unused: true }, () => {
    let cp: ControlPlane;
    beforeAll(async () => {
      cp = await startControlPlane({ rbacManifest: false });
      const crds = (await readdir(assets.crdDir)).map((f) => join(assets.crdDir, f));
      // Server-side apply: the CRDs' annotations are too large for client-side apply's last-applied copy.
      for (const f of crds) await exec('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'apply', '--server-side', '-f', f], { timeout: 60_000 });
      // `kubectl wait` fails at once on a CRD with no status yet (".status.conditions accessor error"),
      // so ask until each says Established.
      for (const crd of ['servicemonitors', 'podmonitors', 'prometheusrules']) {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const r = await exec('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'get', `crd/${crd}.monitoring.coreos.com`, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'], { timeout: 30_000 }).catch(() => ({ stdout: '' }));
          if (r.stdout.trim() === 'True') break;
          if (Date.now() > deadline) throw new Error(`crd/${crd}.monitoring.coreos.com not Established within 60 s`);
          await new Promise((res) => setTimeout(res, 200));
        }
      }
    });
    afterAll(async () => {
      await cp?.destroy();
    });

    it.each([
      {
        name: 'everything on: peers with a created key, Services, monitors, rule, dashboard',
        values: {
          config: { address: '192.0.2.10' },
          env: { svc_enable: 'true', vip_peers: 'cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', vip_peer_key_file: '/etc/vipd/peer.key' },
          peerKey: { create: true },
          prometheus: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true }, prometheusRule: { enabled: true } },
          grafanaDashboard: { enabled: true },
        },
      },
      {
        name: 'workers: a second DaemonSet for Services on the worker nodes, with its metrics Service and the monitors',
        values: withValues(WORKER_VALUES, { peerKey: { create: true }, prometheus: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true } } }),
      },
      { name: 'BGP with the FRR sidecar, host kubeconfig', values: { config: { address: '192.0.2.10' }, inCluster: false, env: { bgp_enable: 'true', bgp_peers: '192.0.2.1:65000', vip_leaderelection: 'false' } } },
    ])('$name is accepted', async ({ values }) => {
      const file = join(dir, `render-${++n}.yaml`);
      const r = await helm(['template', 'vipd', CHART, '--namespace', 'kube-system'], values);
      expect(r.code).toBe(0);
      await writeFile(file, r.stdout);
      const count = (loadAllYaml(r.stdout) as unknown[]).filter((o) => o !== null).length;
      const out = await exec('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'apply', '--dry-run=server', '--validate=strict', '-o', 'name', '-f', file], { timeout: 60_000 });
      expect(out.stderr).toBe('');
      expect(out.stdout.trim().split('\n')).toHaveLength(count);
    });
  });
});
