/**
 * The composition root: the only code that reads Config for the running agent (through
 * ./options.ts). It builds, once each: the option slices, the host facts (capabilities, the
 * interface, strict-ARP sysctls), one API client (one kubeconfig watcher, one endpoint cache),
 * one netlink handle and watcher, one `makeHolder(vip)` factory, the elector, and the services
 * coordinator; then it wires verdicts to holders and owns the process lifecycle.
 *
 * Start order: everything that can refuse a setting (peer key, capabilities, interface) runs
 * before anything on the host changes, so a ConfigError has touched nothing.
 * Shutdown order on SIGTERM/SIGINT: the elector emits standby (holders stop answering and
 * unbind), the elector releases what it holds (the Lease), the services coordinator lets go of
 * its IPs and its member Lease, then the process exits 0.
 */
import { checkCapabilities, ensureStrictArp, resolveInterface, type ResolvedInterface } from '../config/host.js';
import { ConfigError, formatListenAddress, type Config, type ListenAddress } from '../config/index.js';
import { readPeerKey } from '../config/peer-key.js';
import { buildHybridElection } from '../election/hybrid.js';
import { buildLeaseElection, livezProbeFor } from '../election/lease/setup.js';
import type { FrrDriver } from '../bgp/frr.js';
import { alwaysHealthy } from '../health/livez.js';
import { EventRecorder } from '../k8s/events.js';
import { StandaloneElector } from '../election/standalone.js';
import type { Elector, Verdict } from '../election/types.js';
import type { HealthGate } from '../health/livez.js';
import { ApiClient } from '../k8s/client.js';
import { NetlinkWatcher, Rtnl } from '../net/netlink.js';
import { ListenError, startObserveServer, type ObserveServer } from '../observe/http.js';
import type { Logger } from '../observe/log.js';
import { metrics, registry } from '../observe/metrics.js';
import { buildStatus } from '../observe/status.js';
import type { LeaseElectorStatus } from '../election/lease/elector.js';
import type { PeerSnapshot } from '../election/peers/core.js';
import type { ServicesCoordinator } from '../services/coordinator.js';
import type { GrantMember } from '../services/grant-net.js';
import { monotonicClock, type Clock } from '../util/clock.js';
import type { AnnouncerPort, Holder } from '../vip/holder.js';
import { holderFactory } from './holders.js';
import { agentOptions, type AgentOptions } from './options.js';

export interface AgentHandle {
  holders: Holder[];
  iface: ResolvedInterface;
  /** Resolves when the agent has stopped and removed what it added. */
  done: Promise<void>;
  stop(reason: string): void;
}

/** The metrics listener; a port in use or a foreign address is the setting's fault (exit 2). */
export async function startObserve(listen: ListenAddress, o: { ready: () => boolean; status?: () => unknown; log: Logger }): Promise<ObserveServer> {
  try {
    return await startObserveServer({ listen, registry, ready: o.ready, healthy: () => true, ...(o.status ? { status: o.status } : {}), log: o.log });
  } catch (err) {
    if (err instanceof ListenError) throw new ConfigError('prometheus_server', formatListenAddress(listen), err.message);
    throw err;
  }
}

/** The one API client, or undefined when no part of the agent needs the API. */
async function buildClient(o: AgentOptions, log: Logger): Promise<ApiClient | undefined> {
  if (!o.api) return undefined;
  try {
    return await ApiClient.create({ ...o.api, log: log.child({ mod: 'k8s' }) });
  } catch (err) {
    // Peer voting works without any API (first kubeadm init, an outage); Services cannot.
    if (o.election === 'hybrid' && !o.services) {
      log.warn({ err }, 'cannot build the API client; peer voting alone decides');
      return undefined;
    }
    throw err;
  }
}

/** What /status shows of the elector: read-only snapshots, taken per request. */
type ElectorStatus = () => { lease?: LeaseElectorStatus; peers?: PeerSnapshot };

async function buildElector(
  o: AgentOptions,
  client: ApiClient | undefined,
  key: Buffer | undefined,
  log: Logger,
): Promise<{ elector: Elector; run: (signal: AbortSignal) => Promise<void>; status: ElectorStatus }> {
  const leaseHalf = (followGate?: HealthGate) =>
    buildLeaseElection({
      client: client!,
      identity: o.identity,
      namespace: o.lease!.namespace,
      name: o.lease!.name,
      timing: o.lease!.timing,
      timingNames: o.lease!.timingNames,
      requestTimeoutMs: o.lease!.requestTimeoutMs,
      livez: o.livez,
      ...(followGate ? { followGate } : {}),
      log,
    });
  if (o.election === 'hybrid') {
    const hybrid = buildHybridElection({
      cfg: o.peers!.cfg,
      addresses: o.peers!.addresses,
      key: key!,
      ...(client && o.lease ? { buildLease: leaseHalf, client } : {}),
      eligibility: o.eligibility,
      leaseDurationMs: o.lease!.timing.leaseDurationMs,
      log,
    });
    return {
      elector: hybrid,
      run: (s) => hybrid.run(s),
      status: () => ({ peers: hybrid.peer.snapshot(), ...(hybrid.lease ? { lease: hybrid.lease.elector.status() } : {}) }),
    };
  }
  if (o.election === 'ecmp') {
    const { EcmpElector } = await import('../election/ecmp.js');
    const probe = client && o.livez !== false ? livezProbeFor(client, o.livez, log) : undefined;
    const ecmp = new EcmpElector(probe ?? alwaysHealthy, probe ? 'local API server healthy' : 'no health gate (cp_enable=false)', probe ? (s) => probe.run(s) : undefined);
    return { elector: ecmp, run: (s) => ecmp.run(s), status: () => ({}) };
  }
  if (o.election === 'lease') {
    const lease = leaseHalf();
    return { elector: lease.elector, run: (s) => lease.run(s), status: () => ({ lease: lease.elector.status() }) };
  }
  const standalone = new StandaloneElector();
  return { elector: standalone, run: (s) => standalone.run(s), status: () => ({}) };
}

export async function startAgent(config: Config, log: Logger, clock: Clock = monotonicClock): Promise<AgentHandle> {
  const o = agentOptions(config);
  metrics.nodeInfo.set({ node: o.identity }, 1);
  // What can refuse a setting, before anything changes.
  const keyFile = o.peers?.keyFile ?? o.grantMember?.keyFile;
  const key = keyFile ? await readPeerKey(keyFile) : undefined;
  await checkCapabilities();
  const rtnl = Rtnl.open();
  const cleanups: Array<() => void | Promise<void>> = [() => rtnl.close()];
  const undo = async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  let running = false;
  let iface: ResolvedInterface;
  const holders: Holder[] = [];
  let services: ServicesCoordinator | undefined;
  let client: ApiClient | undefined;
  let election: Awaited<ReturnType<typeof buildElector>>;
  let frr: FrrDriver | undefined;
  try {
    iface = await resolveInterface(o.host, rtnl);
    client = await buildClient(o, log);
    if (client) cleanups.push(() => client!.close());
    election = await buildElector(o, client, key, log);
    log.info({ iface: iface.name, how: iface.how }, `announcing on ${iface.name} (${iface.how})`);
    const lo = await rtnl.linkByName('lo');
    if (!lo) throw new Error('no loopback interface');
    if (o.observe) {
      const elected = election;
      const status = () =>
        buildStatus({
          node: o.identity,
          election: o.election,
          now: clock.now(),
          vips: holders.map((h) => ({ ip: h.ip, state: h.current })),
          ...elected.status(),
          ...(services ? { services: services.status() } : {}),
        });
      const observe = await startObserve(o.observe, { ready: () => running, status, log });
      cleanups.push(() => observe.close());
    }
    if (o.host.strictArp) await ensureStrictArp(iface.name, log);

    if (o.bgp) frr = await startFrrDriver(o, iface, rtnl, client, log);
    const announceBgp = frr;
    let bgpAnnouncer: ((vip: { ip: string }) => Promise<AnnouncerPort>) | undefined;
    if (announceBgp) {
      cleanups.push(() => announceBgp.close());
      const { BgpAnnouncer } = await import('../bgp/announcer.js');
      bgpAnnouncer = (vip) => BgpAnnouncer.open(vip.ip, announceBgp, !o.vips.some((v) => v.ip === vip.ip));
    }

    const watcher = new NetlinkWatcher();
    cleanups.push(() => watcher.close());
    const makeHolder = holderFactory({
      settings: o.holder,
      iface,
      loIndex: lo.index,
      rtnl,
      watcher,
      clock,
      ...(bgpAnnouncer ? { announcer: bgpAnnouncer } : {}),
    });
    cleanups.push(() => Promise.allSettled(holders.map((h) => h.close('stopped'))).then(() => undefined));
    for (const vip of o.vips) holders.push(await makeHolder(vip, log.child({ vip: vip.ip })));

    let grants: GrantMember | undefined;
    if (o.services?.membership === 'peers' && o.peers && key) {
      // This node answers claims (it is one of vip_peers) and claims for itself.
      const grantNet = await import('../services/grant-net.js');
      const own = o.peers.grantAddresses[o.identity]!;
      const voter = new grantNet.GrantVoter({ self: o.identity, listen: own, electionTimeoutMs: o.peers.cfg.electionTimeoutMs, key, log: log.child({ mod: 'grants' }) });
      await voter.start();
      cleanups.push(() => voter.close());
      const member = new grantNet.GrantMember({ self: o.identity, bindHost: own.host, voters: o.peers.grantAddresses, timing: o.peers.cfg, key, log: log.child({ mod: 'grants' }) });
      await member.start();
      cleanups.push(() => member.stop());
      grants = member;
    } else if (o.grantMember && key) {
      // A worker: a member only; the control-plane agents are its voters.
      const grantNet = await import('../services/grant-net.js');
      const g = o.grantMember;
      const member = new grantNet.GrantMember({ self: o.identity, bindHost: g.bindHost, voters: g.voters, timing: g.timing, key, log: log.child({ mod: 'grants' }) });
      await member.start();
      cleanups.push(() => member.stop());
      grants = member;
    }
    if (o.services) {
      const elector = election.elector;
      const { startServices } = await import('../services/coordinator.js');
      services = startServices({
        ...(grants ? { grants } : {}),
        options: o.services,
        identity: o.identity,
        client: client!,
        makeHolder,
        clock,
        log,
        ...(o.services.allocator === 'control-plane' ? { controlPlaneVerdicts: (l: (v: Verdict) => void) => elector.onVerdict(l) } : {}),
      });
      const s = services;
      cleanups.push(() => s.close());
    }
  } catch (err) {
    await undo();
    throw err;
  }

  // Returning the holders' pending kernel work lets the elector release the Lease only after the
  // VIP is gone from this node.
  election.elector.onVerdict((v) => {
    for (const h of holders) h.apply(v);
    return Promise.all(holders.map((h) => h.settled())).then(() => undefined);
  });
  const ac = new AbortController();
  let stopReason = 'stopped';
  let draining = false;
  const done = (async () => {
    try {
      running = true;
      await Promise.all([election.run(ac.signal), services?.run(ac.signal), client?.run(ac.signal), frr?.run(ac.signal)]);
    } finally {
      running = false;
      await Promise.allSettled(holders.map((h) => h.close(stopReason)));
      if (frr) {
        // The addresses are off lo; exit only once FRR has sent the withdrawal (it already has after a drain).
        const t0 = clock.now();
        const confirmed = await frr.withdrawn(2000);
        if (confirmed) log.info({ ms: Math.round(clock.now() - t0) }, 'BGP withdrawal sent');
        else log.warn({}, 'could not confirm the BGP withdrawal within 2 s');
      }
      await undo();
      log.info({ reason: stopReason }, 'agent stopped; VIPs removed');
    }
  })();
  return {
    holders,
    iface,
    done,
    stop(reason: string) {
      if (ac.signal.aborted || draining) return;
      stopReason = reason;
      // BGP: withdraw while still serving, then stop (src/bgp/frr.ts, drain).
      if (frr && o.bgp) {
        draining = true;
        void frr.drain(2000, o.bgp.withdrawGraceMs).finally(() => ac.abort());
        return;
      }
      ac.abort();
    },
  };
}

/** BGP mode: FRR's configuration rendered from the settings, and the driver that applies and watches it. */
async function startFrrDriver(o: AgentOptions, iface: ResolvedInterface, rtnl: Rtnl, client: ApiClient | undefined, log: Logger): Promise<FrrDriver> {
  const b = o.bgp!;
  let routerId = b.routerId;
  if (!routerId) {
    routerId = (await rtnl.addresses()).find((a) => a.ifindex === iface.index && !a.ip.includes(':'))?.ip;
    if (!routerId) throw new ConfigError('bgp_routerid', undefined, `is required: ${iface.name} has no IPv4 address to use as the BGP router ID`);
  }
  const [{ renderFrr }, { FrrDriver }] = await Promise.all([import('../bgp/frr-config.js'), import('../bgp/frr.js')]);
  const config = renderFrr({
    asn: b.asn,
    routerId,
    peers: b.peers,
    ...(b.sourceIp ? { sourceIp: b.sourceIp } : {}),
    ...(b.timers ? { timers: b.timers } : {}),
    bfd: b.bfd,
    prefixes: o.vips.map((v) => v.ip),
  });
  const events = client
    ? new EventRecorder({ client, instance: o.identity, controller: 'vipd.io/bgp', regarding: () => ({ apiVersion: 'v1', kind: 'Node', namespace: 'default', name: o.identity }), log: log.child({ mod: 'events' }) })
    : undefined;
  log.info({ routerId, asn: b.asn, peers: b.peers.map((p) => `${p.address} AS${p.asn}`).join(', '), bfd: b.bfd !== false }, `BGP mode: announcing through FRR (${b.socketDir})`);
  return new FrrDriver({ dir: b.socketDir, config, asn: b.asn, bfd: b.bfd !== false, log: log.child({ mod: 'bgp' }), ...(events ? { events } : {}) });
}
