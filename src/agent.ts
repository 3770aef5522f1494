/**
 * The agent: wires config → elector → holders (one per VIP address) and owns the process
 * lifecycle. Shutdown order on SIGTERM/SIGINT: the elector emits standby (holders stop answering
 * and unbind), the elector releases what it holds (the Lease), then the process exits 0.
 */
import { monotonicClock, type Clock } from './clock.js';
import { join } from 'node:path';
import { lingerMs, type Config } from './config/index.js';
import { setupLeaseElection } from './election/lease-setup.js';
import { resolveInterface, type ResolvedInterface } from './config/host.js';
import { StandaloneElector } from './election/standalone.js';
import type { Elector } from './election/types.js';
import { Announcer } from './net/announce.js';
import { NetlinkWatcher, Rtnl } from './net/netlink.js';
import type { Logger } from './observe/log.js';
import { Holder } from './vip/holder.js';

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
  if (!config.leaderElection) return new StandaloneElector();
  const setup = await setupLeaseElection({
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
    log,
  });
  return { onVerdict: (l) => setup.elector.onVerdict(l), run: (signal) => setup.run(signal) };
}

/**
 * Resolves the interface first (a ConfigError there has touched nothing), then prepares the
 * kernel, then starts the elector.
 */
export async function startAgent(config: Config, log: Logger, clock: Clock = monotonicClock): Promise<AgentHandle> {
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

  const watcher = new NetlinkWatcher();
  const holders: Holder[] = [];
  const closeAll = async (reason: string): Promise<void> => {
    await Promise.allSettled(holders.map((h) => h.close(reason)));
    watcher.close();
    rtnl.close();
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
      await elector.run(ac.signal);
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
