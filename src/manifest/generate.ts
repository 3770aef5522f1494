/**
 * `vipd manifest pod|daemonset|rbac`: Kubernetes YAML from the same settings `vipd run` reads.
 *
 * Invariants (tests hold them):
 * - The container gets the settings as environment variables with kube-vip's names, and parsing
 *   that environment gives back the Config the manifest was generated from (vip_nodename comes
 *   from spec.nodeName; the DaemonSet's kubeconfig is the ServiceAccount's unless --in-cluster=false).
 * - Only NET_ADMIN and NET_RAW are added, everything else is dropped. The one privileged part is an
 *   init container that sets the two strict-ARP sysctls the default responder needs, because
 *   /proc/sys is read-only in unprivileged containers and a hostNetwork pod may not set net.*
 *   sysctls through securityContext.sysctls.
 * - bgp_enable adds the FRR sidecar (frrSidecar): it starts zebra, bgpd and bfdd with an empty
 *   configuration, vipd pushes its own over the vty sockets in bgp_frr_socket_dir, which is one
 *   emptyDir mounted at that path in both containers; vipd keeps its two capabilities and reaches the
 *   sockets only through the frrvty group (the pod's supplementalGroups).
 * - Output is deterministic: the same settings give the same bytes (checked-in copies are compared).
 */
import { posix } from 'node:path';
import { ConfigError, loadConfig, toEnv, type BgpConfig, type Config } from '../config/index.js';
import { rbacDocuments, SERVICE_ACCOUNT } from './rbac.js';
import { packageVersion } from './version.js';
import { commented, toYaml, type YamlDocument, type YamlMap, type YamlValue } from './yaml.js';

export type ManifestKind = 'pod' | 'daemonset' | 'rbac';
export const MANIFEST_KINDS: readonly ManifestKind[] = ['pod', 'daemonset', 'rbac'];

export interface ManifestOptions {
  /** Container image reference. */
  image: string;
  /** pod: super-admin.conf as k8s_fallback_config_file (first kubeadm init node, kubeadm >= 1.29, kube-vip #684). */
  superAdmin: boolean;
  /** Add the privileged init container that sets the strict-ARP sysctls (only when they are needed). */
  sysctlInit: boolean;
  /** daemonset: API credentials from the ServiceAccount (true) or the host's kubeconfig file (false). */
  inCluster: boolean;
  /** daemonset: Secret holding the peer key under the key `key`. */
  peerKeySecret: string;
  /** bgp_enable: the FRR sidecar's image (FRR's official one, or one built from its docker/alpine). */
  frrImage: string;
  /** bgp_enable: gid of group frrvty in frrImage, which owns the vty sockets; the pod gets it as a supplemental group. */
  frrVtyGid: number;
}

export const KUBEADM_ADMIN_CONF = '/etc/kubernetes/admin.conf';
export const KUBEADM_SUPER_ADMIN_CONF = '/etc/kubernetes/super-admin.conf';
export const STATIC_POD_PATH = '/etc/kubernetes/manifests/vipd.yaml';
/** Where the DaemonSet's ServiceAccount kubeconfig (ConfigMap vipd-kubeconfig, vipd-workers-kubeconfig for workers) is mounted. */
export const SA_KUBECONFIG_PATH = '/etc/vipd/kubeconfig';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const NAME = 'vipd';
const NAMESPACE = 'kube-system';
const LABELS = { 'app.kubernetes.io/name': NAME };
const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane';

export function defaultImage(): string {
  return `vipd:${packageVersion()}`;
}

/**
 * FRR's official image at the release Debian 12 ships (8.4.4), the FRR the lab's BGP tests drive,
 * so what is tested is what the sidecar runs. Built from FRRouting/frr docker/alpine/Dockerfile.
 */
export const DEFAULT_FRR_IMAGE = 'quay.io/frrouting/frr:8.4.4';
/**
 * frrvty's gid in that image. Its Dockerfile installs FRR's apk on alpine:3.15, whose pre-install
 * script (alpine/frr.pre-install) runs `addgroup -S frr` then `addgroup -S frrvty`; busybox gives a
 * system group the first free gid from 100 and alpine's /etc/group already has 100 (users), so frr
 * is 101 and frrvty 102 (MetalLB runs the same image's files as 100:101, user and group frr). The
 * sidecar checks it at start and names the right value when an image differs.
 */
export const DEFAULT_FRR_VTY_GID = 102;
/** FRR's compiled-in state directory (the APKBUILD's --localstatedir): pid files, zserv.api, vty sockets. */
export const FRR_STATE_DIR = '/var/run/frr';
const FRR_CONFIG_DIR = '/etc/frr';
/** Where FRR keeps per-daemon crash logs and thread log buffers (lib/zlog.c TMPBASEDIR). */
const FRR_TMP_DIR = '/var/tmp/frr';

export function defaultManifestOptions(): ManifestOptions {
  return { image: defaultImage(), superAdmin: false, sysctlInit: true, inCluster: true, peerKeySecret: 'vipd-peer-key', frrImage: DEFAULT_FRR_IMAGE, frrVtyGid: DEFAULT_FRR_VTY_GID };
}

// kube-vip's `manifest pod` always writes these; the rest only when not at their default.
const ALWAYS = new Set([
  'address',
  'vip_subnet',
  'vip_arp',
  'port',
  'vip_interface',
  'vip_nodename',
  'vip_responder',
  'cp_enable',
  'cp_namespace',
  'vip_leaderelection',
  'vip_leasename',
  'vip_leaseduration',
  'vip_renewdeadline',
  'vip_retryperiod',
  'k8s_config_file',
  'kubernetes_addr',
  'prometheus_server',
]);

export type EnvVar = { name: string; value: string } | { name: string; valueFrom: { fieldRef: { fieldPath: string } } };

/**
 * The container's environment: the settings under kube-vip's names, in table order. Settings at
 * their default are left out (except the ones kube-vip always writes), so a manifest shows what
 * was chosen; leaving one out means the same value, because loadConfig fills in the default.
 */
export function containerEnv(config: Config): EnvVar[] {
  const env = toEnv(config);
  // The socket directory is also the volume's mount path: written out, the two are seen together.
  const always = config.bgp ? new Set([...ALWAYS, 'bgp_frr_socket_dir']) : ALWAYS;
  // toEnv leaves out settings whose value is "unset"; for prometheus_server unset means disabled,
  // which must be written as "" or the default (:2112) would come back.
  if (config.metricsAddress === undefined) env.prometheus_server = '';
  const defaults = toEnv(loadConfig({ vip_nodename: config.nodeName, port: String(config.port) }, [], { requireVip: false }));
  const out: EnvVar[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (name === 'vip_nodename') {
      out.push({ name, valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
      continue;
    }
    if (always.has(name) || defaults[name] !== value) out.push({ name, value });
  }
  return out;
}

/** The sysctls the agent responder needs (see ensureStrictArp in src/config/host.ts). */
export function needsStrictArp(config: Config): boolean {
  return config.responder === 'agent' && config.vips.some((v) => v.family === 4);
}

/**
 * POSIX sh for the init container: raise arp_ignore to 1 where it is 0 or 3 (on `all` and on the
 * VIP's interface, or on every interface when vipd picks the interface itself) and arp_announce
 * on `all` to 2. Values that are already strict enough are left alone; every change is printed.
 */
export function strictArpScript(iface: string | undefined): string {
  const targets = iface ? `"$conf/all/arp_ignore" "$conf/${iface}/arp_ignore"` : '"$conf"/*/arp_ignore';
  return [
    'set -eu',
    'conf=/proc/sys/net/ipv4/conf',
    `for f in ${targets}; do`,
    '  v=$(cat "$f")',
    '  case "$v" in 0|3) echo 1 > "$f"; echo "$f: $v -> 1" ;; esac',
    'done',
    'v=$(cat "$conf/all/arp_announce")',
    'if [ "$v" -lt 2 ]; then echo 2 > "$conf/all/arp_announce"; echo "$conf/all/arp_announce: $v -> 2"; fi',
    '',
  ].join('\n');
}

interface Volume {
  volume: YamlMap;
  mount: YamlMap;
}

function hostFile(name: string, hostPath: string, mountPath: string): Volume {
  return { volume: { name, hostPath: { path: hostPath, type: 'File' } }, mount: { name, mountPath, readOnly: true } };
}

function probes(config: Config): YamlMap {
  if (config.metricsAddress === undefined) return {};
  const { host, port } = config.metricsAddress;
  // The kubelet probes the pod IP (the node's address with hostNetwork) unless told otherwise.
  const probeHost = host === undefined || host === '0.0.0.0' || host === '::' ? undefined : host;
  const get = (path: string): YamlMap => ({ path, port, host: probeHost });
  return {
    ports: [{ name: 'metrics', containerPort: port, protocol: 'TCP' }],
    livenessProbe: commented(
      ['Restarts the agent only when its event loop stays blocked (~30 s) or keeps blocking; the VIP', 'is safe meanwhile: the holder stops answering at its grant deadline.'],
      { httpGet: get('/healthz'), periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
    ),
    readinessProbe: { httpGet: get('/readyz'), periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
  };
}

function agentContainer(config: Config, env: EnvVar[], volumes: Volume[], opts: ManifestOptions): YamlMap {
  return {
    name: NAME,
    image: opts.image,
    imagePullPolicy: 'IfNotPresent',
    args: ['run'],
    env,
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: commented(
        ['NET_ADMIN: add and remove the VIP and its kernel lifetime (netlink address changes).', 'NET_RAW: AF_PACKET socket for gratuitous ARP / unsolicited NA and ARP replies.'],
        { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      ),
    },
    resources: commented(
      [
        'A request, no limit. Without one the pod is BestEffort, and on cgroup v1 its CPU share is 2',
        'against the API server\'s 256: under load the agent then wakes too late for its 50 ms',
        'heartbeats and the VIP fails over for nothing (seen in the kubeadm lab: dozens of false',
        'failovers in minutes). A limit would throttle it in 100 ms slices, which is worse.',
      ],
      { requests: { cpu: '100m', memory: '128Mi' } },
    ),
    volumeMounts: volumes.map((v) => v.mount),
    ...probes(config),
  };
}

function initContainers(config: Config, opts: ManifestOptions): YamlMap {
  if (!opts.sysctlInit || !needsStrictArp(config)) return {};
  return {
    initContainers: commented(
      [
        'vip_responder=agent: the kernel must not answer ARP for the VIP (it sits on lo), only vipd,',
        'and only while it holds a grant. /proc/sys is read-only in unprivileged containers and',
        'hostNetwork pods may not set net.* sysctls, so this container is privileged for one job:',
        'raise arp_ignore to 1 and arp_announce to 2 in the host network namespace, then exit.',
        'Set them on the host instead (sysctl.d) and generate with --sysctl-init=false to drop it.',
      ],
      [
        {
          name: 'strict-arp',
          image: opts.image,
          imagePullPolicy: 'IfNotPresent',
          command: ['/bin/sh', '-c'],
          args: [strictArpScript(config.interface)],
          securityContext: { privileged: true },
        },
      ],
    ),
  };
}

/**
 * POSIX sh for the FRR sidecar (busybox ash in the official image): check that vipd's group is the
 * image's frrvty, write the daemons file and an empty configuration, then hand over to the image's
 * own start script, /usr/lib/frr/docker-start (`watchfrr $(daemon_list)` in the foreground: watchfrr
 * starts the daemons through watchfrr.sh and restarts any that dies or hangs).
 *
 * The daemons file is read by tools/frrcommon.sh: zebra (and, in 8.4, staticd) always start,
 * `<daemon>_options` are appended to each daemon's command line.
 * - `-P 0` on every daemon: no vty TCP listener. The pod has the host's network, and the unix
 *   sockets are the only way in that vipd needs.
 * - bgpd `-p 0`: it does not listen on TCP 179 and only connects out to the router, so it cannot
 *   clash with another BGP speaker on the node (Calico's BIRD, MetalLB) and the node has no BGP port open.
 * - bgpd `-n`: routes learnt from the router never reach the host's routing table; vipd only announces.
 * - zebra `-s 90000000`: FRR's default netlink receive buffer.
 * frr.conf exists (empty) so frrcommon.sh creates no per-daemon files, and a daemon that watchfrr
 * restarts comes back empty too, which vipd notices and configures again.
 */
export function frrStartScript(vtyGid: number): string {
  return [
    'set -eu',
    `gid=$(sed -n 's/^frrvty:[^:]*:\\([0-9]*\\):.*$/\\1/p' /etc/group)`,
    `if [ "$gid" != ${vtyGid} ]; then`,
    `  echo "vipd: group frrvty is gid \${gid:-(none)} in this image, but the pod gives vipd gid ${vtyGid} to reach the vty sockets: generate the manifest with --frr-vty-gid=\${gid:-N}" >&2`,
    '  exit 1',
    'fi',
    `cat > ${FRR_CONFIG_DIR}/daemons <<'EOF'`,
    'bgpd=yes',
    'bfdd=yes',
    'zebra_options="-P 0 -s 90000000"',
    'bgpd_options="-P 0 -p 0 -n"',
    'bfdd_options="-P 0"',
    'staticd_options="-P 0"',
    'EOF',
    `: > ${FRR_CONFIG_DIR}/frr.conf`,
    `echo 'service integrated-vtysh-config' > ${FRR_CONFIG_DIR}/vtysh.conf`,
    'exec /usr/lib/frr/docker-start',
    '',
  ].join('\n');
}

interface FrrSidecar {
  container: YamlValue;
  /** The socket directory, as the agent container mounts it. */
  shared: Volume;
  /** Volumes only the sidecar mounts. */
  own: YamlMap[];
}

function frrSidecar(bgp: BgpConfig, opts: ManifestOptions): FrrSidecar {
  const sockets = 'frr-sockets';
  const mounts: YamlMap[] = [{ name: sockets, mountPath: bgp.socketDir }];
  // FRR itself keeps using its compiled-in directory (so do watchfrr, and vtysh under kubectl exec):
  // the same volume mounted there too moves every socket at once, where --vty_socket would need
  // matching options on watchfrr (-S) and vtysh and would leave zserv.api and the pid files behind.
  if (bgp.socketDir !== FRR_STATE_DIR) mounts.push({ name: sockets, mountPath: FRR_STATE_DIR });
  mounts.push({ name: 'frr-config', mountPath: FRR_CONFIG_DIR }, { name: 'frr-tmp', mountPath: FRR_TMP_DIR });
  return {
    shared: { volume: { name: sockets, emptyDir: {} }, mount: { name: sockets, mountPath: bgp.socketDir } },
    own: [
      { name: 'frr-config', emptyDir: {} },
      { name: 'frr-tmp', emptyDir: {} },
    ],
    container: commented(
      [
        'bgp_enable: FRR (zebra, bgpd, bfdd) speaks BGP and BFD for vipd. It starts with an empty',
        `configuration; vipd applies its own over the vty sockets in ${bgp.socketDir} (docs/bgp.md).`,
      ],
      {
        name: 'frr',
        image: opts.frrImage,
        imagePullPolicy: 'IfNotPresent',
        // tini (the image's entrypoint, named because `command` replaces it) reaps the daemons,
        // which detach from watchfrr.
        command: ['/sbin/tini', '--', '/bin/sh', '-c'],
        args: [frrStartScript(opts.frrVtyGid)],
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: commented(
            [
              'Each daemon starts as root, drops to user frr and keeps the capabilities it asks for; it',
              'exits at start when one is missing (lib/privs.c), so the first four are required (tested one',
              'by one with FRR 8.4.4) even where this configuration does not use them:',
              'NET_ADMIN: zebra netlink (its forced 90 MB receive buffer); bgpd asks for it too.',
              'NET_RAW: bfdd echo (AF_PACKET); zebra and bgpd ask for it too.',
              'NET_BIND_SERVICE: bfdd binds UDP 3784, 4784 and 3785; bgpd asks for it (it does not listen).',
              'SYS_ADMIN: zebra, bgpd and bfdd ask for it (network-namespace VRFs, unused here).',
              'SETUID, SETGID: the drop from root to user frr (setgroups, setregid, setreuid).',
              'KILL: watchfrr (root) signals a daemon that stopped answering (it runs as frr) to restart it.',
              `CHOWN: a daemon hands its crash-log directory in ${FRR_TMP_DIR} to frr before it drops root.`,
            ],
            { add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE', 'SYS_ADMIN', 'SETUID', 'SETGID', 'KILL', 'CHOWN'], drop: ['ALL'] },
          ),
        },
        // A request for the same reason as vipd's: bfdd's 100 ms packets must not wait behind the control plane.
        resources: { requests: { cpu: '50m', memory: '64Mi' } },
        volumeMounts: mounts,
      },
    ),
  };
}

function stateVolume(config: Config): Volume {
  return {
    volume: { name: 'state', hostPath: { path: config.stateDir, type: 'DirectoryOrCreate' } },
    mount: { name: 'state', mountPath: config.stateDir },
  };
}

function generatedBy(kind: ManifestKind, argv: readonly string[]): string[] {
  const args = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`));
  return [`Generated by: vipd manifest ${[kind, ...args].join(' ')}`, `vipd ${packageVersion()}; settings: docs/settings.md`];
}

function podSpecCommon(config: Config, env: EnvVar[], volumes: Volume[], opts: ManifestOptions): YamlMap {
  const frr = config.bgp ? frrSidecar(config.bgp, opts) : undefined;
  const agentVolumes = frr ? [...volumes, frr.shared] : volumes;
  return {
    hostNetwork: true,
    priorityClassName: 'system-node-critical',
    ...(frr
      ? {
          securityContext: commented(
            [
              'The vty sockets are mode 0770, user frr, group frrvty. vipd runs as root without',
              'CAP_DAC_OVERRIDE, so it may connect only as a member of frrvty: this is its gid in the FRR',
              'image (--frr-vty-gid); the sidecar refuses to start when the image says otherwise.',
            ],
            { supplementalGroups: [opts.frrVtyGid] },
          ),
        }
      : {}),
    ...initContainers(config, opts),
    containers: [agentContainer(config, env, agentVolumes, opts), ...(frr ? [frr.container] : [])],
    volumes: [...agentVolumes.map((v) => v.volume), ...(frr ? frr.own : [])],
  };
}

/** Static pod for /etc/kubernetes/manifests on each control-plane node. */
export function podDocuments(config: Config, opts: ManifestOptions, argv: readonly string[] = []): YamlDocument[] {
  const volumes: Volume[] = [hostFile('kubeconfig', config.kubeconfig, config.kubeconfig), stateVolume(config)];
  const fallback = config.fallbackKubeconfig;
  if (fallback) volumes.push(hostFile('fallback-kubeconfig', fallback, fallback));
  if (config.peerKeyFile) volumes.push(hostFile('peer-key', config.peerKeyFile, config.peerKeyFile));
  const comment = [
    ...generatedBy('pod', argv),
    `Static pod: save as ${STATIC_POD_PATH} on each control-plane node.`,
    ...(fallback === KUBEADM_SUPER_ADMIN_CONF
      ? [
          `Mounts ${KUBEADM_SUPER_ADMIN_CONF} as the fallback credential: first \`kubeadm init\` node only`,
          '(kubeadm >= 1.29; the agent moves to admin.conf by itself once it is accepted). When the other',
          'control-plane nodes have joined, replace this file with one generated without --super-admin.',
        ]
      : []),
  ];
  return [
    {
      comment,
      body: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: NAME, namespace: NAMESPACE, labels: LABELS },
        spec: podSpecCommon(config, containerEnv(config), volumes, opts),
      },
    },
  ];
}

/** A kubeconfig for the pod's own ServiceAccount token, for the API client's kubeconfig loader. */
export function serviceAccountKubeconfig(config: Config): string {
  const doc: YamlDocument = {
    body: {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server: config.apiEndpoint, 'certificate-authority': `${SA_DIR}/ca.crt`, 'tls-server-name': 'kubernetes' } }],
      users: [
        // client-node's file-token provider re-reads the projected token (the kubelet rotates it).
        { name: SERVICE_ACCOUNT.name, user: { 'auth-provider': { name: 'tokenFile', config: { tokenFile: `${SA_DIR}/token` } } } },
      ],
      contexts: [{ name: NAME, context: { cluster: 'local', user: SERVICE_ACCOUNT.name } }],
      'current-context': NAME,
    },
  };
  return toYaml([doc]);
}

/** DaemonSet on control-plane nodes, or on workers for a Services-only member configuration (plus the ServiceAccount kubeconfig ConfigMap it mounts). */
export function daemonSetDocuments(config: Config, opts: ManifestOptions, argv: readonly string[] = []): YamlDocument[] {
  if (config.peerBootstrap) {
    throw new ConfigError('vip_peer_bootstrap', 'true', 'cannot be used in a DaemonSet: bootstrap lets a node hold the VIP alone, so only the first kubeadm init node may have it (use `vipd manifest pod`)');
  }
  // In BGP mode every healthy node announces the VIP on purpose (ECMP), election or not.
  if (!config.bgp && !config.leaderElection && config.peers.length === 0) {
    throw new ConfigError('vip_leaderelection', 'false', 'must be true (or vip_peers set) for a DaemonSet: without an election every node it runs on would hold the VIP');
  }
  if (opts.superAdmin) throw new ConfigError('--super-admin', undefined, 'is for the static pod of the first kubeadm init node, not for a DaemonSet');
  const fallback = config.fallbackKubeconfig;
  if (fallback) throw new ConfigError('k8s_fallback_config_file', fallback, 'is for the static pod of the first kubeadm init node, not for a DaemonSet');

  // A worker configuration (Services only, outside vip_peers) is its own DaemonSet on the nodes
  // without the control-plane role, with its own name and labels so neither selects the other's pods.
  const workers = config.serviceMemberOnly === true;
  const name = workers ? `${NAME}-workers` : NAME;
  const labels = workers ? { 'app.kubernetes.io/name': name } : LABELS;
  // A worker has no API server of its own: the ServiceAccount kubeconfig must name the control plane's.
  if (config.serviceMemberOnly === true && opts.inCluster && isLoopbackUrl(config.apiEndpoint)) {
    throw new ConfigError('kubernetes_addr', config.apiEndpoint, 'must name the control plane (for example https://<VIP>:6443) for a worker DaemonSet: a worker has no API server of its own on 127.0.0.1');
  }
  const runConfig: Config = opts.inCluster ? { ...config, kubeconfig: SA_KUBECONFIG_PATH } : config;
  const volumes: Volume[] = [];
  const docs: YamlDocument[] = [];
  if (opts.inCluster) {
    // Its own ConfigMap for the workers: their server is one they can reach (kubernetes_addr), not
    // the control-plane nodes' local API server, and one name for both would overwrite the other.
    const kubeconfigMap = `${name}-kubeconfig`;
    docs.push({
      comment: [...generatedBy('daemonset', argv), `Needs the ServiceAccount ${SERVICE_ACCOUNT.namespace}/${SERVICE_ACCOUNT.name} and its RBAC: vipd manifest rbac.`],
      body: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: kubeconfigMap, namespace: NAMESPACE, labels },
        data: { kubeconfig: serviceAccountKubeconfig(config) },
      },
    });
    volumes.push({
      volume: { name: 'kubeconfig', configMap: { name: kubeconfigMap } },
      mount: { name: 'kubeconfig', mountPath: SA_KUBECONFIG_PATH, subPath: 'kubeconfig', readOnly: true },
    });
  } else {
    volumes.push(hostFile('kubeconfig', config.kubeconfig, config.kubeconfig));
  }
  volumes.push(stateVolume(config));
  if (config.peerKeyFile) {
    volumes.push({
      volume: { name: 'peer-key', secret: { secretName: opts.peerKeySecret, defaultMode: 0o400 } },
      mount: { name: 'peer-key', mountPath: config.peerKeyFile, subPath: 'key', readOnly: true },
    });
  }
  const placement = workers
    ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: CONTROL_PLANE_LABEL, operator: 'DoesNotExist' }] }] } } } }
    : { nodeSelector: { [CONTROL_PLANE_LABEL]: '' }, tolerations: [{ key: CONTROL_PLANE_LABEL, operator: 'Exists', effect: 'NoSchedule' }] };
  docs.push({
    comment: opts.inCluster ? [] : [...generatedBy('daemonset', argv)],
    body: {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name, namespace: NAMESPACE, labels },
      spec: {
        selector: { matchLabels: labels },
        // One node at a time: the others keep the election alive while one restarts.
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: SERVICE_ACCOUNT.name,
            automountServiceAccountToken: opts.inCluster,
            ...placement,
            ...podSpecCommon(runConfig, containerEnv(runConfig), volumes, opts),
          },
        },
      },
    },
  });
  return docs;
}

/** Files the manifests mount from the host (or a Secret) need absolute paths. */
function checkMountedPaths(config: Config): void {
  const paths: Array<[string, string | undefined]> = [
    ['k8s_config_file', config.kubeconfig],
    ['vip_state_dir', config.stateDir],
    ['vip_peer_key_file', config.peerKeyFile],
    ['k8s_fallback_config_file', config.fallbackKubeconfig],
    ['bgp_frr_socket_dir', config.bgp?.socketDir],
  ];
  for (const [setting, p] of paths) {
    if (p !== undefined && (!posix.isAbsolute(p) || posix.normalize(p) !== p || p === '/')) {
      throw new ConfigError(setting, p, 'must be an absolute, normalised path for a manifest (it is mounted into the container)');
    }
  }
  const dir = config.bgp?.socketDir;
  if (dir === undefined) return;
  // One mount path per container: the API refuses a pod that mounts two volumes at one place.
  for (const [setting, p] of paths) {
    if (setting !== 'bgp_frr_socket_dir' && p === dir) throw new ConfigError('bgp_frr_socket_dir', dir, `must differ from ${setting}: both are mounted into the container`);
  }
  if (dir === FRR_CONFIG_DIR || dir === FRR_TMP_DIR) throw new ConfigError('bgp_frr_socket_dir', dir, `must not be ${FRR_CONFIG_DIR} or ${FRR_TMP_DIR}: the FRR sidecar mounts its own volumes there`);
}

/**
 * --super-admin: kubeadm's super-admin.conf becomes k8s_fallback_config_file. The agent uses
 * admin.conf as soon as the API accepts it and super-admin.conf while admin.conf is refused
 * (kubeadm >= 1.29 binds admin.conf's user only late in `kubeadm init`, kube-vip issue 684).
 */
export function withSuperAdmin(config: Config): Config {
  if (config.fallbackKubeconfig !== undefined && config.fallbackKubeconfig !== KUBEADM_SUPER_ADMIN_CONF) {
    throw new ConfigError('--super-admin', undefined, `sets k8s_fallback_config_file=${KUBEADM_SUPER_ADMIN_CONF}, which conflicts with k8s_fallback_config_file=${config.fallbackKubeconfig}`);
  }
  return { ...config, fallbackKubeconfig: KUBEADM_SUPER_ADMIN_CONF };
}

export interface Generated {
  yaml: string;
  /** Things the operator should know that do not make the manifest wrong. */
  warnings: string[];
}

/**
 * Pure: settings (environment + flags, as `vipd run` takes them) plus manifest options → YAML.
 * Throws ConfigError for bad settings, exactly as `vipd run` would.
 */
export function generateManifest(
  kind: ManifestKind,
  env: Readonly<Record<string, string | undefined>>,
  settingArgs: readonly string[],
  opts: ManifestOptions,
  argvForHeader: readonly string[] = settingArgs,
): Generated {
  let config = loadConfig(env, settingArgs, { requireVip: kind !== 'rbac' });
  if (opts.superAdmin && kind === 'pod') config = withSuperAdmin(config);
  if (kind !== 'rbac') checkMountedPaths(config);
  const warnings: string[] = [];
  let docs: YamlDocument[];
  switch (kind) {
    case 'rbac':
      docs = rbacDocuments(config, generatedBy('rbac', argvForHeader));
      break;
    case 'pod':
      if (!config.bgp && !config.leaderElection && config.peers.length === 0) {
        warnings.push('vip_leaderelection is false and vip_peers is empty: every node running this pod holds the VIP; use it on one node only');
      }
      docs = podDocuments(config, opts, argvForHeader);
      break;
    case 'daemonset':
      docs = daemonSetDocuments(config, opts, argvForHeader);
      break;
  }
  if (config.peerKeyFile && kind !== 'rbac') {
    warnings.push(
      kind === 'pod'
        ? `the peer key must exist on every node at ${config.peerKeyFile} (same key everywhere)`
        : `the peer key comes from Secret ${NAMESPACE}/${opts.peerKeySecret} (key "key"); create it before the DaemonSet: kubectl -n ${NAMESPACE} create secret generic ${opts.peerKeySecret} --from-file=key=<file>`,
    );
  }
  return { yaml: toYaml(docs), warnings };
}

function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
