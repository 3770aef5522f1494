/**
 * The agent: wires config → elector → holders (one per VIP address) and owns the process
 * lifecycle. Shutdown order on SIGTERM/SIGINT: the elector emits standby (holders stop answering
 * and unbind), the elector releases what it holds (the Lease), then the process exits 0.
 */
import { monotonicClock, type Clock } from '../util/clock.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startObserveServer, type ObserveServer } from '../observe/http.js';
import { registry } from '../observe/metrics.js';
import { lingerMs, type Config } from '../config/index.js';
import { setupLeaseElection, type LeaseSetup } from '../election/lease/setup.js';
import { setupHybridElection } from '../election/hybrid.js';
import type { HealthGate } from '../health/livez.js';
import { resolveInterface, type ResolvedInterface } from '../config/host.js';
import { StandaloneElector } from '../election/standalone.js';
import type { Elector, Verdict } from '../election/types.js';
import { startServices, type ServicesRunner } from '../services/coordinator.js';
import { Announcer } from '../net/announce.js';
import { NetlinkWatcher, Rtnl } from '../net/netlink.js';
import type { Logger } from '../observe/log.js';
import { Holder } from '../vip/holder.js';

export interface AgentHandle {
  holders: Holder[];
  iface: ResolvedInterface;
  /** Resolves when the agent has stopped and removed what it added. */
  done: Promise<void>;
  stop(reason: string): void;
}

/**
 * standalone (vip_leaderelection=false), or the Lease (true). Building the Lease elector loads the
 * kubeconfig but sends nothing.
 */
export async function buildElector(config: Config, log: Logger): Promise<Elector> {
  if (!config.leaderElection && config.peers.length === 0) return new StandaloneElector();
  if (config.peers.length > 0) return setupHybridElection(config, log, (followGate) => buildLease(config, log, followGate));
  const setup = await buildLease(config, log);
  return { onVerdict: (l) => setup.elector.onVerdict(l), run: (signal) => setup.run(signal) };
}

function buildLease(config: Config, log: Logger, followGate?: HealthGate): Promise<LeaseSetup> {
  return setupLeaseElection({
    identity: config.nodeName,
    namespace: config.leaseNamespace,
    name: config.leaseName,
    timing: {
      leaseDurationMs: config.leaseDuration * 1000,
      renewDeadlineMs: config.renewDeadline * 1000,
      retryPeriodMs: config.retryPeriod * 1000,
      lingerMs: lingerMs(config),
    },
    timingNames: { leaseDuration: 'vip_leaseduration', renewDeadline: 'vip_renewdeadline', retryPeriod: 'vip_retryperiod' },
    kubeconfigPath: config.kubeconfig,
    ...(config.fallbackKubeconfig ? { fallbackKubeconfigPath: config.fallbackKubeconfig } : {}),
    localEndpoint: config.apiEndpoint,
    endpointsCachePath: join(config.stateDir, 'api-endpoints.json'),
    livez: config.controlPlane
      ? { url: config.healthUrl, intervalMs: config.healthIntervalMs, failureThreshold: config.healthFailures, timeoutMs: Math.min(1000, config.healthIntervalMs) }
      : false,
    ...(followGate ? { followGate } : {}),
    log,
  });
}

/** CAP_NET_ADMIN (12): addresses, sysctls. CAP_NET_RAW (13): the AF_PACKET socket. */
export function missingCapabilities(status: string): string[] {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return [];
  const eff = BigInt(`0x${m[1]}`);
  return [
    [12n, 'NET_ADMIN'],
    [13n, 'NET_RAW'],
  ].flatMap(([bit, name]) => ((eff >> (bit as bigint)) & 1n ? [] : [name as string]));
}

/**
 * Resolves the interface first (a ConfigError there has touched nothing), then prepares the
 * kernel, then starts the elector.
 */
export async function startAgent(config: Config, log: Logger, clock: Clock = monotonicClock): Promise<AgentHandle> {
  const missing = missingCapabilities(await readFile('/proc/self/status', 'utf8'));
  if (missing.length > 0) {
    throw new Error(`vipd needs the capabilities ${missing.join(' and ')} (NET_ADMIN: VIP addresses and sysctls; NET_RAW: the ARP/NDP socket); add them to the container's securityContext`);
  }
  const rtnl = Rtnl.open();
  let iface: ResolvedInterface;
  try {
    iface = await resolveInterface(config, rtnl);
  } catch (err) {
    rtnl.close();
    throw err;
  }
  let elector: Elector;
  try {
    elector = await buildElector(config, log);
  } catch (err) {
    rtnl.close();
    throw err;
  }
  log.info({ iface: iface.name, how: iface.how }, `announcing on ${iface.name} (${iface.how})`);
  const lo = await rtnl.linkByName('lo');
  if (!lo) throw new Error('no loopback interface');

  let running = false;
  let observe: ObserveServer | undefined;
  if (config.metricsAddress) {
    try {
      observe = await startObserveServer({ address: config.metricsAddress, registry, ready: () => running, healthy: () => true, log });
    } catch (err) {
      rtnl.close();
      throw err;
    }
  }
  const watcher = new NetlinkWatcher();
  const holders: Holder[] = [];
  let services: ServicesRunner | undefined;
  const closeAll = async (reason: string): Promise<void> => {
    running = false;
    await services?.close();
    await Promise.allSettled(holders.map((h) => h.close(reason)));
    watcher.close();
    rtnl.close();
    await observe?.close();
  };

  try {
    for (const vip of config.vips) {
      const vipLog = log.child({ vip: vip.ip });
      const announcer = await Announcer.open({
        ifname: iface.name,
        vip: vip.ip,
        refreshMs: config.arpRate,
        answer: config.responder === 'agent',
        log: vipLog,
        clock,
      });
      const holder = new Holder(
        {
          vip,
          ifname: iface.name,
          ifindex: iface.index,
          loIndex: lo.index,
          responder: config.responder,
          lifetimeSec: config.addressLifetime,
          probeMs: config.probeMs,
          claimOnConflict: config.claimOnConflict,
          conflictRetryMs: config.conflictRetryMs,
        },
        { rtnl, watcher, announcer, clock, log: vipLog },
      );
      holders.push(holder);
      await holder.start();
    }
  } catch (err) {
    await closeAll('start failed');
    throw err;
  }

  if (config.svcEnable) {
    try {
      // The allocator is the control-plane holder when there is an election; else its own Lease.
      const verdicts = config.leaderElection || config.peers.length > 0 ? { controlPlaneVerdicts: (l: (v: Verdict) => void) => elector.onVerdict(l) } : {};
      services = await startServices({ config, log, rtnl, watcher, iface, loIndex: lo.index, clock, ...verdicts });
    } catch (err) {
      await closeAll('start failed');
      throw err;
    }
  }

  // Returning the holders' pending kernel work lets the elector release the Lease only after the
  // VIP is gone from this node.
  elector.onVerdict((v) => {
    for (const h of holders) h.apply(v);
    return Promise.all(holders.map((h) => h.settled())).then(() => undefined);
  });
  const ac = new AbortController();
  let stopReason = 'stopped';
  const done = (async () => {
    try {
      running = true;
      await Promise.all([elector.run(ac.signal), services?.run(ac.signal)]);
    } finally {
      await closeAll(stopReason);
      log.info({ reason: stopReason }, 'agent stopped; VIPs removed');
    }
  })();
  return {
    holders,
    iface,
    done,
    stop(reason: string) {
      stopReason = reason;
      ac.abort();
    },
  };
}
