/**
 * Settings from the environment (kube-vip's names) and flags, validated as a whole.
 * Flags beat the environment (kube-vip has it the other way round; vipd follows the usual rule,
 * and kube-vip manifests only use the environment, so reused manifests behave the same).
 *
 * This module is the one place settings are validated: `loadConfig` is pure (it never looks at the
 * host) and every rule it can know — addresses, ports, listen addresses, the Lease and peer timing
 * rules — ends in a ConfigError naming the setting. It converts the Lease timing to milliseconds
 * once (`leaseTimingOf`) and checks it once; the checked results travel in Config
 * (`leaseTiming`, `peerConfig`) so nobody downstream converts or checks again.
 * What only the host can answer (capabilities, the interface, sysctls) is ./host.ts; the peer key
 * file's contents are ./peer-key.ts. The agent runs both before it changes anything.
 */
import { checkLeaseTiming, type LeaseTiming, type LeaseTimingInput, type TimingSetting } from '../election/lease/state.js';
import { checkPeerConfig, type PeerConfig } from '../election/peers/timing.js';
import { familyBits, familyOf, hostPort } from '../net/ip.js';
import type { VipSpec } from '../vip/holder.js';
import { ConfigError, formatListenAddress, KUBE_VIP_INERT, SETTINGS, settingDef, type BgpPeerSpec, type ListenAddress, type PeerSpec, type RawSettings, type SettingKey } from './settings.js';

export { ConfigError, formatListenAddress, type ListenAddress } from './settings.js';

export type { VipSpec };

export interface Config extends Omit<RawSettings, 'address' | 'subnet' | 'apiEndpoint' | 'healthUrl'> {
  vips: VipSpec[];
  apiEndpoint: string;
  healthUrl: string;
  /** The Lease timing in ms, checked; present whenever a Lease is used (leader election, services). */
  leaseTiming?: LeaseTiming;
  /**
   * The peer core's configuration, checked; present when vip_peers is set. With `serviceMemberOnly`
   * this node is not one of vip_peers: it only announces Services (a worker), with the peers as
   * the voters that grant its service IPs, and `self` is not in `peers`.
   */
  peerConfig?: PeerConfig;
  serviceMemberOnly?: boolean;
  /** bgp_enable: the checked BGP settings, peers merged (bgp_peeraddress first). */
  bgp?: BgpConfig;
}

export interface BgpConfig {
  asn: number;
  /** Absent: the interface's IPv4 address, which only the host knows. */
  routerId?: string;
  peers: BgpPeerSpec[];
  sourceIp?: string;
  /** Both or neither; absent keeps FRR's defaults. */
  timers?: { keepaliveSec: number; holdSec: number };
  bfd: { intervalMs: number; multiplier: number } | false;
  socketDir: string;
  withdrawGraceMs: number;
}

/** The BGP settings checked as a whole (loadConfig's part for bgp_enable). */
export function bgpConfigOf(r: RawSettings): BgpConfig | undefined {
  if (!r.bgpEnable) {
    if (!r.arp) throw new ConfigError('vip_arp', 'false', 'needs bgp_enable=true: without BGP, vipd announces in layer 2 (ARP/NA)');
    return undefined;
  }
  const peers: BgpPeerSpec[] = [];
  if (r.bgpPeerAddress) {
    peers.push({ address: r.bgpPeerAddress, asn: r.bgpPeerAs, ...(r.bgpPeerPass ? { password: r.bgpPeerPass } : {}), ...(r.bgpMultihop ? { multihop: true } : {}) });
  }
  for (const p of r.bgpPeers) {
    if (peers.some((q) => q.address === p.address)) throw new ConfigError('bgp_peers', p.address, 'repeats bgp_peeraddress; name each peer once');
    peers.push(p);
  }
  if (peers.length === 0) throw new ConfigError('bgp_peers', undefined, 'is required with bgp_enable=true: the router(s) to announce to, for example bgp_peers=198.18.0.1:65000 (or bgp_peeraddress + bgp_peeras)');
  if (r.responder === 'kernel') throw new ConfigError('vip_responder', 'kernel', 'cannot be used with bgp_enable=true: in BGP mode the VIP sits on lo and FRR announces it; leave vip_responder unset');
  const { bgpHoldTime: hold, bgpKeepalive: keepalive } = r;
  let timers: BgpConfig['timers'];
  if (hold !== 0 || keepalive !== 0) {
    if (hold < 3) throw new ConfigError('bgp_hold_time', String(hold), 'must be at least 3 seconds when BGP timers are set (with bgp_keepalive_interval)');
    if (keepalive < 1 || keepalive * 3 > hold) throw new ConfigError('bgp_keepalive_interval', String(keepalive), `must be from 1 to a third of bgp_hold_time (${Math.floor(hold / 3)} s)`);
    timers = { keepaliveSec: keepalive, holdSec: hold };
  }
  return {
    asn: r.bgpAs,
    ...(r.bgpRouterId ? { routerId: r.bgpRouterId } : {}),
    peers,
    ...(r.bgpSourceIp ? { sourceIp: r.bgpSourceIp } : {}),
    ...(timers ? { timers } : {}),
    bfd: r.bgpBfd ? { intervalMs: r.bgpBfdIntervalMs, multiplier: r.bgpBfdMultiplier } : false,
    socketDir: r.bgpFrrSocketDir,
    withdrawGraceMs: r.bgpWithdrawGraceMs,
  };
}

/** Environment names with these prefixes are ours (or kube-vip's): an unknown one is a typo, not someone else's variable. */
export const OUR_PREFIXES = ['vip_', 'cp_', 'svc_', 'lb_', 'bgp_', 'k8s_', 'prometheus_'];

function kebab(s: string): string {
  return s.replace(/_/g, '-').replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
}

/** Every spelling that names a setting, mapped to its key. */
function names(): Map<string, SettingKey> {
  const m = new Map<string, SettingKey>();
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const def = settingDef(key);
    for (const n of [def.env, ...(def.aliases ?? [])]) m.set(n, key);
  }
  return m;
}

function flagNames(): Map<string, SettingKey> {
  const m = new Map<string, SettingKey>();
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const def = settingDef(key);
    const spellings = [def.env, kebab(def.env), ...(def.aliases ?? []).flatMap((a) => [a, kebab(a)]), ...(def.flags ?? [])];
    for (const f of spellings) m.set(f, key);
  }
  return m;
}

/** Parses `--name=value`, `--name value` and bare boolean `--name`; returns the raw strings by key. */
function parseFlags(argv: readonly string[]): Map<SettingKey, { name: string; value: string }> {
  const known = flagNames();
  const out = new Map<SettingKey, { name: string; value: string }>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new ConfigError(arg, undefined, 'unexpected argument; settings are given as --name=value (see --help)');
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const key = known.get(name);
    if (!key) throw new ConfigError(`--${name}`, undefined, 'unknown setting (see --help for the list)');
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      const dflt = settingDef(key).defaultText;
      const isBool = dflt === 'true' || dflt === 'false';
      if (isBool && (next === undefined || next.startsWith('--'))) value = 'true';
      else if (next === undefined) throw new ConfigError(`--${name}`, undefined, 'needs a value');
      else {
        value = next;
        i++;
      }
    }
    out.set(key, { name: `--${name}`, value });
  }
  return out;
}

function checkEnv(env: Readonly<Record<string, string | undefined>>): Map<SettingKey, { name: string; value: string }> {
  const known = names();
  const out = new Map<SettingKey, { name: string; value: string }>();
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    const key = known.get(name);
    if (key) {
      const prev = out.get(key);
      if (prev && prev.value !== value) throw new ConfigError(name, value, `conflicts with ${prev.name}=${JSON.stringify(prev.value)}; set only one of them`);
      out.set(key, { name, value });
      continue;
    }
    const inert = KUBE_VIP_INERT[name];
    if (inert) {
      if (!inert.includes(value.toLowerCase())) throw new ConfigError(name, value, `is a kube-vip feature vipd does not have; remove it or set it to ${inert[0]}`);
      continue;
    }
    if (OUR_PREFIXES.some((p) => name.startsWith(p))) throw new ConfigError(name, value, 'unknown setting (see vipd run --help for the list)');
  }
  return out;
}

function validateVips(addresses: string[], prefixes: number[] | undefined): VipSpec[] {
  if (prefixes && prefixes.length !== 1 && prefixes.length !== addresses.length) {
    throw new ConfigError('vip_subnet', prefixes.join(','), `gives ${prefixes.length} prefix lengths for ${addresses.length} addresses; give one, or one per address`);
  }
  return addresses.map((ip, i) => {
    const family = familyOf(ip) ?? 4;
    const max = familyBits(family);
    const prefix = prefixes ? (prefixes.length === 1 ? prefixes[0]! : prefixes[i]!) : max;
    if (prefix < 1 || prefix > max) {
      throw new ConfigError('vip_subnet', String(prefix), `prefix length for ${ip} (IPv${family}) must be from 1 to ${max}`);
    }
    return { ip, family, prefix };
  });
}

/**
 * How long this node may still answer for the VIP after its grant ends, when the agent is dead or
 * frozen (docs/holder.md): 0 when the agent answers; the address lifetime plus the kernel's up to
 * one second of timer slack when the kernel does.
 */
export function lingerMs(c: Pick<RawSettings, 'responder' | 'addressLifetime'>): number {
  return c.responder === 'agent' ? 0 : (c.addressLifetime + 1) * 1000;
}

/** The Lease timing in milliseconds, from the settings in seconds: the one place they are converted. */
export function leaseTimingOf(c: Pick<RawSettings, 'leaseDuration' | 'renewDeadline' | 'retryPeriod' | 'responder' | 'addressLifetime'>): LeaseTimingInput {
  return { leaseDurationMs: c.leaseDuration * 1000, renewDeadlineMs: c.renewDeadline * 1000, retryPeriodMs: c.retryPeriod * 1000, lingerMs: lingerMs(c) };
}

/** The Lease timing rules' names for the settings (the linger and skew margin are derived, not set). */
export const LEASE_TIMING_NAMES: Record<TimingSetting, string> = {
  leaseDuration: 'vip_leaseduration',
  renewDeadline: 'vip_renewdeadline',
  retryPeriod: 'vip_retryperiod',
  linger: 'linger',
  skewMargin: 'skew margin',
};

/** The peer core's configuration (src/election/peers/timing.ts) from the settings. */
export function peerConfigOf(c: Pick<RawSettings, 'nodeName' | 'peers' | 'peerBootstrap' | 'peerHeartbeatMs' | 'peerElectionTimeoutMs' | 'responder' | 'addressLifetime'>): PeerConfig {
  return {
    self: c.nodeName,
    peers: c.peers.map((p) => p.name),
    bootstrap: c.peerBootstrap,
    heartbeatMs: c.peerHeartbeatMs,
    electionTimeoutMs: c.peerElectionTimeoutMs,
    lingerMs: lingerMs(c),
    // Bound on clock-rate error between nodes (1 %): far above NTP-disciplined hardware.
    skew: 0.01,
  };
}

export interface LoadOptions {
  /** `run` needs a VIP; `manifest` may be given one too, `help` needs none. */
  requireVip?: boolean;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>>, argv: readonly string[], opts: LoadOptions = {}): Config {
  const fromEnv = checkEnv(env);
  const fromFlags = parseFlags(argv);
  const raw = {} as Record<SettingKey, unknown>;
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const given = fromFlags.get(key) ?? fromEnv.get(key);
    const def = settingDef(key);
    raw[key] = def.parse(given?.value, given?.name ?? def.env);
  }
  const r = raw as RawSettings;

  // Services only (kube-vip's svc_enable without cp_enable): no VIP of its own, so the interface
  // cannot be found from one and must be named.
  if (r.address.length === 0 && r.svcEnable && !r.controlPlane) {
    if (r.interface === undefined) throw new ConfigError('vip_interface', undefined, 'is required with svc_enable=true and no address: the interface to announce Service addresses on');
  } else if (opts.requireVip !== false && r.address.length === 0) {
    throw new ConfigError('address', undefined, 'is required: the virtual IP to hold, for example address=198.18.0.100 (kube-vip\'s vip_address works too)');
  }
  const vips = validateVips(r.address, r.subnet);

  let leaseTiming: LeaseTiming | undefined;
  // bgp_enable: no Lease, but the API client's request timeout is derived from the same timing.
  if (r.leaderElection || r.svcEnable || r.peers.length > 0 || r.bgpEnable) {
    const checked = checkLeaseTiming(leaseTimingOf(r), LEASE_TIMING_NAMES);
    if (!checked.ok) {
      const first = checked.error.settings[0] ?? 'leaseDuration';
      // The user wrote seconds; name the value as written.
      const seconds = { leaseDuration: r.leaseDuration, renewDeadline: r.renewDeadline, retryPeriod: r.retryPeriod, linger: lingerMs(r) / 1000, skewMargin: 0 }[first];
      throw new ConfigError(LEASE_TIMING_NAMES[first], String(seconds), checked.error.rule);
    }
    leaseTiming = checked.timing;
  }

  let peerConfig: PeerConfig | undefined;
  let serviceMemberOnly = false;
  if (r.peers.length > 0) {
    if (!r.peers.some((p: PeerSpec) => p.name === r.nodeName)) {
      // A worker: Services only (no VIP of its own), its service IPs granted by the peers.
      serviceMemberOnly = r.svcEnable && !r.controlPlane && r.address.length === 0 && r.svcMembership !== 'lease';
      if (!serviceMemberOnly) {
        throw new ConfigError('vip_peers', r.peers.map((p) => p.name).join(','), `must include this node (vip_nodename=${r.nodeName}), unless it only announces Services (svc_enable=true, cp_enable=false, no address)`);
      }
      // The control plane's Lease steers the VIP and names the allocator; a worker holding it would take both from the peers.
      if (r.leaderElection) {
        throw new ConfigError('vip_leaderelection', 'true', `must be false on a Services-only member outside vip_peers (vip_nodename=${r.nodeName}): the control-plane Lease is for the peers, and its holder allocates the Service addresses`);
      }
    }
    if (!r.peerKeyFile) throw new ConfigError('vip_peer_key_file', undefined, 'is required when vip_peers is set: peer messages are authenticated with a shared key');
    peerConfig = peerConfigOf(r);
    // The timing rules are the same for a member that is not a peer; only the self check differs.
    const checked = checkPeerConfig(serviceMemberOnly ? { ...peerConfig, self: peerConfig.peers[0]! } : peerConfig);
    if (!checked.ok) throw new ConfigError(checked.error.settings[0] ?? 'vip_peers', checked.error.value, checked.error.rule);
  } else if (r.svcMembership === 'peers') {
    throw new ConfigError('svc_membership', 'peers', 'needs vip_peers and vip_peer_key_file: the control-plane agents grant the service IPs');
  } else if (r.peerBootstrap) {
    throw new ConfigError('vip_peer_bootstrap', 'true', 'needs vip_peers: bootstrap lets this node hold the VIP alone only until its peers appear');
  }

  // kube-vip accepts vip_leasename=namespace/name.
  const slash = r.leaseName.indexOf('/');
  if (slash !== -1) {
    const ns = r.leaseName.slice(0, slash);
    const name = r.leaseName.slice(slash + 1);
    if (!ns || !name || name.includes('/')) throw new ConfigError('vip_leasename', r.leaseName, 'must be a name, or namespace/name');
    r.leaseNamespace = ns;
    r.leaseName = name;
  }

  const bgp = bgpConfigOf(r);

  const { address: _a, subnet: _s, apiEndpoint, healthUrl, ...rest } = r;
  const api = apiEndpoint ?? `https://127.0.0.1:${r.port}`;
  return {
    ...rest,
    vips,
    apiEndpoint: api,
    healthUrl: healthUrl ?? `https://127.0.0.1:${r.port}/livez`,
    ...(leaseTiming ? { leaseTiming } : {}),
    ...(peerConfig ? { peerConfig } : {}),
    ...(serviceMemberOnly ? { serviceMemberOnly } : {}),
    ...(bgp ? { bgp } : {}),
  };
}

/** Settings as environment variables (kube-vip names), for the manifest generator and round trips. */
export function toEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {
    address: config.vips.map((v) => v.ip).join(','),
    vip_subnet: config.vips.map((v) => v.prefix).join(','),
  };
  const skip = new Set<SettingKey>(['address', 'subnet']);
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    if (skip.has(key)) continue;
    const v = (config as unknown as Record<string, unknown>)[key];
    if (key === 'metricsAddress') {
      // An unset listen address means "disabled", which the environment spells as empty.
      env[settingDef(key).env] = formatListenAddress(v as ListenAddress | undefined);
      continue;
    }
    if (v === undefined) continue;
    if (key === 'bgpPeers') {
      const peers = v as BgpPeerSpec[];
      if (peers.length) env[SETTINGS.bgpPeers.env] = peers.map((p) => `${hostPort(p.address, p.asn)}:${p.password ?? ''}:${p.multihop === true}`).join(',');
      continue;
    }
    if (key === 'peers') {
      const peers = v as PeerSpec[];
      if (peers.length) env[SETTINGS.peers.env] = peers.map((p) => `${p.name}=${hostPort(p.host, p.port)}`).join(',');
      continue;
    }
    env[settingDef(key).env] = String(v);
  }
  return env;
}
