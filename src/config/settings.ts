/**
 * Every setting vipd reads, in one table: its kube-vip name (the environment variable), its flag,
 * default and meaning. `--help`, the manifest generator and docs/settings.md all come from here,
 * so a setting cannot exist in one place and not another.
 *
 * Parsing is pure: raw strings in, typed values or a ConfigError out. Nothing here touches the host.
 */
import { hostname } from 'node:os';
import { familyOf } from '../net/ip.js';
import type { ListenAddress } from '../observe/http.js';

export type { ListenAddress };

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly value: string | undefined,
    readonly rule: string,
  ) {
    super(value === undefined ? `invalid setting ${setting}: ${rule}` : `invalid setting ${setting}=${JSON.stringify(value)}: ${rule}`);
    this.name = 'ConfigError';
  }
}

export type Group = 'vip' | 'election' | 'lease' | 'health' | 'peers' | 'services' | 'bgp' | 'observe';

export interface Setting<T> {
  /** kube-vip's environment variable name where one exists; vipd's own names follow its style. */
  readonly env: string;
  readonly aliases?: readonly string[];
  /** Extra flag spellings (kube-vip's flags); `--<env>` and its kebab-case always work too. */
  readonly flags?: readonly string[];
  readonly group: Group;
  readonly help: string;
  /** Shown in --help and docs; undefined = no default. */
  readonly defaultText?: string;
  readonly parse: (raw: string | undefined, setting: string) => T;
  /** True when kube-vip has this setting under the same name. */
  readonly kubeVip?: boolean;
}

function fail(setting: string, raw: string | undefined, rule: string): never {
  throw new ConfigError(setting, raw, rule);
}

const bool = (dflt: boolean) => (raw: string | undefined, s: string): boolean => {
  if (raw === undefined || raw === '') return dflt;
  const v = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return fail(s, raw, 'must be true or false');
};

const int = (dflt: number | undefined, min: number, max: number, unit = '') => (raw: string | undefined, s: string): number => {
  if (raw === undefined || raw === '') {
    if (dflt === undefined) return fail(s, raw, 'is required');
    return dflt;
  }
  if (!/^-?\d+$/.test(raw.trim())) fail(s, raw, `must be a whole number from ${min} to ${max}${unit}`);
  const n = Number(raw);
  if (n < min || n > max) fail(s, raw, `must be a whole number from ${min} to ${max}${unit}`);
  return n;
};

/** Seconds as kube-vip writes them (integers) or with a fraction, for tests and tuned labs. */
const seconds = (dflt: number, min: number, max: number) => (raw: string | undefined, s: string): number => {
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw.trim().replace(/s$/, ''));
  if (!Number.isFinite(n) || n < min || n > max) fail(s, raw, `must be a number of seconds from ${min} to ${max}`);
  return n;
};

const str = (dflt: string) => (raw: string | undefined): string => (raw === undefined || raw === '' ? dflt : raw);

const optStr = (raw: string | undefined): string | undefined => (raw === undefined || raw === '' ? undefined : raw);

const oneOf = <T extends string>(dflt: T, allowed: readonly T[]) => (raw: string | undefined, s: string): T => {
  if (raw === undefined || raw === '') return dflt;
  if (!(allowed as readonly string[]).includes(raw)) fail(s, raw, `must be one of ${allowed.join(', ')}`);
  return raw as T;
};

const ipList = (raw: string | undefined, s: string): string[] => {
  if (raw === undefined || raw.trim() === '') return [];
  const ips = raw.split(',').map((x) => x.trim());
  for (const ip of ips) {
    if (familyOf(ip) === undefined) fail(s, raw, `"${ip}" is not an IPv4 or IPv6 address (a comma-separated list of IP addresses is allowed)`);
  }
  if (new Set(ips).size !== ips.length) fail(s, raw, 'lists the same address twice');
  return ips;
};

const prefixList = (raw: string | undefined, s: string): number[] | undefined => {
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.split(',').map((p) => {
    const t = p.trim().replace(/^\//, '');
    if (!/^\d+$/.test(t)) fail(s, raw, 'must be a prefix length (0-32 for IPv4, 0-128 for IPv6), or a comma list of them, one per address');
    return Number(t);
  });
};

const interfaceName = (raw: string | undefined, s: string): string | undefined => {
  if (raw === undefined || raw === '') return undefined;
  // Linux IFNAMSIZ is 16 including the NUL; '/' and whitespace are never valid.
  if (raw.length > 15 || /[\s/:]/.test(raw) || raw === '.' || raw === '..') fail(s, raw, 'must be a network interface name (1-15 characters, no spaces, "/" or ":")');
  return raw;
};

const logLevel = (raw: string | undefined, s: string): string => {
  if (raw === undefined || raw === '') return 'info';
  // kube-vip uses slog numbers: -4 debug, 0 info, 4 warn, 8 error.
  const numeric: Record<string, string> = { '-4': 'debug', '0': 'info', '4': 'warn', '8': 'error', '5': 'debug' };
  if (numeric[raw]) return numeric[raw];
  if (['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(raw)) return raw;
  return fail(s, raw, 'must be one of debug, info, warn, error (or kube-vip\'s -4, 0, 4, 8)');
};

/** prometheus_server: ":2112", "127.0.0.1:2112", "[::1]:2112"; empty disables the listener. */
export const parseListenAddress = (raw: string | undefined, s: string): ListenAddress | undefined => {
  if (raw === undefined) return { host: undefined, port: 2112 };
  if (raw === '') return undefined;
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]*|[a-zA-Z0-9.-]*):(\d{1,5})$/.exec(raw);
  if (!m || Number(m[2]) > 65535) fail(s, raw, 'must be [host]:port, for example :2112 or 127.0.0.1:2112, or empty to disable');
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? undefined : host, port: Number(m[2]) };
};

export function formatListenAddress(a: ListenAddress | undefined): string {
  if (a === undefined) return '';
  const host = a.host === undefined ? '' : a.host.includes(':') ? `[${a.host}]` : a.host;
  return `${host}:${a.port}`;
}

export interface PeerSpec {
  name: string;
  host: string;
  port: number;
}

const peerList = (raw: string | undefined, s: string): PeerSpec[] => {
  if (raw === undefined || raw.trim() === '') return [];
  const rule = 'must be a comma list of name=address:port, for example cp1=198.18.0.11:7946,cp2=198.18.0.12:7946 (IPv6: cp1=[2001:db8::11]:7946)';
  const peers = raw.split(',').map((item) => {
    const m = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)=(\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d{1,5})$/.exec(item.trim());
    if (!m) return fail(s, raw, rule);
    const host = m[4] ?? m[5] ?? '';
    const port = Number(m[6]);
    if (familyOf(host) === undefined || port < 1 || port > 65535) return fail(s, raw, rule);
    return { name: m[1] ?? '', host, port };
  });
  if (new Set(peers.map((p) => p.name)).size !== peers.length) fail(s, raw, 'names the same peer twice');
  return peers;
};

/** An autonomous system number: 1 to 4294967295 (4-byte ASNs), asplain. */
const asn = (dflt: number) => int(dflt, 1, 4294967295, '');

export interface BgpPeerSpec {
  address: string;
  asn: number;
  password?: string;
  multihop?: boolean;
}

/** kube-vip's bgp_peers: address:AS[:password[:multihop]], comma separated; IPv6 in brackets. */
const bgpPeerList = (raw: string | undefined, s: string): BgpPeerSpec[] => {
  if (raw === undefined || raw.trim() === '') return [];
  const rule = 'must be a comma list of address:AS[:password[:multihop]], for example 198.18.0.1:65000::false (IPv6: [2001:db8::1]:65000)';
  const peers = raw.split(',').map((item) => {
    const m = /^(\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d{1,10})(?::([^:]*)(?::(true|false))?)?$/.exec(item.trim());
    if (!m) return fail(s, raw, rule);
    const address = m[2] ?? m[3] ?? '';
    const n = Number(m[4]);
    if (familyOf(address) === undefined || n < 1 || n > 4294967295) return fail(s, raw, rule);
    return { address, asn: n, ...(m[5] ? { password: m[5] } : {}), ...(m[6] === 'true' ? { multihop: true } : {}) };
  });
  if (new Set(peers.map((p) => p.address)).size !== peers.length) fail(s, raw, 'names the same peer address twice');
  return peers;
};

const optIp = (raw: string | undefined, s: string): string | undefined => {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (familyOf(raw.trim()) === undefined) fail(s, raw, 'must be an IPv4 or IPv6 address');
  return raw.trim();
};

const optIpv4 = (raw: string | undefined, s: string): string | undefined => {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (familyOf(raw.trim()) !== 4) fail(s, raw, 'must be an IPv4 address (a BGP router ID is written as one, even on an IPv6-only node)');
  return raw.trim();
};

const objectRef = (dflt: string) => (raw: string | undefined, s: string): string => {
  if (raw === undefined || raw === '') return dflt;
  const dns = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
  const parts = raw.split('/');
  if (parts.length > 2 || !parts.every((p) => dns.test(p))) fail(s, raw, 'must be a name or namespace/name (DNS-1123, lower case)');
  return parts.length === 1 ? `kube-system/${raw}` : raw;
};

const nodeName = (raw: string | undefined, s: string): string => {
  const v = (raw === undefined || raw === '' ? hostname() : raw).toLowerCase();
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v)) fail(s, raw ?? v, 'must be a DNS-1123 name (the Kubernetes node name)');
  return v;
};

/** The table. Order is the order of --help and docs. */
export const SETTINGS = {
  address: { env: 'address', aliases: ['vip_address'], flags: ['address', 'vip'], group: 'vip', kubeVip: true, help: 'The virtual IP(s) to hold: one address or a comma list (IPv4 and/or IPv6).', parse: ipList },
  interface: { env: 'vip_interface', flags: ['interface'], group: 'vip', kubeVip: true, help: 'Interface to announce the VIP on. Unset: the interface the kernel routes the VIP\'s subnet through.', defaultText: '(route lookup)', parse: interfaceName },
  subnet: { env: 'vip_subnet', aliases: ['vip_cidr'], flags: ['vipSubnet', 'cidr'], group: 'vip', kubeVip: true, help: 'Prefix length of the VIP address, one per address.', defaultText: '32 / 128', parse: prefixList },
  arp: { env: 'vip_arp', flags: ['arp'], group: 'vip', kubeVip: true, help: 'Layer-2 mode (gratuitous ARP / unsolicited NA). false only together with bgp_enable=true (kube-vip\'s BGP manifests set it so); bgp_enable alone chooses the mode.', defaultText: 'true', parse: bool(true) },
  port: { env: 'port', flags: ['port'], group: 'vip', kubeVip: true, help: 'Kubernetes API server port behind the VIP.', defaultText: '6443', parse: int(6443, 1, 65535) },
  arpRate: { env: 'vip_arpRate', flags: ['arpRate'], group: 'vip', kubeVip: true, help: 'Milliseconds between refresh announcements while holding (after the takeover burst).', defaultText: '3000', parse: int(3000, 500, 600000, ' ms') },
  responder: { env: 'vip_responder', group: 'vip', help: 'Who answers ARP/ND for the VIP. agent: the VIP sits on lo, the kernel is told not to answer (arp_ignore=1, arp_announce=2) and vipd answers only while its grant is live, so a killed or frozen agent is silent at once. kernel: the VIP sits on the interface with a kernel lifetime (vip_address_lifetime) that vipd keeps refreshing.', defaultText: 'agent', parse: oneOf('agent', ['agent', 'kernel'] as const) },
  addressLifetime: { env: 'vip_address_lifetime', group: 'vip', help: 'kernel responder only: seconds the kernel keeps the VIP after the last refresh, which bounds how long a killed or frozen agent keeps answering.', defaultText: '1', parse: int(1, 1, 60, ' s') },
  loAddressLifetime: { env: 'vip_lo_address_lifetime', group: 'vip', help: 'agent responder only: seconds the kernel keeps the VIP on lo after the agent\'s last refresh (every quarter of it). Not a safety bound (a dead agent is silent at once); it removes the address a killed agent leaves behind (kubeadm reset SIGKILLs it), so the node stops delivering VIP traffic to itself.', defaultText: '10', parse: int(10, 2, 3600, ' s') },
  probeMs: { env: 'vip_probe_ms', group: 'vip', help: 'Cold start only: milliseconds to probe for another owner of the VIP before the first claim (0 disables). A failover never probes.', defaultText: '300', parse: int(300, 0, 2000, ' ms') },
  claimOnConflict: { env: 'vip_claim_on_conflict', group: 'vip', help: 'Claim the VIP even when the cold-start probe found another owner. Default: report, do not claim, probe again later.', defaultText: 'false', parse: bool(false) },
  conflictRetryMs: { env: 'vip_conflict_retry_ms', group: 'vip', help: 'Milliseconds between cold-start probes while another owner answers for the VIP.', defaultText: '2000', parse: int(2000, 100, 600000, ' ms') },
  leaderElection: { env: 'vip_leaderelection', flags: ['leaderElection'], group: 'election', kubeVip: true, help: 'Elect one holder (Lease, and peers when vip_peers is set). false: hold the VIP unconditionally (standalone).', defaultText: 'false', parse: bool(false) },
  nodeName: { env: 'vip_nodename', flags: ['nodeName'], group: 'election', kubeVip: true, help: 'This node\'s identity: Lease holderIdentity and peer id. The manifests fill it from spec.nodeName.', defaultText: '(hostname, lower-cased)', parse: nodeName },
  controlPlane: { env: 'cp_enable', flags: ['controlplane'], group: 'election', kubeVip: true, help: 'Control-plane VIP: hold it only while the local API server answers /livez.', defaultText: 'false', parse: bool(false) },
  leaseNamespace: { env: 'cp_namespace', flags: ['namespace'], group: 'lease', kubeVip: true, help: 'Namespace of the Lease.', defaultText: 'kube-system', parse: str('kube-system') },
  leaseName: { env: 'vip_leasename', flags: ['leaseName'], group: 'lease', kubeVip: true, help: 'Name of the Lease, or namespace/name.', defaultText: 'plndr-cp-lock', parse: str('plndr-cp-lock') },
  leaseDuration: { env: 'vip_leaseduration', flags: ['leaseDuration'], group: 'lease', kubeVip: true, help: 'Seconds a candidate waits, after it last saw the Lease change, before taking it.', defaultText: '15', parse: seconds(15, 0.5, 3600) },
  renewDeadline: { env: 'vip_renewdeadline', flags: ['renewDeadline', 'leaseRenewDuration'], group: 'lease', kubeVip: true, help: 'Seconds the holder keeps the VIP after the start of its last successful renew.', defaultText: '10', parse: seconds(10, 0.3, 3600) },
  retryPeriod: { env: 'vip_retryperiod', flags: ['retryPeriod', 'leaseRetry'], group: 'lease', kubeVip: true, help: 'Seconds between Lease attempts.', defaultText: '2', parse: seconds(2, 0.1, 600) },
  fallbackKubeconfig: { env: 'k8s_fallback_config_file', group: 'lease', help: 'Kubeconfig used while k8s_config_file is missing or refused (401/403): kubeadm\'s super-admin.conf on the first node until kubeadm init finishes. Both files are watched; the switch needs no restart.', parse: optStr },
  kubeconfig: { env: 'k8s_config_file', flags: ['k8sConfigPath', 'kubeconfig'], group: 'lease', kubeVip: true, help: 'Kubeconfig used to reach the API (kubeadm: /etc/kubernetes/admin.conf, or super-admin.conf on the first node until init finishes). Re-read when it changes.', defaultText: '/etc/kubernetes/admin.conf', parse: str('/etc/kubernetes/admin.conf') },
  apiEndpoint: { env: 'kubernetes_addr', group: 'lease', kubeVip: true, help: 'API endpoint the agent uses instead of the kubeconfig\'s server (which is usually the VIP itself). Default: this node\'s API server.', defaultText: 'https://127.0.0.1:<port>', parse: optStr },
  healthUrl: { env: 'vip_health_url', group: 'health', help: 'Local API server health URL (control-plane mode).', defaultText: 'https://127.0.0.1:<port>/livez', parse: optStr },
  healthIntervalMs: { env: 'vip_health_interval_ms', group: 'health', help: 'Milliseconds between health probes.', defaultText: '1000', parse: int(1000, 100, 60000, ' ms') },
  healthFailures: { env: 'vip_health_failures', group: 'health', help: 'Consecutive failed probes before the node steps down.', defaultText: '3', parse: int(3, 1, 100) },
  peers: { env: 'vip_peers', group: 'peers', help: 'Peer agents for etcd-less voting, name=address:port, including this node.', parse: peerList },
  peerKeyFile: { env: 'vip_peer_key_file', group: 'peers', help: 'File holding the shared HMAC-SHA256 key for peer messages: at least 32 random bytes written as hex or base64 (head -c 32 /dev/urandom | base64).', parse: optStr },
  peerHeartbeatMs: { env: 'vip_peer_heartbeat_ms', group: 'peers', help: 'Milliseconds between the peer leader\'s heartbeats.', defaultText: '50', parse: int(50, 10, 10000, ' ms') },
  peerElectionTimeoutMs: { env: 'vip_peer_election_timeout_ms', group: 'peers', help: 'E: how long a peer\'s promise to a leader lasts, and so how long a follower waits after the leader went silent before campaigning (plus a random 0-E/4). The leader\'s grant is a little shorter than E.', defaultText: '200', parse: int(200, 50, 120000, ' ms') },
  peerBootstrap: { env: 'vip_peer_bootstrap', group: 'peers', help: 'First kubeadm init only: this single node may hold the VIP without a peer majority (after listening 2E for peers); the exception ends as soon as a majority of peers acknowledges it.', defaultText: 'false', parse: bool(false) },
  svcEnable: { env: 'svc_enable', group: 'services', kubeVip: true, help: 'Give type: LoadBalancer Services an address from the pools, write it into their status and announce each address from one node (docs/services.md).', defaultText: 'false', parse: bool(false) },
  svcNamespace: { env: 'svc_namespace', group: 'services', kubeVip: true, help: 'Only Services (and their EndpointSlices) in this namespace. Empty: every namespace.', defaultText: '(all)', parse: str('') },
  lbClassName: { env: 'lb_class_name', group: 'services', kubeVip: true, help: 'Our spec.loadBalancerClass; Services of another class are never touched. kube-vip\'s is kube-vip.io/kube-vip-class (set it to take over kube-vip\'s Services).', defaultText: 'vipd.io/lb', parse: str('vipd.io/lb') },
  lbClassOnly: { env: 'lb_class_only', group: 'services', kubeVip: true, help: 'Only Services of our class; Services without a class are left alone.', defaultText: 'false', parse: bool(false) },
  lbClassLegacyHandling: { env: 'lb_class_legacy_handling', group: 'services', kubeVip: true, help: 'kube-vip\'s rule: Services without a class are ours unless lb_class_only is set. false: the class must match.', defaultText: 'true', parse: bool(true) },
  svcMembership: { env: 'svc_membership', group: 'services', help: 'Who may announce which service IP. peers: grants from the control-plane agents (vip_peers), per address, with the peer timing: a dead node\'s addresses move in well under a second and keep moving while the API is down. lease: a member Lease per node (about vip_leaseduration). auto: peers when vip_peers is set, else lease.', defaultText: 'auto', parse: oneOf('auto', ['auto', 'peers', 'lease'] as const) },
  svcGrantPort: { env: 'svc_grant_port', group: 'services', help: 'UDP port the control-plane agents answer service-IP claims on (svc_membership=peers), on their vip_peers addresses.', defaultText: '7947', parse: int(7947, 1, 65535, '') },
  svcPoolConfigMap: { env: 'svc_pool_configmap', group: 'services', help: 'The address pools: a ConfigMap in kube-vip-cloud-provider\'s format, name (in kube-system) or namespace/name. vipd\'s RBAC grants read access in kube-system only.', defaultText: 'kube-system/kubevip', parse: objectRef('kube-system/kubevip') },
  svcMetallb: { env: 'svc_metallb', group: 'services', help: 'Also read MetalLB\'s IPAddressPool and L2Advertisement objects (metallb.io/v1beta1) as address pools, next to svc_pool_configmap (docs/migration-from-metallb.md). Read only; where the CRDs are not installed vipd runs without them and looks again every minute.', defaultText: 'true', parse: bool(true) },
  svcMetallbNamespace: { env: 'svc_metallb_namespace', group: 'services', help: 'Read the MetalLB objects in this namespace only (MetalLB keeps them in its own, usually metallb-system). Empty: every namespace.', defaultText: '(all)', parse: str('') },
  bgpEnable: { env: 'bgp_enable', group: 'bgp', kubeVip: true, help: 'Announce over BGP through a local FRR (bgpd, bfdd) instead of ARP/NA: every node whose API server is healthy announces the control-plane VIP, and the router spreads traffic over them (ECMP). vipd configures FRR over its vty sockets and never speaks BGP itself (docs/bgp.md).', defaultText: 'false', parse: bool(false) },
  bgpRouterId: { env: 'bgp_routerid', group: 'bgp', kubeVip: true, help: 'BGP router ID (an IPv4 address).', defaultText: '(the interface\'s IPv4 address)', parse: optIpv4 },
  bgpAs: { env: 'bgp_as', group: 'bgp', kubeVip: true, help: 'This node\'s AS number.', defaultText: '65000', parse: asn(65000) },
  bgpPeerAddress: { env: 'bgp_peeraddress', group: 'bgp', kubeVip: true, help: 'One BGP peer (the router); bgp_peers lists several.', parse: optIp },
  bgpPeerAs: { env: 'bgp_peeras', group: 'bgp', kubeVip: true, help: 'AS number of bgp_peeraddress.', defaultText: '65000', parse: asn(65000) },
  bgpPeerPass: { env: 'bgp_peerpass', group: 'bgp', kubeVip: true, help: 'TCP MD5 password of bgp_peeraddress.', parse: optStr },
  bgpMultihop: { env: 'bgp_multihop', group: 'bgp', kubeVip: true, help: 'bgp_peeraddress is not on a connected network (eBGP multihop).', defaultText: 'false', parse: bool(false) },
  bgpPeers: { env: 'bgp_peers', group: 'bgp', kubeVip: true, help: 'BGP peers as address:AS[:password[:multihop]], comma separated (IPv6 in brackets). IPv4 peers carry the IPv4 prefixes, IPv6 peers the IPv6 ones.', parse: bgpPeerList },
  bgpSourceIp: { env: 'bgp_sourceip', group: 'bgp', kubeVip: true, help: 'Source address of the BGP sessions (update-source).', parse: optIp },
  bgpHoldTime: { env: 'bgp_hold_time', group: 'bgp', kubeVip: true, help: 'BGP hold time in seconds; 0 keeps FRR\'s default (180 s in Debian\'s build). Without BFD this is how long a router keeps sending to a node that lost power.', defaultText: '0', parse: int(0, 0, 65535, ' s') },
  bgpKeepalive: { env: 'bgp_keepalive_interval', group: 'bgp', kubeVip: true, help: 'BGP keepalive interval in seconds; 0 keeps FRR\'s default (60 s). Set with bgp_hold_time.', defaultText: '0', parse: int(0, 0, 21845, ' s') },
  bgpBfd: { env: 'bgp_bfd', group: 'bgp', help: 'Run BFD on every BGP session (FRR\'s bfdd): a router drops a dead node\'s routes after bgp_bfd_interval_ms x bgp_bfd_multiplier instead of the hold time. The router must run BFD too.', defaultText: 'true', parse: bool(true) },
  bgpBfdIntervalMs: { env: 'bgp_bfd_interval_ms', group: 'bgp', help: 'BFD receive and transmit interval in milliseconds.', defaultText: '100', parse: int(100, 10, 60000, ' ms') },
  bgpBfdMultiplier: { env: 'bgp_bfd_multiplier', group: 'bgp', help: 'BFD packets missed before the session is down.', defaultText: '3', parse: int(3, 2, 255, '') },
  bgpWithdrawGraceMs: { env: 'bgp_withdraw_grace_ms', group: 'bgp', help: 'On SIGTERM: after FRR has sent the withdrawal, milliseconds to keep serving the VIP before removing it, so the router has reprogrammed its forwarding and no flow it still hashes here is refused.', defaultText: '200', parse: int(200, 0, 10000, ' ms') },
  bgpFrrSocketDir: { env: 'bgp_frr_socket_dir', group: 'bgp', help: 'Directory of FRR\'s vty sockets (bgpd.vty, bfdd.vty), shared with the FRR sidecar.', defaultText: '/var/run/frr', parse: str('/var/run/frr') },
  stateDir: { env: 'vip_state_dir', group: 'observe', help: 'Directory for state that must survive an API outage (known API endpoints, learned peers).', defaultText: '/var/lib/vipd', parse: str('/var/lib/vipd') },
  metricsAddress: { env: 'prometheus_server', flags: ['prometheusHTTPServer'], group: 'observe', kubeVip: true, help: 'Listen address for /metrics, /healthz, /readyz and /status (vipd status); empty disables.', defaultText: ':2112', parse: parseListenAddress },
  logLevel: { env: 'vip_loglevel', flags: ['log'], group: 'observe', kubeVip: true, help: 'Log level: debug, info, warn, error (kube-vip\'s numbers accepted).', defaultText: 'info', parse: logLevel },
} satisfies Record<string, Setting<unknown>>;

export type SettingKey = keyof typeof SETTINGS;
export type RawSettings = { [K in SettingKey]: ReturnType<(typeof SETTINGS)[K]['parse']> };

/**
 * kube-vip settings that have no vipd equivalent. A kube-vip manifest can be reused as it is when
 * they hold their inert value; any other value is refused rather than silently ignored.
 */
export const KUBE_VIP_INERT: Record<string, readonly string[]> = {
  vip_ddns: ['false', ''],
  dns_mode: ['first', ''],
  dhcp_mode: ['ipv4', ''],
  vip_bgp: ['false', ''],
  vip_routingtable: ['false', ''],
  lb_enable: ['false', ''],
  enable_node_labeling: ['false', ''],
  vip_preserve_on_leadership_loss: ['false', ''],
  svc_election: ['false', ''],
  vip_loseleadership: ['false', ''],
  cp_detect: ['false', ''],
  egress_withnftables: ['false', ''],
};

/** A setting's definition, widened so optional fields can be read uniformly. */
export function settingDef(key: SettingKey): Setting<unknown> {
  return SETTINGS[key] as Setting<unknown>;
}
