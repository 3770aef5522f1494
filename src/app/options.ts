/**
 * Config → the typed option slices the agent's parts take, in milliseconds. Pure, and the only
 * place besides the config module that reads Config for the running agent: electors, holders and
 * the services coordinator never see it. The Lease and peer timing arrive here already converted
 * and checked (src/config/index.ts); nothing here converts or checks them again.
 */
import { join } from 'node:path';
import { canonicalIp, familyOf } from '../net/ip.js';
import { LEASE_TIMING_NAMES, type BgpConfig, type Config, type ListenAddress, type VipSpec } from '../config/index.js';
import type { LeaseTiming, TimingNames } from '../election/lease/state.js';
import { suggestedRequestTimeoutMs, type LivezGateOptions } from '../election/lease/setup.js';
import type { PeerAddress } from '../election/peers/driver.js';
import type { PeerConfig, PeerTiming } from '../election/peers/timing.js';
import type { ApiClientOptions } from '../k8s/client.js';
import type { InterfaceChoice } from '../config/host.js';
import type { Responder } from '../vip/holder.js';
import type { ServicesOptions } from '../services/coordinator.js';

/** What every Holder of this agent shares (the VIP and the interface come per holder). */
export interface HolderSettings {
  responder: Responder;
  lifetimeSec: number;
  probeMs: number;
  claimOnConflict: boolean;
  conflictRetryMs: number;
  /** Announcer: refresh interval after the takeover burst. */
  refreshMs: number;
}

export interface LeaseSlice {
  namespace: string;
  name: string;
  timing: LeaseTiming;
  timingNames: TimingNames;
  requestTimeoutMs: number;
}

export interface PeerSlice {
  cfg: PeerConfig;
  addresses: Record<string, PeerAddress>;
  keyFile: string;
  /** Where each peer answers service-IP claims (svc_grant_port on its vip_peers address). */
  grantAddresses: Record<string, PeerAddress>;
}

export interface AgentOptions {
  identity: string;
  vips: VipSpec[];
  host: InterfaceChoice & { strictArp: boolean };
  holder: HolderSettings;
  /** Absent when nothing needs the API (standalone, no services). */
  api?: Omit<ApiClientOptions, 'log' | 'clock'>;
  /** ecmp: BGP mode, every node with a healthy API server holds (announces) the VIP. */
  election: 'standalone' | 'lease' | 'hybrid' | 'ecmp';
  /** bgp_enable: FRR's settings; the holders put the VIPs on lo and FRR announces them. */
  bgp?: BgpConfig;
  lease?: LeaseSlice;
  livez: LivezGateOptions | false;
  eligibility: { intervalMs: number; timeoutMs: number };
  peers?: PeerSlice;
  /** A worker's grant member (not one of vip_peers): the peers are its voters. */
  grantMember?: { timing: PeerTiming; voters: Record<string, PeerAddress>; keyFile: string; bindHost: string };
  services?: ServicesOptions;
  observe?: ListenAddress;
}

export function agentOptions(config: Config): AgentOptions {
  const election = config.bgp ? 'ecmp' : config.peers.length > 0 && !config.serviceMemberOnly ? 'hybrid' : config.leaderElection ? 'lease' : 'standalone';
  const timing = config.leaseTiming;
  const requestTimeoutMs = timing ? suggestedRequestTimeoutMs(timing) : undefined;
  const probeTimeoutMs = Math.min(1000, config.healthIntervalMs);
  const o: AgentOptions = {
    identity: config.nodeName,
    // BGP announces exactly the address (the prefix lists say /32 and /128), whatever vip_subnet says.
    vips: config.bgp ? config.vips.map((v) => ({ ...v, prefix: v.family === 4 ? 32 : 128 })) : config.vips,
    host: {
      configured: config.interface,
      vip: config.vips[0]?.ip,
      // Service IPs can be IPv4 whatever the VIPs are.
      strictArp: config.responder === 'agent' && (config.vips.some((v) => v.family === 4) || config.svcEnable),
    },
    holder: {
      responder: config.responder,
      // The kernel's lifetime on the address: the linger bound with the kernel responder, the
      // cleanup of a killed agent's address on lo with the agent responder.
      lifetimeSec: config.responder === 'kernel' ? config.addressLifetime : config.loAddressLifetime,
      // In BGP mode other announcers are the rule, so there is no foreign owner to probe for.
      probeMs: config.bgp ? 0 : config.probeMs,
      claimOnConflict: config.claimOnConflict,
      conflictRetryMs: config.conflictRetryMs,
      refreshMs: config.arpRate,
    },
    election,
    livez: config.controlPlane ? { url: config.healthUrl, intervalMs: config.healthIntervalMs, failureThreshold: config.healthFailures, timeoutMs: probeTimeoutMs } : false,
    eligibility: { intervalMs: config.healthIntervalMs, timeoutMs: probeTimeoutMs },
  };
  // ecmp needs the API client only for the local /livez probe (its CA and credentials) and Events.
  const needsApi = election === 'ecmp' ? config.controlPlane : election !== 'standalone' || config.svcEnable;
  if (timing && requestTimeoutMs !== undefined && needsApi) {
    o.api = {
      kubeconfigPath: config.kubeconfig,
      ...(config.fallbackKubeconfig ? { fallbackKubeconfigPath: config.fallbackKubeconfig } : {}),
      // A worker has no API server of its own: the kubeconfig's server (the VIP), then the
      // API servers learned from the `kubernetes` EndpointSlice.
      localEndpoint: config.serviceMemberOnly ? 'kubeconfig' : config.apiEndpoint,
      endpointsCachePath: join(config.stateDir, 'api-endpoints.json'),
      requestTimeoutMs,
    };
    if (election === 'lease' || election === 'hybrid') {
      o.lease = { namespace: config.leaseNamespace, name: config.leaseName, timing, timingNames: LEASE_TIMING_NAMES, requestTimeoutMs };
    }
    if (config.svcEnable) {
      const [cmNs, cmName] = config.svcPoolConfigMap.split('/', 2);
      o.services = {
        leaseNamespace: config.leaseNamespace,
        timing,
        requestTimeoutMs,
        namespace: config.svcNamespace || undefined,
        classFilter: { className: config.lbClassName, classOnly: config.lbClassOnly, legacyHandling: config.lbClassLegacyHandling },
        poolConfigMap: { namespace: cmNs!, name: cmName! },
        metallb: config.svcMetallb ? { namespace: config.svcMetallbNamespace || undefined } : undefined,
        controlPlaneVips: config.vips.map((v) => canonicalIp(v.ip)).filter((s): s is string => s !== undefined),
        // A worker never allocates: the control-plane agents do, through the VIP's Lease.
        // ecmp: every node holds the control-plane VIP, so its verdicts cannot pick one allocator.
        allocator: config.serviceMemberOnly ? 'none' : election === 'standalone' || election === 'ecmp' ? 'own-lease' : 'control-plane',
        membership: election === 'ecmp' ? 'ecmp' : config.peers.length > 0 && config.svcMembership !== 'lease' ? 'peers' : 'lease',
      };
    }
  }
  if (config.peerConfig && config.peerKeyFile && config.serviceMemberOnly) {
    const voters = Object.fromEntries(config.peers.map((p) => [p.name, { host: p.host, port: config.svcGrantPort }]));
    const v6 = config.peers.every((p) => familyOf(p.host) === 6);
    o.grantMember = { timing: config.peerConfig, voters, keyFile: config.peerKeyFile, bindHost: v6 ? '::' : '0.0.0.0' };
  } else if (config.peerConfig && config.peerKeyFile) {
    o.peers = {
      cfg: config.peerConfig,
      addresses: Object.fromEntries(config.peers.map((p) => [p.name, { host: p.host, port: p.port }])),
      keyFile: config.peerKeyFile,
      grantAddresses: Object.fromEntries(config.peers.map((p) => [p.name, { host: p.host, port: config.svcGrantPort }])),
    };
  }
  if (config.bgp) o.bgp = config.bgp;
  if (config.metricsAddress) o.observe = config.metricsAddress;
  return o;
}
