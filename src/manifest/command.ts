/**
 * `vipd manifest pod|daemonset|rbac [--setting=value ...] [manifest flags]`: YAML on stdout,
 * warnings and errors on stderr. Exit 0, or 2 for bad input (nothing is printed on stdout then).
 */
import { ConfigError } from '../config/index.js';
import { defaultManifestOptions, generateManifest, KUBEADM_ADMIN_CONF, KUBEADM_SUPER_ADMIN_CONF, MANIFEST_KINDS, SA_KUBECONFIG_PATH, STATIC_POD_PATH, type ManifestKind, type ManifestOptions } from './generate.js';

const EXIT_BAD_INPUT = 2;

type Flag = { kind: 'string'; set: (o: ManifestOptions, v: string) => void } | { kind: 'bool'; set: (o: ManifestOptions, v: boolean) => void };

const FLAGS: Record<string, Flag> = {
  image: { kind: 'string', set: (o, v) => (o.image = v) },
  'super-admin': { kind: 'bool', set: (o, v) => (o.superAdmin = v) },
  'sysctl-init': { kind: 'bool', set: (o, v) => (o.sysctlInit = v) },
  'in-cluster': { kind: 'bool', set: (o, v) => (o.inCluster = v) },
  inCluster: { kind: 'bool', set: (o, v) => (o.inCluster = v) },
  'peer-key-secret': { kind: 'string', set: (o, v) => (o.peerKeySecret = v) },
  'frr-image': { kind: 'string', set: (o, v) => (o.frrImage = v) },
  'frr-vty-gid': { kind: 'string', set: (o, v) => (o.frrVtyGid = gid('--frr-vty-gid', v)) },
};

function gid(flag: string, v: string): number {
  // 0 is root's group, far more than the sockets' group; 2^32-1 is the kernel's "no group".
  if (!/^\d{1,10}$/.test(v) || Number(v) < 1 || Number(v) > 0xfffffffe) throw new ConfigError(flag, v, 'must be a group id from 1 to 4294967294');
  return Number(v);
}

export interface SplitArgs {
  options: ManifestOptions;
  /** Everything that is not a manifest flag: settings for loadConfig. */
  settings: string[];
}

/** Takes the manifest's own flags out of argv; the rest are settings, as for `vipd run`. */
export function splitManifestArgs(argv: readonly string[]): SplitArgs {
  const options = defaultManifestOptions();
  const settings: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    const flag = m ? FLAGS[m[1]!] : undefined;
    if (!m || !flag) {
      settings.push(arg);
      // A setting's separate value ("--interface eth0") goes along with it.
      if (m && m[2] === undefined && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) settings.push(argv[++i]!);
      continue;
    }
    let value = m[2];
    if (flag.kind === 'bool') {
      if (value === undefined) value = 'true';
      const v = value.toLowerCase();
      if (!['true', 'false'].includes(v)) throw new ConfigError(`--${m[1]}`, value, 'must be true or false');
      flag.set(options, v === 'true');
    } else {
      if (value === undefined) {
        value = argv[i + 1];
        if (value === undefined || value.startsWith('--')) throw new ConfigError(`--${m[1]}`, undefined, 'needs a value');
        i++;
      }
      if (value === '') throw new ConfigError(`--${m[1]}`, value, 'must not be empty');
      flag.set(options, value);
    }
  }
  return { options, settings };
}

export function manifestHelp(): string {
  const d = defaultManifestOptions();
  return `vipd manifest pod|daemonset|rbac [--setting=value ...] [manifest flags]

Prints Kubernetes YAML built from the same settings as 'vipd run' (environment with kube-vip's
names, or flags; flags win; 'vipd run --help' lists them). The settings are validated exactly as
'vipd run' validates them, and written into the container's environment under kube-vip's names.

  pod         Static pod for ${STATIC_POD_PATH} on each control-plane node (hostNetwork,
              NET_ADMIN + NET_RAW only, kubeconfig mounted from ${KUBEADM_ADMIN_CONF}).
  daemonset   DaemonSet on control-plane nodes, API access as ServiceAccount kube-system/vipd
              (kubeconfig from ConfigMap vipd-kubeconfig at ${SA_KUBECONFIG_PATH}). A worker
              configuration (Services only, outside vip_peers) gives vipd-workers on the other
              nodes, with ConfigMap vipd-workers-kubeconfig.
              With bgp_enable=true, pod and daemonset add an FRR sidecar (docs/bgp.md).
  rbac        ServiceAccount, ClusterRole, Role and bindings for the DaemonSet.

Manifest flags:
  --image=REF              container image (default ${d.image})
  --super-admin            pod: also mount ${KUBEADM_SUPER_ADMIN_CONF}, as k8s_fallback_config_file.
                           Only for the first 'kubeadm init' node (kubeadm >= 1.29): the agent
                           uses it while ${KUBEADM_ADMIN_CONF} is refused, then moves to admin.conf.
  --sysctl-init=false      leave out the privileged init container that sets
                           net.ipv4.conf.*.arp_ignore=1 and arp_announce=2 (needed by
                           vip_responder=agent for IPv4); set them on the host instead
  --in-cluster=false       daemonset: mount the host's k8s_config_file instead of using the
                           ServiceAccount
  --peer-key-secret=NAME   daemonset with vip_peers: Secret with the peer key under "key"
                           (default ${d.peerKeySecret})
  --frr-image=REF          bgp_enable: image of the FRR sidecar (zebra, bgpd, bfdd) that vipd
                           configures over the vty sockets in bgp_frr_socket_dir
                           (default ${d.frrImage})
  --frr-vty-gid=GID        bgp_enable: gid of group frrvty in that image, given to the pod so vipd
                           may connect to the sockets (default ${d.frrVtyGid}, the official image's)

vip_nodename is always taken from the pod's spec.nodeName. With vip_peers, validation needs this
node to be one of the peers: when generating elsewhere, pass --vip_nodename=<one of them>.

Example (first control-plane node, before 'kubeadm init'):
  vipd manifest pod --address=192.0.2.10 --vip_leaderelection=true --cp_enable=true --super-admin \\
    > ${STATIC_POD_PATH}
`;
}

export interface Io {
  env: Readonly<Record<string, string | undefined>>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export function manifestCommand(argv: readonly string[], io: Io = { env: process.env, stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }): number {
  const [kind, ...rest] = argv;
  if (kind === undefined || kind === '--help' || kind === '-h' || kind === 'help' || rest.includes('--help') || rest.includes('-h')) {
    io.stdout(manifestHelp());
    return kind === undefined ? EXIT_BAD_INPUT : 0;
  }
  if (!(MANIFEST_KINDS as readonly string[]).includes(kind)) {
    io.stderr(`vipd: unknown manifest ${JSON.stringify(kind)}; expected ${MANIFEST_KINDS.join(', ')}\n`);
    return EXIT_BAD_INPUT;
  }
  try {
    const { options, settings } = splitManifestArgs(rest);
    const out = generateManifest(kind as ManifestKind, io.env, settings, options, rest);
    for (const w of out.warnings) io.stderr(`vipd: warning: ${w}\n`);
    io.stdout(out.yaml);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`vipd: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
}
