/**
 * Every generated manifest is accepted by a real kube-apiserver (`kubectl apply --dry-run=server`:
 * schema, strict field validation, defaulting and admission), and the DaemonSet's ServiceAccount
 * kubeconfig really authenticates as kube-system/vipd with the permissions of manifests/rbac.yaml.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadAllYaml } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ApiClient } from '../../src/k8s/client.js';
import { paths } from '../../src/k8s/resources.js';
import { startControlPlane, type ControlPlane } from '../../lab/apiserver.js';
import { defaultManifestOptions, generateManifest, serviceAccountKubeconfig, type ManifestKind, type ManifestOptions } from '../../src/manifest/generate.js';
import { createLogger } from '../../src/observe/log.js';
import { describeWithApi } from '../lab/with-api.js';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const CP = ['--address=192.0.2.10', '--vip_leaderelection=true', '--cp_enable=true', '--vip_nodename=cp1'];
const PEERS = ['--vip_peers=cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', '--vip_peer_key_file=/etc/vipd/peer.key'];
const BGP = ['--address=192.0.2.10', '--cp_enable=true', '--vip_nodename=cp1', '--bgp_enable=true', '--bgp_peers=192.0.2.1:65000'];

const VARIANTS: Array<{ name: string; kind: ManifestKind; args: string[]; opts?: Partial<ManifestOptions> }> = [
  { name: 'pod, first kubeadm init node', kind: 'pod', args: [...CP, ...PEERS, '--vip_peer_bootstrap=true'], opts: { superAdmin: true } },
  { name: 'pod, kernel responder, IPv6, metrics on loopback', kind: 'pod', args: [...CP, '--address=2001:db8::10', '--vip_responder=kernel', '--prometheus_server=[::1]:9100', '--cp_namespace=infra'] },
  { name: 'pod, dual stack, named interface, metrics off', kind: 'pod', args: [...CP, '--address=192.0.2.10,2001:db8::10', '--vip_subnet=24,64', '--vip_interface=eth0', '--prometheus_server='], opts: { image: 'registry.example/vipd@sha256:' + 'a'.repeat(64) } },
  { name: 'pod, no init container', kind: 'pod', args: CP, opts: { sysctlInit: false } },
  { name: 'daemonset, peers with a Secret key', kind: 'daemonset', args: [...CP, ...PEERS] },
  { name: 'daemonset, host kubeconfig', kind: 'daemonset', args: CP, opts: { inCluster: false } },
  { name: 'rbac, Lease in another namespace', kind: 'rbac', args: ['--cp_namespace=infra'] },
  // The FRR sidecar mounts the socket volume twice (FRR's own directory and this one).
  { name: 'daemonset, BGP with FRR, own socket directory and image', kind: 'daemonset', args: [...BGP, '--bgp_frr_socket_dir=/run/vipd-frr'], opts: { frrImage: 'registry.example/frr:8.4.4', frrVtyGid: 300 } },
];

describeWithApi('generated manifests against a real kube-apiserver', () => {
  let cp: ControlPlane;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vipd-manifest-'));
    // No RBAC applied by the harness: these tests apply the generated one themselves.
    cp = await startControlPlane({ rbacManifest: false });
    await cp.apply('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: infra\n');
  });

  afterAll(async () => {
    await cp?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function dryRun(yaml: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const file = join(dir, `m${++n}.yaml`);
    await writeFile(file, yaml);
    try {
      const r = await exec('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'apply', '--dry-run=server', '--validate=strict', '-o', 'name', '-f', file], { timeout: 60_000 });
      return { code: 0, ...r };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  }

  function names(yaml: string): string[] {
    return (loadAllYaml(yaml) as Array<{ kind: string; metadata: { name: string } }>).map((o) => `${o.kind.toLowerCase()}/${o.metadata.name}`);
  }

  it.each(['pod', 'daemonset', 'rbac', 'pod-bgp', 'metallb-crds', 'vipd-crds'])('checked-in manifests/%s.yaml is accepted', async (kind) => {
    const yaml = await readFile(join(ROOT, 'manifests', `${kind}.yaml`), 'utf8');
    const r = await dryRun(yaml);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // kubectl prints one line per object: every document reached the server.
    expect(r.stdout.trim().split('\n')).toHaveLength(names(yaml).length);
  });

  it.each(VARIANTS)('$name is accepted', async ({ kind, args, opts }) => {
    const { yaml } = generateManifest(kind, {}, args, { ...defaultManifestOptions(), ...opts });
    const r = await dryRun(yaml);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(names(yaml).length);
  });

  it('the check is real: a misspelt field or an invalid value is refused', async () => {
    const { yaml } = generateManifest('pod', {}, CP, defaultManifestOptions());
    const typo = await dryRun(yaml.replace('readOnlyRootFilesystem:', 'readOnlyRootFS:'));
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/readOnlyRootFS/);
    const badPort = await dryRun(yaml.replace('containerPort: 2112', 'containerPort: 70000'));
    expect(badPort.code).not.toBe(0);
    expect(badPort.stderr).toMatch(/containerPort/);
  });

  it('the DaemonSet kubeconfig authenticates as kube-system/vipd, with the generated RBAC applied by kubectl', async () => {
    const rbac = join(dir, 'rbac.yaml');
    await writeFile(rbac, await readFile(join(ROOT, 'manifests', 'rbac.yaml'), 'utf8'));
    await exec('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'apply', '-f', rbac], { timeout: 60_000 });
    const config = loadConfig({ address: '192.0.2.10', vip_nodename: 'cp1' }, []);
    // Same file, with the pod's projected paths pointed at this control plane's CA and a token.
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'not-a-token');
    const kubeconfig = join(dir, 'sa-kubeconfig');
    await writeFile(
      kubeconfig,
      serviceAccountKubeconfig(config)
        .replace('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', cp.caFile)
        .replace('/var/run/secrets/kubernetes.io/serviceaccount/token', tokenFile),
    );
    const log = createLogger('silent');
    const status = (c: ApiClient, call: (c: ApiClient) => Promise<unknown>) =>
      call(c).then(
        () => 200,
        (e: unknown) => (e as { code?: number }).code ?? -1,
      );
    const leases = (c: ApiClient) => c.request('lease.list', 'GET', paths.leases('kube-system'));
    const secrets = (c: ApiClient) => c.request('secret.list', 'GET', '/api/v1/namespaces/kube-system/secrets');

    const bad = await ApiClient.create({ kubeconfigPath: kubeconfig, localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
    try {
      expect(await status(bad, leases)).toBe(401);
    } finally {
      bad.close();
    }
    await writeFile(tokenFile, await cp.serviceAccountToken());
    const c = await ApiClient.create({ kubeconfigPath: kubeconfig, localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
    try {
      expect(c.tlsServerName()).toBe('kubernetes');
      expect(await status(c, leases)).toBe(200);
      expect(await status(c, secrets)).toBe(403); // the ServiceAccount, not an admin
    } finally {
      c.close();
    }
  });
});
