import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig, loadAllYaml } from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Config } from '../../src/config/index.js';
import { splitManifestArgs, manifestCommand } from '../../src/manifest/command.js';
import { staleFiles, DOCUMENTED_ARGS, EXAMPLE_MANIFESTS } from '../../src/manifest/files.js';
import {
  DEFAULT_FRR_IMAGE,
  DEFAULT_FRR_VTY_GID,
  defaultManifestOptions,
  frrStartScript,
  generateManifest,
  SA_KUBECONFIG_PATH,
  serviceAccountKubeconfig,
  type ManifestKind,
  type ManifestOptions,
} from '../../src/manifest/generate.js';
import { packageVersion } from '../../src/manifest/version.js';

const ROOT = join(import.meta.dirname, '../..');
const run = promisify(execFile);

// ---- reading generated YAML the way the kubelet sees it -------------------------------------

interface EnvEntry {
  name: string;
  value?: unknown;
  valueFrom?: { fieldRef?: { fieldPath?: string } };
}
interface ContainerLike {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: EnvEntry[];
  securityContext?: Record<string, unknown> & { capabilities?: { add?: string[]; drop?: string[] }; privileged?: boolean };
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>;
  livenessProbe?: { httpGet: { path: string; port: number; host?: string } };
  readinessProbe?: { httpGet: { path: string; port: number; host?: string } };
}
interface PodSpecLike {
  hostNetwork?: boolean;
  securityContext?: { supplementalGroups?: number[] };
  serviceAccountName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: Array<Record<string, string>>;
  initContainers?: ContainerLike[];
  containers: ContainerLike[];
  volumes?: Array<{ name: string; hostPath?: { path: string; type: string }; configMap?: { name: string }; secret?: { secretName: string }; emptyDir?: Record<string, never> }>;
}
interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: PodSpecLike & { template?: { spec: PodSpecLike } };
  data?: Record<string, string>;
  rules?: unknown[];
}

function docs(yaml: string): Obj[] {
  return (loadAllYaml(yaml) as Obj[]).filter(Boolean);
}

function podSpec(objs: Obj[]): PodSpecLike {
  const o = objs.find((x) => x.kind === 'Pod' || x.kind === 'DaemonSet')!;
  return o.kind === 'Pod' ? o.spec! : o.spec!.template!.spec;
}

/** The environment the container process gets on node `nodeName` (fieldRefs resolved). */
function podEnv(spec: PodSpecLike, nodeName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of spec.containers[0]!.env ?? []) {
    if (e.valueFrom) {
      expect(e.valueFrom.fieldRef?.fieldPath).toBe('spec.nodeName');
      env[e.name] = nodeName;
    } else {
      // The API refuses non-string env values; quoting must have kept "true", "6443" strings.
      expect(typeof e.value, `env ${e.name}`).toBe('string');
      env[e.name] = e.value as string;
    }
  }
  return env;
}

function gen(kind: ManifestKind, args: string[], opts: Partial<ManifestOptions> = {}, env: Record<string, string> = {}) {
  return generateManifest(kind, env, args, { ...defaultManifestOptions(), ...opts });
}

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const CP = ['--address=192.0.2.10', '--vip_leaderelection=true', '--cp_enable=true', '--vip_nodename=cp1'];

// ---- settings arbitrary for the round trip ----------------------------------------------------

const v4 = fc.tuple(fc.integer({ min: 18, max: 19 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 254 })).map(([a, b, c]) => `198.${a}.${b}.${c}`);
const v6 = fc.integer({ min: 1, max: 0xffff }).map((n) => `2001:db8::${n.toString(16)}`);

const settingsArb = fc
  .record(
    {
      addresses: fc.uniqueArray(fc.oneof(v4, v6), { minLength: 1, maxLength: 3 }),
      subnet: fc.option(fc.integer({ min: 1, max: 32 })),
      vip_interface: fc.option(fc.constantFrom('eth0', 'ens3', 'bond0.100', 'br-lan')),
      vip_responder: fc.option(fc.constantFrom('agent', 'kernel')),
      vip_address_lifetime: fc.option(fc.integer({ min: 1, max: 60 })),
      vip_arpRate: fc.option(fc.integer({ min: 500, max: 600000 })),
      vip_probe_ms: fc.option(fc.integer({ min: 0, max: 2000 })),
      vip_claim_on_conflict: fc.option(fc.boolean()),
      vip_leaderelection: fc.option(fc.boolean()),
      timers: fc.option(fc.tuple(fc.constantFrom(0.2, 0.5, 1, 2, 3), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 20 }))),
      cp_enable: fc.option(fc.boolean()),
      cp_namespace: fc.option(fc.constantFrom('kube-system', 'vipd', 'infra-1')),
      vip_leasename: fc.option(fc.constantFrom('plndr-cp-lock', 'vipd-cp')),
      port: fc.option(fc.integer({ min: 1, max: 65535 })),
      k8s_config_file: fc.option(fc.constantFrom('/etc/kubernetes/admin.conf', '/etc/vipd/kubeconfig', '/root/.kube/config')),
      kubernetes_addr: fc.option(fc.constantFrom('https://127.0.0.1:6443', 'https://[::1]:6443', 'https://198.18.0.11:6443')),
      vip_health_failures: fc.option(fc.integer({ min: 1, max: 100 })),
      peers: fc.option(fc.constantFrom('cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', 'cp1=[2001:db8::11]:7946,cp2=[2001:db8::12]:7946')),
      vip_peer_bootstrap: fc.option(fc.boolean()),
      vip_state_dir: fc.option(fc.constantFrom('/var/lib/vipd', '/run/vipd')),
      prometheus_server: fc.option(fc.constantFrom(':2112', '127.0.0.1:9100', '[::1]:2112', '0.0.0.0:2112', '')),
      vip_loglevel: fc.option(fc.constantFrom('debug', 'info', 'warn', '-4', '0')),
      k8s_fallback_config_file: fc.option(fc.constantFrom('/etc/kubernetes/super-admin.conf')),
      asFlag: fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
    },
    { requiredKeys: ['addresses', 'asFlag'] },
  )
  .map((s) => {
    const kv: Array<[string, string]> = [['address', s.addresses.join(',')]];
    const put = (k: string, v: string | number | boolean | null | undefined) => {
      if (v !== null && v !== undefined) kv.push([k, String(v)]);
    };
    put('vip_subnet', s.subnet);
    for (const k of ['vip_interface', 'vip_responder', 'vip_address_lifetime', 'vip_arpRate', 'vip_probe_ms', 'vip_claim_on_conflict', 'vip_leaderelection', 'cp_enable', 'cp_namespace', 'vip_leasename', 'port', 'k8s_config_file', 'kubernetes_addr', 'vip_health_failures', 'vip_state_dir', 'prometheus_server', 'vip_loglevel', 'k8s_fallback_config_file'] as const) {
      put(k, s[k]);
    }
    if (s.timers) {
      // Valid for the Lease timing rules: the lease outlives renew + retry + the kernel linger.
      const [retry, renewMul, extra] = s.timers;
      const renew = Math.round(retry * (1.2 + renewMul) * 10) / 10;
      const linger = s.vip_responder === 'kernel' ? (s.vip_address_lifetime ?? 2) + 1 : 0;
      put('vip_retryperiod', retry);
      put('vip_renewdeadline', renew);
      put('vip_leaseduration', Math.round((renew + retry + linger + 1 + extra) * 10) / 10);
    }
    if (s.peers) {
      put('vip_peers', s.peers);
      put('vip_peer_key_file', '/etc/vipd/peer.key');
      put('vip_peer_bootstrap', s.vip_peer_bootstrap);
    }
    // Generated on cp1; the pod runs on cp2 (both are peers when peers are set).
    kv.push(['vip_nodename', 'cp1']);
    const env: Record<string, string> = {};
    const args: string[] = [];
    kv.forEach(([k, v], i) => {
      if (s.asFlag[i % s.asFlag.length]) args.push(`--${k}=${v}`);
      else env[k] = v;
    });
    return { env, args, all: Object.fromEntries(kv) as Record<string, string> };
  });

/** The generator covers the timing rules generously; anything `vipd run` still refuses is out of scope here. */
function valid(all: Record<string, string>): boolean {
  try {
    loadConfig(all, []);
    return true;
  } catch (err) {
    if (err instanceof ConfigError) return false;
    throw err;
  }
}

function expectedOn(all: Record<string, string>, node: string, patch: Partial<Config> = {}): Config {
  return { ...loadConfig({ ...all, vip_nodename: node }, []), ...patch };
}

// ---- tests -----------------------------------------------------------------------------------

describe('manifest round trip: settings → manifest → the env the pod gets → the same Config', () => {
  it('static pod, for any valid settings given as environment and flags', () => {
    fc.assert(
      fc.property(settingsArb, fc.boolean(), ({ env, args, all }, superAdmin) => {
        fc.pre(valid(all));
        const out = generateManifest('pod', env, args, { ...defaultManifestOptions(), superAdmin });
        const spec = podSpec(docs(out.yaml));
        expect(spec.containers[0]!.args).toEqual(['run']);
        // --super-admin is k8s_fallback_config_file=/etc/kubernetes/super-admin.conf, nothing else.
        expect(loadConfig(podEnv(spec, 'cp2'), [])).toEqual(expectedOn(all, 'cp2', superAdmin ? { fallbackKubeconfig: '/etc/kubernetes/super-admin.conf' } : {}));
      }),
      { numRuns: 300 },
    );
  });

  it('DaemonSet (ServiceAccount kubeconfig, or the host file with --in-cluster=false)', () => {
    fc.assert(
      fc.property(settingsArb, fc.boolean(), ({ env, args, all }, inCluster) => {
        fc.pre(valid(all));
        let out;
        try {
          out = generateManifest('daemonset', env, args, { ...defaultManifestOptions(), inCluster });
        } catch (err) {
          // The refusals a DaemonSet has on top of `vipd run`'s rules.
          expect(err).toBeInstanceOf(ConfigError);
          const s = (err as ConfigError).setting;
          const cfg = loadConfig({ ...all }, []);
          expect(
            s === 'vip_peer_bootstrap' ? cfg.peerBootstrap : s === 'vip_leaderelection' ? !cfg.leaderElection && cfg.peers.length === 0 : s === 'k8s_fallback_config_file' ? 'k8s_fallback_config_file' in all : false,
          ).toBe(true);
          return;
        }
        const spec = podSpec(docs(out.yaml));
        expect(loadConfig(podEnv(spec, 'cp2'), [])).toEqual(expectedOn(all, 'cp2', inCluster ? { kubeconfig: SA_KUBECONFIG_PATH } : {}));
      }),
      { numRuns: 300 },
    );
  });
});

describe('worker DaemonSet', () => {
  it('a Services-only member configuration runs on the nodes without the control-plane role, as its own DaemonSet', () => {
    const objs = docs(generateManifest('daemonset', { vip_nodename: 'w1', svc_enable: 'true', cp_enable: 'false', vip_interface: 'eth0', vip_peers: 'cp1=192.0.2.11:7946,cp2=192.0.2.12:7946,cp3=192.0.2.13:7946', vip_peer_key_file: '/etc/vipd/peer.key', kubernetes_addr: 'https://192.0.2.10:6443' }, [], defaultManifestOptions()).yaml);
    const ds = objs.find((o) => (o as { kind?: string }).kind === 'DaemonSet') as unknown as { metadata: { name: string }; spec: { selector: { matchLabels: Record<string, string> }; template: { spec: Record<string, unknown> } } };
    expect(ds.metadata.name).toBe('vipd-workers');
    expect(ds.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'vipd-workers' });
    expect(ds.spec.template.spec.nodeSelector).toBeUndefined();
    expect(ds.spec.template.spec.tolerations).toBeUndefined();
    expect(JSON.stringify(ds.spec.template.spec.affinity)).toContain('"operator":"DoesNotExist"');
    expect(loadConfig(podEnv(podSpec(objs), 'w7'), []).serviceMemberOnly).toBe(true);
    // Its kubeconfig names another server than the control plane's, so it must not share a name.
    const cm = objs.find((o) => (o as { kind?: string }).kind === 'ConfigMap') as unknown as { metadata: { name: string } };
    expect(cm.metadata.name).toBe('vipd-workers-kubeconfig');
    expect(JSON.stringify(ds.spec.template.spec.volumes)).toContain('"configMap":{"name":"vipd-workers-kubeconfig"}');
  });

  it('refuses a worker whose ServiceAccount kubeconfig would name 127.0.0.1, where a worker has no API server', () => {
    const env = { vip_nodename: 'w1', svc_enable: 'true', cp_enable: 'false', vip_interface: 'eth0', vip_peers: 'cp1=192.0.2.11:7946', vip_peer_key_file: '/etc/vipd/peer.key' };
    expect(() => generateManifest('daemonset', env, [], defaultManifestOptions())).toThrow('invalid setting kubernetes_addr="https://127.0.0.1:6443": must name the control plane (for example https://<VIP>:6443) for a worker DaemonSet: a worker has no API server of its own on 127.0.0.1');
    // With the host's kubeconfig the server is whatever that file names.
    expect(() => generateManifest('daemonset', env, [], { ...defaultManifestOptions(), inCluster: false })).not.toThrow();
  });
});

describe('static pod', () => {
  it('has the kube-vip shape: kube-system, hostNetwork, NET_ADMIN + NET_RAW only, node name from spec.nodeName', () => {
    const objs = docs(gen('pod', CP).yaml);
    expect(objs).toHaveLength(1);
    expect(objs[0]).toMatchObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'vipd', namespace: 'kube-system' } });
    const spec = podSpec(objs);
    expect(spec.hostNetwork).toBe(true);
    const c = spec.containers[0]!;
    expect(c.image).toBe(`vipd:${packageVersion()}`);
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } });
    expect(c.env!.find((e) => e.name === 'vip_nodename')).toEqual({ name: 'vip_nodename', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    const env = podEnv(spec, 'cp1');
    // kube-vip's names, and the local API server by default.
    expect(env).toMatchObject({ address: '192.0.2.10', vip_arp: 'true', port: '6443', cp_enable: 'true', vip_leaderelection: 'true', kubernetes_addr: 'https://127.0.0.1:6443', prometheus_server: ':2112' });
    expect(spec.volumes).toContainEqual({ name: 'kubeconfig', hostPath: { path: '/etc/kubernetes/admin.conf', type: 'File' } });
    expect(c.volumeMounts).toContainEqual({ name: 'kubeconfig', mountPath: '/etc/kubernetes/admin.conf', readOnly: true });
    expect(c.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 2112 });
    expect(c.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 2112 });
  });

  it('--super-admin adds super-admin.conf as the fallback kubeconfig, next to admin.conf', () => {
    const spec = podSpec(docs(gen('pod', CP, { superAdmin: true }).yaml));
    expect(spec.volumes).toContainEqual({ name: 'kubeconfig', hostPath: { path: '/etc/kubernetes/admin.conf', type: 'File' } });
    expect(spec.volumes).toContainEqual({ name: 'fallback-kubeconfig', hostPath: { path: '/etc/kubernetes/super-admin.conf', type: 'File' } });
    expect(spec.containers[0]!.volumeMounts).toContainEqual({ name: 'fallback-kubeconfig', mountPath: '/etc/kubernetes/super-admin.conf', readOnly: true });
    expect(podEnv(spec, 'cp1')).toMatchObject({ k8s_config_file: '/etc/kubernetes/admin.conf', k8s_fallback_config_file: '/etc/kubernetes/super-admin.conf' });
    expect(configError(() => gen('pod', [...CP, '--k8s_fallback_config_file=/root/other.conf'], { superAdmin: true })).setting).toBe('--super-admin');
  });

  it('adds the privileged strict-ARP init container only when the agent responder has an IPv4 VIP', () => {
    const init = (args: string[], o: Partial<ManifestOptions> = {}) => podSpec(docs(gen('pod', [...CP, ...args], o).yaml)).initContainers;
    const ic = init([])!;
    expect(ic).toHaveLength(1);
    expect(ic[0]!.securityContext).toEqual({ privileged: true });
    expect(ic[0]!.command).toEqual(['/bin/sh', '-c']);
    expect(ic[0]!.args![0]).toContain('"$conf"/*/arp_ignore');
    expect(init(['--vip_interface=eth0'])![0]!.args![0]).toContain('"$conf/all/arp_ignore" "$conf/eth0/arp_ignore"');
    expect(init(['--vip_responder=kernel'])).toBeUndefined();
    expect(init(['--address=2001:db8::10'])).toBeUndefined();
    expect(init([], { sysctlInit: false })).toBeUndefined();
    // The main container stays unprivileged either way.
    expect(podSpec(docs(gen('pod', CP).yaml)).containers[0]!.securityContext!.privileged).toBeUndefined();
  });

  it('probes follow prometheus_server, and there are none when it is disabled', () => {
    const c = (addr: string) => podSpec(docs(gen('pod', [...CP, `--prometheus_server=${addr}`]).yaml)).containers[0]!;
    expect(c('127.0.0.1:9100').livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 9100, host: '127.0.0.1' });
    expect(c('[::1]:9100').readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 9100, host: '::1' });
    expect(c('0.0.0.0:9100').livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 9100 });
    const off = c('');
    expect(off.livenessProbe).toBeUndefined();
    expect(podEnv({ containers: [off] }, 'cp1').prometheus_server).toBe('');
  });

  it('mounts k8s_fallback_config_file from the host when it is set (pod only)', () => {
    const args = [...CP, '--k8s_fallback_config_file=/etc/kubernetes/super-admin.conf'];
    const spec = podSpec(docs(gen('pod', args).yaml));
    expect(spec.volumes).toContainEqual({ name: 'fallback-kubeconfig', hostPath: { path: '/etc/kubernetes/super-admin.conf', type: 'File' } });
    expect(podEnv(spec, 'cp1').k8s_fallback_config_file).toBe('/etc/kubernetes/super-admin.conf');
    expect(configError(() => gen('daemonset', args)).setting).toBe('k8s_fallback_config_file');
  });

  it('mounts the peer key and the state folder from the host', () => {
    const spec = podSpec(docs(gen('pod', [...CP, '--vip_peers=cp1=198.18.0.11:7946,cp2=198.18.0.12:7946', '--vip_peer_key_file=/etc/vipd/peer.key']).yaml));
    expect(spec.volumes).toContainEqual({ name: 'peer-key', hostPath: { path: '/etc/vipd/peer.key', type: 'File' } });
    expect(spec.volumes).toContainEqual({ name: 'state', hostPath: { path: '/var/lib/vipd', type: 'DirectoryOrCreate' } });
  });

  it('refuses what `vipd run` refuses, and relative paths it would mount', () => {
    expect(configError(() => gen('pod', ['--vip_nodename=cp1'])).setting).toBe('address');
    expect(configError(() => gen('pod', [...CP, '--vip_arp=false'])).setting).toBe('vip_arp');
    expect(configError(() => gen('pod', CP, {}, { vip_bgp: 'true' })).setting).toBe('vip_bgp');
    expect(configError(() => gen('pod', [...CP, '--k8s_config_file=admin.conf'])).setting).toBe('k8s_config_file');
    expect(configError(() => gen('pod', [...CP, '--vip_state_dir=/var/../x'])).setting).toBe('vip_state_dir');
  });

  it('warns when nothing elects a holder', () => {
    expect(gen('pod', ['--address=192.0.2.10', '--vip_nodename=cp1']).warnings.join()).toMatch(/every node running this pod holds the VIP/);
    expect(gen('pod', CP).warnings).toEqual([]);
  });
});

describe('DaemonSet', () => {
  it('runs on control-plane nodes as the vipd ServiceAccount, with a kubeconfig for its token', () => {
    const objs = docs(gen('daemonset', CP).yaml);
    expect(objs.map((o) => o.kind)).toEqual(['ConfigMap', 'DaemonSet']);
    const spec = podSpec(objs);
    expect(spec.serviceAccountName).toBe('vipd');
    expect(spec.hostNetwork).toBe(true);
    expect(spec.nodeSelector).toEqual({ 'node-role.kubernetes.io/control-plane': '' });
    expect(spec.tolerations).toEqual([{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(podEnv(spec, 'cp1').k8s_config_file).toBe(SA_KUBECONFIG_PATH);
    expect(spec.containers[0]!.volumeMounts).toContainEqual({ name: 'kubeconfig', mountPath: SA_KUBECONFIG_PATH, subPath: 'kubeconfig', readOnly: true });

    // The kubeconfig in the ConfigMap loads in client-node as the projected-token provider.
    const kc = new KubeConfig();
    kc.loadFromString(objs[0]!.data!.kubeconfig!);
    expect(kc.getCurrentCluster()).toMatchObject({ server: 'https://127.0.0.1:6443', caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', tlsServerName: 'kubernetes' });
    expect(kc.getCurrentUser()?.authProvider).toEqual({ name: 'tokenFile', config: { tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' } });
  });

  it('--in-cluster=false mounts the host kubeconfig and no token', () => {
    const objs = docs(gen('daemonset', CP, { inCluster: false }).yaml);
    expect(objs.map((o) => o.kind)).toEqual(['DaemonSet']);
    const spec = podSpec(objs);
    expect(spec.volumes).toContainEqual({ name: 'kubeconfig', hostPath: { path: '/etc/kubernetes/admin.conf', type: 'File' } });
    expect((spec as unknown as { automountServiceAccountToken: boolean }).automountServiceAccountToken).toBe(false);
  });

  it('takes the peer key from a Secret', () => {
    const spec = podSpec(docs(gen('daemonset', [...CP, '--vip_peers=cp1=198.18.0.11:7946,cp2=198.18.0.12:7946', '--vip_peer_key_file=/etc/vipd/peer.key'], { peerKeySecret: 'k' }).yaml));
    expect(spec.volumes).toContainEqual({ name: 'peer-key', secret: { secretName: 'k', defaultMode: 0o400 } });
    expect(spec.containers[0]!.volumeMounts).toContainEqual({ name: 'peer-key', mountPath: '/etc/vipd/peer.key', subPath: 'key', readOnly: true });
  });

  it('refuses settings that would let several nodes hold the VIP', () => {
    expect(configError(() => gen('daemonset', ['--address=192.0.2.10', '--vip_nodename=cp1'])).setting).toBe('vip_leaderelection');
    const bootstrap = configError(() => gen('daemonset', [...CP, '--vip_peers=cp1=198.18.0.11:7946', '--vip_peer_key_file=/k', '--vip_peer_bootstrap=true']));
    expect(bootstrap.setting).toBe('vip_peer_bootstrap');
    expect(configError(() => gen('daemonset', CP, { superAdmin: true })).setting).toBe('--super-admin');
  });

  it('the ServiceAccount kubeconfig names the configured local API endpoint', () => {
    const cfg = loadConfig({ address: '192.0.2.10', vip_nodename: 'cp1', port: '8443' }, []);
    expect(serviceAccountKubeconfig(cfg)).toContain('server: https://127.0.0.1:8443\n');
  });
});

const BGP = ['--address=192.0.2.10', '--cp_enable=true', '--vip_nodename=cp1', '--bgp_enable=true', '--bgp_as=65010', '--bgp_peers=192.0.2.1:65000'];

function container(spec: PodSpecLike, name: string): ContainerLike {
  const c = spec.containers.find((x) => x.name === name);
  expect(c, `container ${name}`).toBeDefined();
  return c!;
}

/** The mount paths of the volume `volume` in container `c`. */
function mountsOf(c: ContainerLike, volume: string): string[] {
  return (c.volumeMounts ?? []).filter((m) => m.name === volume).map((m) => m.mountPath);
}

const bgpArb = fc
  .record({
    bgp_as: fc.option(fc.integer({ min: 1, max: 4294967295 })),
    bgp_peers: fc.constantFrom('192.0.2.1:65000', '192.0.2.1:65000:s3cret:true,[2001:db8::1]:65001', '[2001:db8::1]:64512::false'),
    bgp_routerid: fc.option(fc.constantFrom('192.0.2.21', '10.0.0.1')),
    bgp_bfd: fc.option(fc.boolean()),
    bgp_bfd_interval_ms: fc.option(fc.integer({ min: 10, max: 60000 })),
    bgp_bfd_multiplier: fc.option(fc.integer({ min: 2, max: 255 })),
    timers: fc.option(fc.tuple(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 0, max: 100 }))),
    bgp_frr_socket_dir: fc.option(fc.constantFrom('/var/run/frr', '/run/frr', '/run/vipd/frr')),
    vip_arp: fc.option(fc.boolean()),
    asFlag: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
  })
  .map((s) => {
    const kv: Array<[string, string]> = [
      ['address', '192.0.2.10'],
      ['cp_enable', 'true'],
      ['bgp_enable', 'true'],
      ['bgp_peers', s.bgp_peers],
      ['vip_nodename', 'cp1'],
    ];
    for (const k of ['bgp_as', 'bgp_routerid', 'bgp_bfd', 'bgp_bfd_interval_ms', 'bgp_bfd_multiplier', 'bgp_frr_socket_dir', 'vip_arp'] as const) {
      if (s[k] !== null) kv.push([k, String(s[k])]);
    }
    if (s.timers) {
      const [keepalive, extra] = s.timers;
      kv.push(['bgp_keepalive_interval', String(keepalive)], ['bgp_hold_time', String(keepalive * 3 + extra)]);
    }
    const env: Record<string, string> = {};
    const args: string[] = [];
    kv.forEach(([k, v], i) => {
      if (s.asFlag[i % s.asFlag.length]) args.push(`--${k}=${v}`);
      else env[k] = v;
    });
    return { env, args, all: Object.fromEntries(kv) as Record<string, string> };
  });

describe('BGP mode: the FRR sidecar', () => {
  it('bgp_enable adds FRR next to vipd: its image, one socket volume at bgp_frr_socket_dir in both, the frrvty group', () => {
    const out = gen('pod', BGP);
    expect(out.warnings).toEqual([]);
    const spec = podSpec(docs(out.yaml));
    expect(spec.hostNetwork).toBe(true);
    expect(spec.containers.map((c) => c.name)).toEqual(['vipd', 'frr']);
    const vipd = container(spec, 'vipd');
    const frr = container(spec, 'frr');
    expect(frr.image).toBe(DEFAULT_FRR_IMAGE);
    expect(DEFAULT_FRR_IMAGE).toBe('quay.io/frrouting/frr:8.4.4');

    // One emptyDir, at the same path in both containers (FRR's own directory by default).
    expect(spec.volumes).toContainEqual({ name: 'frr-sockets', emptyDir: {} });
    expect(mountsOf(vipd, 'frr-sockets')).toEqual(['/var/run/frr']);
    expect(mountsOf(frr, 'frr-sockets')).toEqual(['/var/run/frr']);
    expect(podEnv(spec, 'cp1').bgp_frr_socket_dir).toBe('/var/run/frr');
    // FRR's configuration and crash logs are its own, and never the host's /etc/frr.
    expect(mountsOf(frr, 'frr-config')).toEqual(['/etc/frr']);
    expect(mountsOf(frr, 'frr-tmp')).toEqual(['/var/tmp/frr']);
    expect(spec.volumes).toContainEqual({ name: 'frr-config', emptyDir: {} });
    expect(spec.volumes!.filter((v) => v.hostPath).map((v) => v.hostPath!.path)).toEqual(['/etc/kubernetes/admin.conf', '/var/lib/vipd']);

    // vipd keeps its two capabilities and reaches the 0770 frr:frrvty sockets through the group.
    expect(vipd.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } });
    expect(spec.securityContext).toEqual({ supplementalGroups: [DEFAULT_FRR_VTY_GID] });
    expect(DEFAULT_FRR_VTY_GID).toBe(102);

    // FRR: exactly what its daemons need to start and drop to user frr, nothing privileged.
    expect(frr.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE', 'SYS_ADMIN', 'SETUID', 'SETGID', 'KILL', 'CHOWN'], drop: ['ALL'] },
    });
    expect(frr.securityContext!.privileged).toBeUndefined();
    expect(frr.command).toEqual(['/sbin/tini', '--', '/bin/sh', '-c']);
    expect(frr.args).toEqual([frrStartScript(DEFAULT_FRR_VTY_GID)]);
    expect(frr.env).toBeUndefined();
  });

  it('the start script: an empty configuration, zebra + bgpd + bfdd, no TCP listeners, then the image\'s docker-start', () => {
    const script = frrStartScript(102);
    const daemons = /cat > \/etc\/frr\/daemons <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(script)![1]!.split('\n');
    expect(daemons).toEqual(['bgpd=yes', 'bfdd=yes', 'zebra_options="-P 0 -s 90000000"', 'bgpd_options="-P 0 -p 0 -n"', 'bfdd_options="-P 0"', 'staticd_options="-P 0"']);
    expect(script).toContain(': > /etc/frr/frr.conf\n');
    expect(script.trimEnd().split('\n').at(-1)).toBe('exec /usr/lib/frr/docker-start');
    expect(spawnSync('sh', ['-n', '-c', script]).status).toBe(0);
  });

  it('the start script runs: files written, the gid checked against /etc/group, a wrong one named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-frr-script-'));
    try {
      writeFileSync(join(dir, 'start'), `#!/bin/sh\necho started\n`, { mode: 0o755 });
      const runWith = (groupLine: string, gid: number) => {
        writeFileSync(join(dir, 'group'), `root:x:0:root\nfrr:x:101:\n${groupLine}\n`);
        const script = frrStartScript(gid).replaceAll('/etc/frr/', `${dir}/`).replace('/etc/group', `${dir}/group`).replace('/usr/lib/frr/docker-start', `${dir}/start`);
        return spawnSync('sh', ['-c', script], { encoding: 'utf8' });
      };
      const ok = runWith('frrvty:x:102:frr', 102);
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toBe('started\n');
      expect(ok.status).toBe(0);
      expect(readFileSync(join(dir, 'frr.conf'), 'utf8')).toBe('');
      expect(readFileSync(join(dir, 'vtysh.conf'), 'utf8')).toBe('service integrated-vtysh-config\n');
      expect(readFileSync(join(dir, 'daemons'), 'utf8')).toMatch(/^bgpd=yes\nbfdd=yes\n/);

      const wrong = runWith('frrvty:x:106:frr', 102);
      expect(wrong.status).toBe(1);
      expect(wrong.stdout).toBe('');
      expect(wrong.stderr).toBe('vipd: group frrvty is gid 106 in this image, but the pod gives vipd gid 102 to reach the vty sockets: generate the manifest with --frr-vty-gid=106\n');
      expect(runWith('', 102).stderr).toContain('gid (none) in this image');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('another bgp_frr_socket_dir: the same path in both containers, and FRR\'s own directory on the same volume', () => {
    const spec = podSpec(docs(gen('pod', [...BGP, '--bgp_frr_socket_dir=/run/vipd/frr']).yaml));
    expect(mountsOf(container(spec, 'vipd'), 'frr-sockets')).toEqual(['/run/vipd/frr']);
    expect(mountsOf(container(spec, 'frr'), 'frr-sockets')).toEqual(['/run/vipd/frr', '/var/run/frr']);
    expect(spec.volumes!.filter((v) => v.name === 'frr-sockets')).toHaveLength(1);
    expect(podEnv(spec, 'cp1').bgp_frr_socket_dir).toBe('/run/vipd/frr');
  });

  it('--frr-image and --frr-vty-gid', () => {
    const spec = podSpec(docs(gen('pod', BGP, { frrImage: 'registry.example/frr:8.4.4', frrVtyGid: 300 }).yaml));
    expect(container(spec, 'frr').image).toBe('registry.example/frr:8.4.4');
    expect(spec.securityContext).toEqual({ supplementalGroups: [300] });
    expect(container(spec, 'frr').args![0]).toContain('if [ "$gid" != 300 ]; then');
    const s = splitManifestArgs(['--frr-image', 'r/frr:9', '--frr-vty-gid=85', '--bgp_enable=true']);
    expect(s.options).toMatchObject({ frrImage: 'r/frr:9', frrVtyGid: 85 });
    expect(s.settings).toEqual(['--bgp_enable=true']);
    for (const bad of ['0', '-1', 'frrvty', '4294967295', '1.5']) expect(configError(() => splitManifestArgs([`--frr-vty-gid=${bad}`])).setting).toBe('--frr-vty-gid');
    expect(configError(() => splitManifestArgs(['--frr-image='])).setting).toBe('--frr-image');
  });

  it('no sidecar, no group and no FRR volume without bgp_enable', () => {
    for (const kind of ['pod', 'daemonset'] as const) {
      const spec = podSpec(docs(gen(kind, CP, { frrImage: 'x/frr:1', frrVtyGid: 300 }).yaml));
      expect(spec.containers.map((c) => c.name)).toEqual(['vipd']);
      expect(spec.securityContext).toBeUndefined();
      expect(spec.volumes!.map((v) => v.name).filter((n) => n.startsWith('frr'))).toEqual([]);
      expect(podEnv(spec, 'cp1').bgp_frr_socket_dir).toBeUndefined();
    }
  });

  it('DaemonSet: every control-plane node announces (no election needed), with the same sidecar', () => {
    const objs = docs(gen('daemonset', BGP).yaml);
    const spec = podSpec(objs);
    expect(spec.containers.map((c) => c.name)).toEqual(['vipd', 'frr']);
    expect(spec.securityContext).toEqual({ supplementalGroups: [102] });
    expect(mountsOf(container(spec, 'vipd'), 'frr-sockets')).toEqual(['/var/run/frr']);
    expect(podEnv(spec, 'cp1')).toMatchObject({ bgp_enable: 'true', vip_leaderelection: 'false', k8s_config_file: SA_KUBECONFIG_PATH });
    // Without BGP the same settings would let every node hold the VIP in layer 2: still refused.
    expect(configError(() => gen('daemonset', BGP.filter((a) => !a.startsWith('--bgp_')))).setting).toBe('vip_leaderelection');
  });

  it('refuses a socket directory it cannot mount', () => {
    expect(configError(() => gen('pod', [...BGP, '--bgp_frr_socket_dir=run/frr'])).setting).toBe('bgp_frr_socket_dir');
    expect(configError(() => gen('pod', [...BGP, '--bgp_frr_socket_dir=/var/lib/vipd'])).message).toMatch(/must differ from vip_state_dir/);
    expect(configError(() => gen('pod', [...BGP, '--bgp_frr_socket_dir=/etc/frr'])).message).toMatch(/FRR sidecar mounts its own volumes there/);
    expect(configError(() => gen('daemonset', [...BGP, '--bgp_frr_socket_dir=/var/tmp/frr'])).setting).toBe('bgp_frr_socket_dir');
  });

  it('settings flow as environment with kube-vip\'s names and give back the same Config (pod and DaemonSet)', () => {
    fc.assert(
      fc.property(bgpArb, fc.constantFrom('pod', 'daemonset') as fc.Arbitrary<'pod' | 'daemonset'>, ({ env, args, all }, kind) => {
        fc.pre(valid(all));
        const spec = podSpec(docs(generateManifest(kind, env, args, defaultManifestOptions()).yaml));
        const got = podEnv(spec, 'cp2');
        expect(got.bgp_enable).toBe('true');
        expect(got.bgp_peers).toBeDefined();
        expect(loadConfig(got, [])).toEqual(expectedOn(all, 'cp2', kind === 'daemonset' ? { kubeconfig: SA_KUBECONFIG_PATH } : {}));
        const dir = loadConfig(got, []).bgp!.socketDir;
        expect(mountsOf(container(spec, 'vipd'), 'frr-sockets')).toEqual([dir]);
        expect(mountsOf(container(spec, 'frr'), 'frr-sockets')[0]).toBe(dir);
      }),
      { numRuns: 200 },
    );
  });
});

describe('RBAC', () => {
  it('grants Leases in cp_namespace when it is not kube-system', () => {
    const objs = docs(gen('rbac', ['--cp_namespace=infra']).yaml);
    expect(objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`)).toEqual([
      'ServiceAccount/kube-system/vipd',
      'ClusterRole//vipd',
      'ClusterRoleBinding//vipd',
      'Role/kube-system/vipd',
      'RoleBinding/kube-system/vipd',
      'Role/infra/vipd-lease',
      'RoleBinding/infra/vipd-lease',
    ]);
    expect(objs[5]!.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] }]);
  });

  it('needs no VIP', () => {
    expect(gen('rbac', []).yaml).toContain('kind: ClusterRole\n');
  });
});

describe('checked-in files', () => {
  it('manifests/*.yaml are what the generator writes for the documented flags (npm run manifests)', () => {
    expect(staleFiles(ROOT, 'manifests')).toEqual([]);
    expect(DOCUMENTED_ARGS.pod).toContain('--cp_enable=true');
    expect(EXAMPLE_MANIFESTS.map((e) => e.path)).toEqual(['manifests/pod-bgp.yaml']);
  });

  it('manifests/pod-bgp.yaml is the BGP example: vipd and the FRR sidecar', () => {
    const spec = podSpec(docs(readFileSync(join(ROOT, 'manifests/pod-bgp.yaml'), 'utf8')));
    expect(spec.containers.map((c) => `${c.name}=${c.image}`)).toEqual([`vipd=vipd:${packageVersion()}`, `frr=${DEFAULT_FRR_IMAGE}`]);
    expect(loadConfig(podEnv(spec, 'cp1'), []).bgp).toMatchObject({ asn: 65010, peers: [{ address: '192.0.2.1', asn: 65000 }] });
  });

  it('docs/settings.md is what the settings table gives (npm run docs:settings)', () => {
    expect(staleFiles(ROOT, 'docs')).toEqual([]);
  });
});

describe('manifest command', () => {
  it('splits its own flags from the settings', () => {
    const s = splitManifestArgs(['--image', 'r/vipd:1', '--super-admin', '--interface', 'eth0', '--sysctl-init=false', '--address=192.0.2.10', '--leaderElection']);
    expect(s.options).toMatchObject({ image: 'r/vipd:1', superAdmin: true, sysctlInit: false, inCluster: true });
    expect(s.settings).toEqual(['--interface', 'eth0', '--address=192.0.2.10', '--leaderElection']);
    expect(() => splitManifestArgs(['--super-admin=maybe'])).toThrow(ConfigError);
    expect(() => splitManifestArgs(['--image'])).toThrow(ConfigError);
  });

  it('prints YAML on stdout and nothing else; bad input exits 2 with one line on stderr', () => {
    const io = (env: Record<string, string> = {}) => {
      const o = { out: '', err: '' };
      return { o, io: { env, stdout: (s: string) => (o.out += s), stderr: (s: string) => (o.err += s) } };
    };
    const a = io({ vip_address: '192.0.2.10', vip_leaderelection: 'true', vip_nodename: 'cp1' });
    expect(manifestCommand(['pod', '--image=x/vipd:2'], a.io)).toBe(0);
    expect(docs(a.o.out)[0]!.spec!.containers[0]!.image).toBe('x/vipd:2');
    expect(a.o.err).toBe('');
    const b = io({ vip_nodename: 'cp1' });
    expect(manifestCommand(['pod', '--port=0'], b.io)).toBe(2);
    expect(b.o.out).toBe('');
    expect(b.o.err).toMatch(/^vipd: invalid setting --port="0": must be a whole number from 1 to 65535\n$/);
    const c = io();
    expect(manifestCommand(['deployment'], c.io)).toBe(2);
    expect(c.o.err).toContain('expected pod, daemonset, rbac');
    const d = io();
    expect(manifestCommand(['pod', '--help'], d.io)).toBe(0);
    expect(d.o.out).toContain('--super-admin');
  });

  it.skipIf(!existsSync(join(ROOT, 'dist/src/manifest/command.js')))('works through the built CLI: environment with kube-vip names, flags win', async () => {
    const cli = join(ROOT, 'dist/src/cli.js');
    const env = { PATH: process.env.PATH ?? '', vip_address: '192.0.2.10', vip_leaderelection: 'true', vip_nodename: 'cp1', port: '6443' };
    const { stdout, stderr } = await run(process.execPath, [cli, 'manifest', 'pod', '--port=8443'], { env });
    expect(stderr).toBe('');
    expect(podEnv(podSpec(docs(stdout)), 'cp1')).toMatchObject({ address: '192.0.2.10', port: '8443', kubernetes_addr: 'https://127.0.0.1:8443' });
    const bad = await run(process.execPath, [cli, 'manifest', 'daemonset'], { env: { ...env, vip_leaderelection: 'false' } }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect((bad as { stderr: string }).stderr).toContain('vip_leaderelection');
  });
});
