/**
 * The services controller: watches Services, EndpointSlices, the pool ConfigMap and (svc_metallb)
 * MetalLB's IPAddressPools and L2Advertisements with the Namespaces' labels (and the Nodes'
 * labels once an L2Advertisement limits a pool to some nodes); on the allocator node, allocates
 * (pure `allocate`) and writes each Service's status; on every node, computes the service IPs
 * THIS node should hold (pure `plan`) and tells its listeners.
 *
 * Invariants and assumptions:
 * - One allocator at a time: only a node told so by setAllocator() writes (the agent wires it
 *   to the control-plane Lease verdict; with a `hold` verdict, writes stop at its `until`).
 *   Every write is guarded by the Service's resourceVersion, so a stale or overlapping allocator
 *   gets 409 rather than overwriting; allocation is deterministic, so two allocators with the
 *   same view write the same thing. If two ever did hand one address to two Services, the next
 *   allocation keeps it for the earlier Service and moves the other.
 * - The allocator acts only on a full view: every cache listed at least once (a MetalLB CRD that
 *   is not installed counts as listed and empty; Namespaces only while a pool has namespaceSelectors).
 *   Placement too, with svc_metallb: the MetalLB objects, and the Nodes while a pool's
 *   advertisements limit its nodes, so an address is never placed on a node it may not be on.
 * - vipd's record of what it allocated is the `vipd.io/Allocated` condition in the Service's
 *   status (see model.ts); a restart re-reads it, so nothing is reshuffled.
 * - Announcements come from that record only, never from `status.loadBalancer.ingress`.
 * - Until setMembers() is called this node announces nothing: with no membership, every node
 *   would think it is alone and all would announce.
 * - No per-Service Lease: API writes happen when Services or pools change, not at steady state.
 */
import { monotonicClock, type Clock } from '../util/clock.js';
import { sleep, withSignal } from '../util/signals.js';
import type { Verdict } from '../election/types.js';
import { describeError, httpStatus, type ApiClient } from '../k8s/client.js';
import { EventRecorder, type EventInput } from '../k8s/events.js';
import { createLogger, type Logger } from '../observe/log.js';
import { ipsForNode, plan, type Plan } from './logic/placement.js';
import { allocate, type Outcome } from './logic/ipam.js';
import {
  DEFAULT_CLASS_FILTER,
  allocatedCondition,
  externalTrafficPolicy,
  ingressIps,
  isManaged,
  readyEndpointNodes,
  recordedIps,
  serviceKey,
  toClaim,
  type ClassFilter,
  type EndpointSliceLike,
  type ServiceLike,
} from './logic/model.js';
import { formatProblem, parsePools, poolContains, type AddressPool, type PoolConfig } from './logic/pools.js';
import { formatMetallbProblem, interfacesByAddress, interfacesNeedLabels, limitsNodes, metallbPoolOf, namesInterfaces, nodeLimits, parseMetallb, type IPAddressPoolLike, type L2AdvertisementLike, type MetallbConfig, type NodeLimit } from './logic/metallb.js';
import { parseAddr, rangeSize, type Addr } from './logic/addr.js';
import { metrics } from '../observe/metrics.js';
import { Reflector } from '../k8s/reflector.js';
import { paths } from '../k8s/resources.js';
import { PENDING_REASONS, releasePatch, statusPatch, type StatusPatch } from './logic/status.js';

export interface ServicesControllerOptions {
  client: ApiClient;
  /** This node's name (as in members). */
  nodeName: string;
  /** svc_namespace: only Services (and their EndpointSlices) in this namespace; '' = all. */
  namespace?: string;
  classFilter?: ClassFilter;
  /** The kube-vip-cloud-provider ConfigMap; default kube-system/kubevip. */
  poolConfigMap?: { namespace: string; name: string };
  /** svc_metallb: also read MetalLB's IPAddressPools/L2Advertisements, in `namespace` (undefined: all). Absent: off. */
  metallb?: { namespace?: string | undefined };
  /** How often to look again for MetalLB's CRDs while they are not installed. Default 60 s. */
  metallbRecheckMs?: number;
  /** Control-plane VIPs: never handed out; a Service naming one rides on the control-plane holder. */
  controlPlaneVips?: readonly string[];
  /** Coalesces bursts of changes into one reconcile. Default 50 ms. */
  debounceMs?: number;
  /** Parallel status writes. Default 4. */
  writeConcurrency?: number;
  /** Bound on a list (all endpoints). Default 30 s. */
  listTimeoutMs?: number;
  clock?: Clock;
  log?: Logger;
}

export type ServiceEventSink = (svc: ServiceLike, ev: EventInput) => void;

interface SliceLite extends EndpointSliceLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
}

interface ConfigMapLite {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

interface NamespaceLite {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
}

type NodeLite = NamespaceLite;

type MetallbObj<T extends { metadata?: object }> = T & { metadata?: { resourceVersion?: string } };

type ServiceObj = ServiceLike & { metadata?: ServiceLike['metadata'] & { managedFields?: unknown } };

type AllocatorState = { kind: 'off' } | { kind: 'on'; until: number };

export class ServicesController {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly filter: ClassFilter;
  private readonly services: Reflector<ServiceObj>;
  private readonly slices: Reflector<SliceLite>;
  private readonly configMaps: Reflector<ConfigMapLite>;
  /** svc_metallb only. */
  private readonly metallb: { pools: Reflector<MetallbObj<IPAddressPoolLike>>; ads: Reflector<MetallbObj<L2AdvertisementLike>>; namespaces: Reflector<NamespaceLite>; nodes: Reflector<NodeLite> } | undefined;
  private lastMetallbProblems = '';
  /** Service key → the unadvertised pools it was last warned about. */
  private readonly unadvertisedWarned = new Map<string, string>();
  /** Service key → the addresses without an eligible member it was last warned about. */
  private readonly unannouncedWarned = new Map<string, string>();
  /** Node name → its labels as last seen: a Node's status updates are no reason to reconcile. */
  private readonly nodeLabelsSeen = new Map<string, string>();
  /**
   * The Nodes watch starts the first time a pool's advertisements limit its nodes, not before:
   * every agent watching every Node would cost a cluster that never needs it.
   */
  private nodesRun: Promise<void> | undefined;
  private runSignal: AbortSignal | undefined;
  private readonly cm: { namespace: string; name: string };
  private allocator: AllocatorState = { kind: 'off' };
  private members: readonly string[] | undefined;
  private desiredIps: readonly string[] = [];
  private lastPlan: Plan = { units: [], onControlPlaneVip: new Map() };
  /** Address → the interfaces this node announces it on (L2Advertisement interfaces); absent: vip_interface. */
  private interfacesByIp: ReadonlyMap<string, readonly string[]> = new Map();
  private readonly listeners = new Set<(ips: readonly string[]) => void>();
  private readonly planListeners = new Set<(p: Plan) => void>();
  private readonly warned = new Map<string, string>();
  private lastPoolProblems = '';
  private wake: (() => void) | undefined;
  private dirty = true;
  private eventSink: ServiceEventSink;
  private readonly inflight = new Set<string>();

  constructor(private readonly o: ServicesControllerOptions) {
    this.log = o.log ?? createLogger(undefined, { mod: 'services' });
    this.clock = o.clock ?? monotonicClock;
    this.filter = o.classFilter ?? DEFAULT_CLASS_FILTER;
    this.cm = o.poolConfigMap ?? { namespace: 'kube-system', name: 'kubevip' };
    const ns = o.namespace || undefined;
    const listTimeoutMs = o.listTimeoutMs ?? 30_000;
    this.services = new Reflector<ServiceObj>({
      name: 'services',
      client: o.client,
      log: this.log,
      requestTimeoutMs: listTimeoutMs,
      path: paths.services(ns),
      transform: (s) => {
        if (s.metadata?.managedFields) {
          const { managedFields: _drop, ...meta } = s.metadata;
          return { ...s, metadata: meta };
        }
        return s;
      },
    });
    this.slices = new Reflector<SliceLite>({
      name: 'endpointslices',
      client: o.client,
      log: this.log,
      requestTimeoutMs: listTimeoutMs,
      path: paths.endpointSlices(ns),
      // Only what ETP Local needs: which nodes have ready endpoints of which Service.
      transform: (s) => ({
        metadata: {
          ...(s.metadata?.name !== undefined ? { name: s.metadata.name } : {}),
          ...(s.metadata?.namespace !== undefined ? { namespace: s.metadata.namespace } : {}),
          ...(s.metadata?.resourceVersion !== undefined ? { resourceVersion: s.metadata.resourceVersion } : {}),
          labels: { 'kubernetes.io/service-name': s.metadata?.labels?.['kubernetes.io/service-name'] ?? '' },
        },
        ...(s.addressType !== undefined ? { addressType: s.addressType } : {}),
        endpoints: (s.endpoints ?? []).map((e) => ({
          ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
          ...(e.conditions?.ready !== undefined ? { conditions: { ready: e.conditions.ready } } : {}),
        })),
      }),
    });
    const fieldSelector = `metadata.name=${this.cm.name}`;
    this.configMaps = new Reflector<ConfigMapLite>({
      name: 'configmaps',
      client: o.client,
      log: this.log,
      requestTimeoutMs: listTimeoutMs,
      path: paths.configMaps(this.cm.namespace),
      query: { fieldSelector },
    });
    if (o.metallb) {
      const mlNs = o.metallb.namespace || undefined;
      const mayBeAbsent = { recheckMs: o.metallbRecheckMs ?? 60_000 };
      // Only what parseMetallb reads: names, labels and spec.
      const slim = <T extends { metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string } }>(x: T): T =>
        ({
          metadata: {
            ...(x.metadata?.name !== undefined ? { name: x.metadata.name } : {}),
            ...(x.metadata?.namespace !== undefined ? { namespace: x.metadata.namespace } : {}),
            ...(x.metadata?.resourceVersion !== undefined ? { resourceVersion: x.metadata.resourceVersion } : {}),
            ...(x.metadata?.labels !== undefined ? { labels: x.metadata.labels } : {}),
          },
          ...('spec' in x ? { spec: (x as { spec?: unknown }).spec } : {}),
        }) as T;
      this.metallb = {
        pools: new Reflector<MetallbObj<IPAddressPoolLike>>({ name: 'ipaddresspools', client: o.client, log: this.log, requestTimeoutMs: listTimeoutMs, path: paths.ipAddressPools(mlNs), mayBeAbsent, transform: slim }),
        ads: new Reflector<MetallbObj<L2AdvertisementLike>>({ name: 'l2advertisements', client: o.client, log: this.log, requestTimeoutMs: listTimeoutMs, path: paths.l2Advertisements(mlNs), mayBeAbsent, transform: slim }),
        namespaces: new Reflector<NamespaceLite>({ name: 'namespaces', client: o.client, log: this.log, requestTimeoutMs: listTimeoutMs, path: paths.namespaces(), transform: slim }),
        nodes: new Reflector<NodeLite>({ name: 'nodes', client: o.client, log: this.log, requestTimeoutMs: listTimeoutMs, path: paths.nodes(), transform: (n) => slim({ metadata: n.metadata }) }),
      };
      this.metallb.nodes.onChange((e) => {
        if (e.kind === 'list') {
          this.nodeLabelsSeen.clear();
          for (const n of this.metallb!.nodes.list()) this.nodeLabelsSeen.set(n.metadata?.name ?? '', JSON.stringify(n.metadata?.labels ?? {}));
          this.poke();
          return;
        }
        const name = e.object.metadata?.name ?? '';
        const labels = e.kind === 'deleted' ? undefined : JSON.stringify(e.object.metadata?.labels ?? {});
        if (this.nodeLabelsSeen.get(name) === labels) return;
        if (labels === undefined) this.nodeLabelsSeen.delete(name);
        else this.nodeLabelsSeen.set(name, labels);
        this.poke();
      });
    }
    const recorders = new Map<string, EventRecorder>();
    this.eventSink = (svc, ev) => {
      const ref = { apiVersion: 'v1', kind: 'Service', namespace: svc.metadata?.namespace ?? '', name: svc.metadata?.name ?? '', ...(svc.metadata?.uid ? { uid: svc.metadata.uid } : {}) };
      let r = recorders.get(serviceKey(svc));
      if (!r) {
        r = new EventRecorder({ client: o.client, regarding: () => ref, instance: o.nodeName, controller: 'vipd.io/services', log: this.log, maxPending: 4 });
        recorders.set(serviceKey(svc), r);
      }
      r.record(ev);
      if (recorders.size > 10_000) recorders.clear();
    };
    for (const r of [this.services, this.slices, this.configMaps]) r.onChange(() => this.poke());
    if (this.metallb) for (const r of [this.metallb.pools, this.metallb.ads, this.metallb.namespaces]) r.onChange(() => this.poke());
  }

  /** Replace where Service Events go (tests); default: Kubernetes Events via the API. */
  setEventSink(sink: ServiceEventSink): void {
    this.eventSink = sink;
  }

  /**
   * Whether this node allocates and writes status. `true`/`false`, or an elector verdict: `hold`
   * allows writes until its `until` (monotonic), `standby` stops them.
   */
  setAllocator(v: boolean | Verdict): void {
    const next: AllocatorState =
      v === true ? { kind: 'on', until: Infinity } : v === false || v.kind === 'standby' ? { kind: 'off' } : { kind: 'on', until: v.until };
    const wasOn = this.allocating();
    this.allocator = next;
    if (!wasOn && this.allocating()) this.log.info({ node: this.o.nodeName }, 'this node now allocates service IPs');
    if (wasOn && !this.allocating()) this.log.info({ node: this.o.nodeName }, 'this node no longer allocates service IPs');
    this.poke();
  }

  /** Live, healthy members that may announce service IPs (node names). */
  setMembers(members: readonly string[]): void {
    this.members = [...new Set(members)].sort();
    this.poke();
  }

  /** Called with the full set of service IPs this node should hold whenever it changes. */
  onDesired(fn: (ips: readonly string[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Called after every placement (the plan may be unchanged): who is on which address. */
  onPlan(fn: (p: Plan) => void): () => void {
    this.planListeners.add(fn);
    return () => this.planListeners.delete(fn);
  }

  /** A Service from the cache, by `namespace/name` (undefined until listed, or when gone). */
  service(key: string): ServiceLike | undefined {
    const slash = key.indexOf('/');
    return this.services.get(key.slice(0, slash), key.slice(slash + 1));
  }

  /** An Event on a Service, through the same best-effort recorders as the allocator's. */
  recordEvent(svc: ServiceLike, ev: EventInput): void {
    this.eventSink(svc, ev);
  }

  private placedOnce = false;

  desired(): readonly string[] {
    return this.desiredIps;
  }

  plan(): Plan {
    return this.lastPlan;
  }

  /** Whether placement has run on fully listed Services and EndpointSlices (it can serve addresses). */
  placementReady(): boolean {
    return this.placedOnce;
  }

  synced(): boolean {
    return this.services.synced && this.slices.synced && this.configMaps.synced && (!this.metallb || (this.metallb.pools.synced && this.metallb.ads.synced));
  }

  private allocating(): boolean {
    return this.allocator.kind === 'on' && this.clock.now() < this.allocator.until;
  }

  private retryTimer: NodeJS.Timeout | undefined;

  private retrySoon(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.poke();
    }, 2_000);
    this.retryTimer.unref();
  }

  private poke(): void {
    this.dirty = true;
    this.wake?.();
  }

  async run(signal: AbortSignal): Promise<void> {
    this.runSignal = signal;
    const loops = [this.services.run(signal), this.slices.run(signal), this.configMaps.run(signal), this.reconcileLoop(signal)];
    if (this.metallb) loops.push(this.metallb.pools.run(signal), this.metallb.ads.run(signal), this.metallb.namespaces.run(signal));
    try {
      await Promise.all(loops);
      await this.nodesRun;
    } finally {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
  }

  private async reconcileLoop(signal: AbortSignal): Promise<void> {
    const debounceMs = this.o.debounceMs ?? 50;
    while (!signal.aborted) {
      if (!this.dirty) {
        // Wake on a change, or when an allocator grant's deadline passes.
        const until = this.allocator.kind === 'on' ? this.allocator.until - this.clock.now() : Infinity;
        const woken = new AbortController();
        this.wake = () => woken.abort();
        await withSignal([signal, woken.signal], undefined, (s) => sleep(Math.max(0, until) + 1, s));
        this.wake = undefined;
        if (signal.aborted) break;
      }
      await sleep(debounceMs, signal);
      if (signal.aborted) break;
      this.dirty = false;
      try {
        await this.reconcile(signal);
      } catch (err) {
        if (signal.aborted) break;
        this.log.error({ err: describeError(err) }, 'services reconcile failed; retrying in 2 s');
        this.retrySoon();
      }
    }
  }

  private pools(): PoolConfig | undefined {
    const cm = this.configMaps.get(this.cm.namespace, this.cm.name);
    if (!cm) return undefined;
    const pools = parsePools(cm.data ?? {});
    const problems = pools.problems.map(formatProblem).join('\n');
    if (problems !== this.lastPoolProblems) {
      this.lastPoolProblems = problems;
      for (const p of pools.problems) this.log[p.severity === 'error' ? 'error' : 'warn']({ configmap: `${this.cm.namespace}/${this.cm.name}` }, formatProblem(p));
    }
    return pools;
  }

  /**
   * MetalLB's pools, or undefined when svc_metallb is off or not every cache has listed yet
   * (`ready` false). Namespaces are waited for only while some pool has namespaceSelectors.
   */
  private metallbPools(): { ready: boolean; cfg: MetallbConfig | undefined } {
    const m = this.metallb;
    if (!m) return { ready: true, cfg: undefined };
    if (!m.pools.synced || !m.ads.synced) return { ready: false, cfg: undefined };
    const cfg = parseMetallb(m.pools.list(), m.ads.list());
    const problems = cfg.problems.map(formatMetallbProblem).join('\n');
    if (problems !== this.lastMetallbProblems) {
      this.lastMetallbProblems = problems;
      for (const p of cfg.problems) this.log[p.severity === 'error' ? 'error' : 'warn']({ metallb: p.key }, formatMetallbProblem(p));
    }
    const needsNamespaces = cfg.pools.some((p) => p.namespaceSelectors.length > 0);
    return { ready: !needsNamespaces || m.namespaces.synced, cfg };
  }

  private namespaceLabels(): Map<string, Record<string, string>> {
    return new Map((this.metallb?.namespaces.list() ?? []).map((n) => [n.metadata?.name ?? '', n.metadata?.labels ?? {}]));
  }

  /**
   * Address → the nodes that may announce it (L2Advertisement nodeSelectors), or undefined while
   * that cannot be known yet: svc_metallb is on and its objects, or the Nodes a limiting pool
   * needs, have not listed. Starts the Nodes watch the first time a pool needs it.
   */
  private announcerLimits(managed: readonly ServiceObj[], cfg: MetallbConfig | undefined): Map<string, NodeLimit> | undefined {
    const m = this.metallb;
    if (!m) return new Map();
    if (!cfg) return undefined;
    if (!cfg.pools.some(limitsNodes)) return new Map();
    this.watchNodes('an L2Advertisement limits a pool to some nodes (nodeSelectors)');
    if (!m.nodes.synced) return undefined;
    const labels = new Map(m.nodes.list().map((n) => [n.metadata?.name ?? '', n.metadata?.labels ?? {}]));
    return nodeLimits(cfg, managed.flatMap(recordedIps), labels);
  }

  private watchNodes(why: string): void {
    if (this.nodesRun || !this.metallb || !this.runSignal || this.runSignal.aborted) return;
    this.log.info(`${why}; watching the Nodes' labels`);
    this.nodesRun = this.metallb.nodes.run(this.runSignal);
  }

  /**
   * The interfaces this node announces each address on (logic/metallb.ts, announceInterfaces).
   * This node's labels matter only where an advertisement naming interfaces has nodeSelectors;
   * until the Nodes have listed, such advertisements do not apply (vip_interface meanwhile).
   */
  private localInterfaces(managed: readonly ServiceObj[], cfg: MetallbConfig | undefined): ReadonlyMap<string, readonly string[]> {
    if (!cfg || !cfg.pools.some(namesInterfaces)) return new Map();
    let labels: Record<string, string> | undefined;
    if (interfacesNeedLabels(cfg)) {
      this.watchNodes('an L2Advertisement names interfaces for some nodes (interfaces with nodeSelectors)');
      if (this.metallb?.nodes.synced) labels = this.metallb.nodes.list().find((n) => n.metadata?.name === this.o.nodeName)?.metadata?.labels ?? {};
    }
    return interfacesByAddress(cfg, managed.flatMap(recordedIps), labels);
  }

  /** The interfaces this node announces `ip` on, in the order to try; undefined: vip_interface. */
  announceInterfaces(ip: string): readonly string[] | undefined {
    return this.interfacesByIp.get(ip);
  }

  /** One pass: placement on every node; allocation and status writes on the allocator. */
  private async reconcile(signal: AbortSignal): Promise<void> {
    if (!this.services.synced || !this.slices.synced) return;
    const all = this.services.list();
    const managed = all.filter((s) => (this.o.namespace ? s.metadata?.namespace === this.o.namespace : true) && isManaged(s, this.filter));
    const ml = this.metallbPools();
    const limits = this.announcerLimits(managed, ml.cfg);
    // Not knowable yet: keep the last plan (before the first one this node holds nothing and is
    // nobody's candidate, placementReady()).
    if (limits) {
      const ifaces = this.localInterfaces(managed, ml.cfg);
      const ifacesChanged = JSON.stringify([...ifaces]) !== JSON.stringify([...this.interfacesByIp]);
      this.interfacesByIp = ifaces;
      this.place(managed, limits, ifacesChanged);
    }
    if (!this.allocating() || !this.configMaps.synced) return;

    const managedKeys = new Set(managed.map(serviceKey));
    // Addresses another controller wrote into an unmanaged LoadBalancer Service: never hand them out.
    const reserved = all
      .filter((s) => !managedKeys.has(serviceKey(s)) && s.spec?.type === 'LoadBalancer' && !allocatedCondition(s))
      .flatMap((s) => ingressIps(s));
    if (!ml.ready) return;
    const pools = this.pools();
    const outcomes = allocate({
      pools,
      ...(ml.cfg ? { metallb: ml.cfg, namespaceLabels: this.namespaceLabels() } : {}),
      claims: managed.map(toClaim),
      controlPlaneVips: this.o.controlPlaneVips ?? [],
      reserved,
    });
    recordAllocationMetrics(pools, ml.cfg, outcomes);

    const writes: Array<{ svc: ServiceObj; patch: StatusPatch; outcome?: Outcome }> = [];
    const now = new Date();
    for (const svc of managed) {
      const outcome = outcomes.get(serviceKey(svc));
      if (!outcome) continue;
      this.report(svc, outcome);
      if (ml.cfg) this.reportUnadvertised(svc, outcome, ml.cfg);
      if (limits) this.reportUnannounced(svc, limits);
      const patch = statusPatch(svc, outcome, now);
      if (patch) writes.push({ svc, patch, outcome });
    }
    for (const svc of all) {
      if (managedKeys.has(serviceKey(svc))) continue;
      const patch = releasePatch(svc);
      if (patch) writes.push({ svc, patch });
    }
    await this.writeAll(writes, signal);
  }

  /** `interfacesChanged`: tell the desired-IPs listeners even if the set is the same (the holders re-check their interface). */
  private place(managed: readonly ServiceObj[], limits: ReadonlyMap<string, NodeLimit>, interfacesChanged = false): void {
    const p = plan({
      services: managed.map((s) => ({ key: serviceKey(s), ips: recordedIps(s), externalTrafficPolicy: externalTrafficPolicy(s) })),
      readyEndpointNodes: readyEndpointNodes(this.slices.list()),
      members: this.members ?? [],
      eligibleNodes: new Map([...limits].map(([ip, l]) => [ip, l.nodes])),
      controlPlaneVips: this.o.controlPlaneVips ?? [],
    });
    this.lastPlan = p;
    for (const fn of this.planListeners) {
      try {
        fn(p);
      } catch (err) {
        this.log.error({ err: describeError(err) }, 'plan listener threw');
      }
    }
    // No membership yet: hold nothing. Who may take an IP first is the claim protocol's call
    // (logic/membership.ts), not a delay here.
    const mine = this.members === undefined ? [] : ipsForNode(p, this.o.nodeName);
    // The first placement is news even when it is empty: it says the caches have listed.
    const same = mine.length === this.desiredIps.length && mine.every((ip, i) => ip === this.desiredIps[i]);
    if (this.placedOnce && same && !interfacesChanged) return;
    this.placedOnce = true;
    if (!same) this.log.info({ node: this.o.nodeName, ips: mine, before: this.desiredIps }, 'service IPs this node should hold changed');
    this.desiredIps = mine;
    for (const fn of this.listeners) {
      try {
        fn(mine);
      } catch (err) {
        this.log.error({ err: describeError(err) }, 'desired-IPs listener threw');
      }
    }
  }

  /** Warning Events for waiting Services (once per distinct reason and message), Normal on allocation. */
  private report(svc: ServiceObj, outcome: Outcome): void {
    const key = serviceKey(svc);
    let text: string;
    let ev: EventInput | undefined;
    if (outcome.kind === 'pending') {
      text = `pending|${outcome.reason}|${outcome.message}`;
      ev = { type: 'Warning', reason: PENDING_REASONS[outcome.reason], action: 'Allocate', note: outcome.message };
    } else {
      text = `assigned|${outcome.ips.join(',')}|${outcome.missing.map((m) => m.message).join(';')}`;
      const before = recordedIps(svc);
      const changed = before.join(',') !== outcome.ips.join(',');
      if (outcome.missing.length > 0) {
        ev = { type: 'Warning', reason: PENDING_REASONS[outcome.missing[0]!.reason], action: 'Allocate', note: `allocated ${outcome.ips.join(', ')}; ${outcome.missing.map((m) => m.message).join('; ')}` };
      } else if (changed) {
        ev = { type: 'Normal', reason: 'Allocated', action: 'Allocate', note: `allocated ${outcome.ips.join(', ')}` };
      }
    }
    if (this.warned.get(key) === text) return;
    this.warned.set(key, text);
    if (outcome.kind === 'pending') this.log.warn({ svc: key, reason: outcome.reason }, outcome.message);
    if (ev) this.eventSink(svc, ev);
  }

  /**
   * MetalLB hands out an unadvertised pool's addresses and announces nothing; vipd announces them
   * on its services interface from every node, and says so: a Warning Event on the Service and a
   * log line, once per Service and set of such pools (the gauge is in recordAllocationMetrics).
   */
  private reportUnadvertised(svc: ServiceObj, outcome: Outcome, cfg: MetallbConfig): void {
    const key = serviceKey(svc);
    const names = outcome.kind !== 'assigned' ? [] : [...new Set(outcome.ips.map((ip) => metallbPoolOf(cfg, ip)).filter((p) => p !== undefined && p.announcements.length === 0).map((p) => p!.name))].sort();
    const text = names.join(',');
    if ((this.unadvertisedWarned.get(key) ?? '') === text) return;
    if (text === '') {
      this.unadvertisedWarned.delete(key);
      return;
    }
    this.unadvertisedWarned.set(key, text);
    const note = `address from IPAddressPool ${names.join(', ')}, which no L2Advertisement selects: MetalLB would announce nothing; vipd announces it on its services interface from any node. Add an L2Advertisement for the pool to say where.`;
    this.log.warn({ svc: key, pools: names }, note);
    this.eventSink(svc, { type: 'Warning', reason: 'Unadvertised', action: 'Allocate', note });
  }

  /**
   * An address whose pool's L2Advertisements select no live member is announced by no node, and
   * the Service keeps it (moving it would break what clients were told; a matching node that
   * starts vipd takes it). The allocator says so once per Service and set of such addresses: a
   * Warning Event `NoEligibleNode` and a log line naming the pool, advertisements and nodes.
   */
  private reportUnannounced(svc: ServiceObj, limits: ReadonlyMap<string, NodeLimit>): void {
    const key = serviceKey(svc);
    if (this.members === undefined) return;
    const members = this.members;
    const dark = recordedIps(svc).flatMap((ip) => {
      const l = limits.get(ip);
      return l && !members.some((m) => l.nodes.has(m)) ? [{ ip, ...l }] : [];
    });
    const text = dark.map((d) => `${d.ip}|${d.pool}|${[...d.nodes].sort().join(',')}`).join(';');
    if ((this.unannouncedWarned.get(key) ?? '') === text) return;
    if (text === '') {
      this.unannouncedWarned.delete(key);
      return;
    }
    this.unannouncedWarned.set(key, text);
    const parts = dark.map((d) => {
      const nodes = [...d.nodes].sort();
      const shown = nodes.length > 10 ? `${nodes.slice(0, 10).join(', ')} and ${nodes.length - 10} more` : nodes.join(', ');
      const ads = `L2Advertisement${d.advertisements.length > 1 ? 's' : ''} ${d.advertisements.join(', ')}`;
      return `${d.ip} (IPAddressPool ${d.pool}): the nodeSelectors of ${ads} ${nodes.length === 0 ? 'match no Node' : `match only ${shown}, where no live vipd member runs`}`;
    });
    const note = `announced by no node: ${parts.join('; ')}. The Service keeps its address; a matching node running vipd takes it. Label a node or change the nodeSelectors.`;
    this.log.warn({ svc: key, ips: dark.map((d) => d.ip), pools: [...new Set(dark.map((d) => d.pool))] }, note);
    this.eventSink(svc, { type: 'Warning', reason: 'NoEligibleNode', action: 'Announce', note });
  }

  private async writeAll(writes: Array<{ svc: ServiceObj; patch: StatusPatch }>, signal: AbortSignal): Promise<void> {
    const queue = writes.filter((w) => !this.inflight.has(serviceKey(w.svc)));
    const workers = Array.from({ length: Math.min(this.o.writeConcurrency ?? 4, queue.length) }, async () => {
      for (let w = queue.shift(); w; w = queue.shift()) {
        if (signal.aborted || !this.allocating()) return;
        await this.write(w.svc, w.patch, signal);
      }
    });
    await Promise.all(workers);
  }

  private async write(svc: ServiceObj, patch: StatusPatch, signal: AbortSignal): Promise<void> {
    const key = serviceKey(svc);
    const name = svc.metadata?.name ?? '';
    const namespace = svc.metadata?.namespace ?? '';
    this.inflight.add(key);
    try {
      await this.o.client.request('services.status.patch', 'PATCH', paths.serviceStatus(namespace, name), { body: patch, contentType: 'application/merge-patch+json', signal });
      this.log.info({ svc: key, ingress: patch.status.loadBalancer?.ingress?.map((i) => i.ip) ?? null }, 'service status written');
    } catch (err) {
      const code = httpStatus(err);
      if (code === 409 || code === 404) {
        // Changed or gone since we read it: the watch brings the new version and we decide again.
        this.log.debug({ svc: key, code }, 'service changed under us; will reconcile again');
      } else {
        this.log.warn({ svc: key, err: describeError(err) }, 'cannot write service status; retrying in 2 s');
        this.retrySoon();
      }
    } finally {
      this.inflight.delete(key);
    }
  }
}

/** Gauges for the allocator: Services assigned and pending (by reason), pool usage, unadvertised MetalLB pools. */
function recordAllocationMetrics(pools: PoolConfig | undefined, metallb: MetallbConfig | undefined, outcomes: ReadonlyMap<string, Outcome>): void {
  const pending = new Map<string, number>();
  const used: Addr[] = [];
  const seen = new Set<string>(); // a shared address is used once
  let assigned = 0;
  for (const o of outcomes.values()) {
    if (o.kind === 'assigned') {
      assigned++;
      for (const ip of o.ips) {
        const a = parseAddr(ip);
        if (a && !seen.has(ip)) used.push(a);
        seen.add(ip);
      }
    } else pending.set(o.reason, (pending.get(o.reason) ?? 0) + 1);
  }
  metrics.servicesAssigned.set(assigned);
  metrics.servicesPending.reset();
  for (const [reason, n] of pending) metrics.servicesPending.set({ reason }, n);
  metrics.poolAddresses.reset();
  const all: AddressPool[] = [...(pools?.pools.values() ?? []), ...(metallb?.pools ?? [])];
  for (const pool of all) {
    const size = pool.ranges.reduce((sum, r) => sum + rangeSize(r), 0n);
    metrics.poolAddresses.set({ pool: pool.key, state: 'total' }, Number(size > 2n ** 53n ? 2n ** 53n : size));
    metrics.poolAddresses.set({ pool: pool.key, state: 'used' }, used.filter((a) => poolContains(pool, a)).length);
  }
  metrics.poolUnadvertised.reset();
  for (const p of metallb?.pools ?? []) metrics.poolUnadvertised.set({ pool: p.name }, p.announcements.length === 0 ? 1 : 0);
}
