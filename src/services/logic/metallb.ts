/**
 * Address pools from MetalLB's `IPAddressPool` and `L2Advertisement` objects (metallb.io/v1beta1),
 * so a cluster moves from MetalLB without rewriting its configuration. Pure: the objects' JSON in,
 * pools and a list of problems out; the watching lives at the edge.
 *
 * What carries over (MetalLB's documented semantics, re-stated in vipd's terms):
 *   spec.addresses            CIDRs and `a-b` ranges, IPv4 and IPv6 mixed
 *   spec.autoAssign           false: only Services that ask for the pool or an address in it
 *   spec.avoidBuggyIPs        IPv4 addresses ending in .0 or .255 are never handed out
 *   spec.serviceAllocation    priority (lower first), namespaces, namespaceSelectors, serviceSelectors
 * An IPAddressPool is announced only when an L2Advertisement selects it (by ipAddressPools names or
 * ipAddressPoolSelectors; none of either selects every pool). MetalLB then hands out addresses of an
 * unadvertised pool and silently announces nothing (its issues #1561, #1154); vipd still allocates
 * from such a pool the same way but reports `unadvertised` so the edge can warn (Event, log, metric).
 *
 * Where a pool's addresses are announced: from the nodes whose labels match a nodeSelector of an
 * L2Advertisement that selects the pool (union over those advertisements); one of them without
 * nodeSelectors, or none at all (unadvertised), lets every node (`announcingNodes`).
 *
 * A bad entry is a problem (object, entry and what is allowed), never fatal.
 */
import { normalizeRanges, parseAddr, type AddrRange } from './addr.js';
import { METALLB_KEY_PREFIX, parseCidrEntry, parseRangeEntry, poolContains, type AddressPool, type PoolProblem } from './pools.js';

export interface LabelSelectorRequirement {
  key?: string;
  operator?: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export interface IPAddressPoolLike {
  metadata?: ObjectMeta;
  spec?: {
    addresses?: string[];
    autoAssign?: boolean;
    avoidBuggyIPs?: boolean;
    serviceAllocation?: {
      priority?: number;
      namespaces?: string[];
      namespaceSelectors?: LabelSelector[];
      serviceSelectors?: LabelSelector[];
    };
  };
}

export interface L2AdvertisementLike {
  metadata?: ObjectMeta;
  spec?: {
    ipAddressPools?: string[];
    ipAddressPoolSelectors?: LabelSelector[];
    nodeSelectors?: LabelSelector[];
    interfaces?: string[];
  };
}

/** Where and on what one L2Advertisement announces a pool's addresses. */
export interface Announcement {
  /** The L2Advertisement's name. */
  readonly advertisement: string;
  /** Empty: every node. */
  readonly nodeSelectors: readonly LabelSelector[];
  /** Empty: vipd's configured services interface. */
  readonly interfaces: readonly string[];
}

export interface MetallbPool extends AddressPool {
  /** `metallb:<name>`, so it never collides with a kubevip ConfigMap key. */
  readonly key: string;
  readonly name: string;
  readonly ranges: readonly AddrRange[];
  readonly autoAssign: boolean;
  /** Undefined (unset or 0): after every pool that has one (MetalLB's documented rule). */
  readonly priority: number | undefined;
  readonly namespaces: readonly string[];
  readonly namespaceSelectors: readonly LabelSelector[];
  readonly serviceSelectors: readonly LabelSelector[];
  /** Empty: no L2Advertisement selects this pool. */
  readonly announcements: readonly Announcement[];
}

export interface MetallbConfig {
  /** Sorted as MetalLB picks: priority ascending (unset last), then name. */
  readonly pools: readonly MetallbPool[];
  readonly problems: readonly PoolProblem[];
}

const ADDRESSES_ALLOWED = 'CIDRs such as 198.18.10.0/24 or ranges such as 198.18.10.10-198.18.10.50';

/** Kubernetes label selector semantics; an empty selector matches everything. */
export function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of sel.matchExpressions ?? []) {
    const key = r.key ?? '';
    const has = Object.prototype.hasOwnProperty.call(labels, key);
    const values = r.values ?? [];
    switch (r.operator) {
      case 'In':
        if (!has || !values.includes(labels[key] as string)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[key] as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an unknown operator selects nothing, as the API server would refuse it
    }
  }
  return true;
}

/** A list of selectors selects when any one does; an empty list selects everything. */
export function anySelectorMatches(sels: readonly LabelSelector[], labels: Readonly<Record<string, string>>): boolean {
  return sels.length === 0 || sels.some((s) => selectorMatches(s, labels));
}

/** Drop IPv4 addresses whose last octet is 0 or 255 (avoidBuggyIPs). */
export function withoutBuggyIps(ranges: readonly AddrRange[]): AddrRange[] {
  const out: AddrRange[] = [];
  for (const r of ranges) {
    if (r.family !== 4) {
      out.push(r);
      continue;
    }
    // Walk /24 blocks; each contributes at most one range (.1–.254 clipped to r).
    for (let block = r.first >> 8n; block <= r.last >> 8n; block++) {
      const first = r.first > (block << 8n) + 1n ? r.first : (block << 8n) + 1n;
      const last = r.last < (block << 8n) + 254n ? r.last : (block << 8n) + 254n;
      if (first <= last) out.push({ family: 4, first, last });
    }
  }
  return out;
}

function poolName(p: IPAddressPoolLike): string {
  return p.metadata?.name ?? '';
}

function comparePools(a: MetallbPool, b: MetallbPool): number {
  if (a.priority !== b.priority) {
    if (a.priority === undefined) return 1;
    if (b.priority === undefined) return -1;
    return a.priority - b.priority;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Translate MetalLB objects (already limited to the namespace vipd reads them from). */
export function parseMetallb(pools: readonly IPAddressPoolLike[], ads: readonly L2AdvertisementLike[]): MetallbConfig {
  const problems: PoolProblem[] = [];
  const out: MetallbPool[] = [];
  for (const p of pools) {
    const name = poolName(p);
    const key = `IPAddressPool ${name}`;
    const ranges: AddrRange[] = [];
    const addresses = p.spec?.addresses ?? [];
    if (addresses.length === 0) problems.push({ key, severity: 'error', message: `spec.addresses is empty, so the pool has no addresses; it takes ${ADDRESSES_ALLOWED}` });
    for (const raw of addresses) {
      const entry = raw.trim();
      const r = entry.includes('/') ? parseCidrEntry(key, entry, false) : parseRangeEntry(key, entry);
      ranges.push(...r.ranges);
      problems.push(...r.problems);
    }
    const normal = normalizeRanges(ranges);
    const alloc = p.spec?.serviceAllocation;
    const announcements: Announcement[] = [];
    for (const ad of ads) {
      const names = ad.spec?.ipAddressPools ?? [];
      const sels = ad.spec?.ipAddressPoolSelectors ?? [];
      const selected =
        (names.length === 0 && sels.length === 0) || names.includes(name) || sels.some((s) => selectorMatches(s, p.metadata?.labels ?? {}));
      if (!selected) continue;
      announcements.push({ advertisement: ad.metadata?.name ?? '', nodeSelectors: ad.spec?.nodeSelectors ?? [], interfaces: ad.spec?.interfaces ?? [] });
    }
    if (announcements.length === 0) {
      problems.push({ key, severity: 'warning', message: 'no L2Advertisement selects this pool; vipd hands out its addresses and announces them on vipd\'s services interface from every node (MetalLB would announce nothing); add an L2Advertisement to say where' });
    }
    out.push({
      key: `${METALLB_KEY_PREFIX}${name}`,
      name,
      ranges: p.spec?.avoidBuggyIPs === true ? withoutBuggyIps(normal) : normal,
      autoAssign: p.spec?.autoAssign !== false,
      // MetalLB's docs: "unset or set to 0" is the lowest priority, used last.
      priority: typeof alloc?.priority === 'number' && alloc.priority !== 0 ? alloc.priority : undefined,
      namespaces: alloc?.namespaces ?? [],
      namespaceSelectors: alloc?.namespaceSelectors ?? [],
      serviceSelectors: alloc?.serviceSelectors ?? [],
      announcements,
    });
  }
  for (const ad of ads) {
    for (const n of ad.spec?.ipAddressPools ?? []) {
      if (!pools.some((p) => poolName(p) === n)) {
        problems.push({ key: `L2Advertisement ${ad.metadata?.name ?? ''}`, severity: 'warning', message: `spec.ipAddressPools names "${n}", which is no IPAddressPool in this namespace` });
      }
    }
  }
  return { pools: out.sort(comparePools), problems };
}

export interface ServiceFacts {
  readonly namespace: string;
  readonly namespaceLabels: Readonly<Record<string, string>>;
  readonly serviceLabels: Readonly<Record<string, string>>;
}

/** May this Service take addresses from the pool? (serviceAllocation's namespaces and selectors) */
export function poolAdmits(pool: MetallbPool, svc: ServiceFacts): boolean {
  const nsScoped = pool.namespaces.length > 0 || pool.namespaceSelectors.length > 0;
  if (nsScoped && !pool.namespaces.includes(svc.namespace) && !pool.namespaceSelectors.some((s) => selectorMatches(s, svc.namespaceLabels))) return false;
  return anySelectorMatches(pool.serviceSelectors, svc.serviceLabels);
}

/** Is the pool limited to some namespaces or Services (MetalLB calls such a pool pinned)? */
export function isPinned(pool: MetallbPool): boolean {
  return pool.namespaces.length > 0 || pool.namespaceSelectors.length > 0 || pool.serviceSelectors.length > 0;
}

/**
 * Pools a Service may be given an address from, in the order they are tried. `askedPool` is the
 * metallb.io/address-pool annotation: only that pool, even when autoAssign is false. Without it,
 * the pools that admit the Service, autoAssign ones only unless `explicit` (the Service asked for
 * an address, which may lie in an autoAssign=false pool). Order: pools pinned to the Service by
 * namespaces or selectors first, then the others; each group by priority, then name. That is
 * MetalLB's allocator since its PR #1693 ("allocate from desired pools based on priority before
 * other pools"); its docs only say the matching pools are tried by priority.
 */
export function candidatePools(cfg: MetallbConfig, svc: ServiceFacts, askedPool: string | undefined, explicit = false): MetallbPool[] {
  if (askedPool !== undefined) return cfg.pools.filter((p) => p.name === askedPool && poolAdmits(p, svc));
  const admitted = cfg.pools.filter((p) => (explicit || p.autoAssign) && poolAdmits(p, svc));
  return [...admitted.filter(isPinned), ...admitted.filter((p) => !isPinned(p))];
}

/** The MetalLB pool an address belongs to (the first in MetalLB's order), if any. */
export function metallbPoolOf(cfg: MetallbConfig, ip: string): MetallbPool | undefined {
  const a = parseAddr(ip);
  return a === undefined ? undefined : cfg.pools.find((p) => poolContains(p, a));
}

export function formatMetallbProblem(p: PoolProblem): string {
  return `MetalLB ${p.key}${p.severity === 'warning' ? ' (warning)' : ''}: ${p.message}`;
}

/** Does the pool limit which nodes announce it (every advertisement selecting it has nodeSelectors)? */
export function limitsNodes(pool: MetallbPool): boolean {
  return pool.announcements.length > 0 && pool.announcements.every((a) => a.nodeSelectors.length > 0);
}

/**
 * The nodes that may announce the pool's addresses, out of `nodeLabels` (Node name → labels), or
 * undefined when any node may: an advertisement without nodeSelectors selects every node, and an
 * unadvertised pool is announced from every node (see the header).
 */
export function announcingNodes(pool: MetallbPool, nodeLabels: ReadonlyMap<string, Readonly<Record<string, string>>>): ReadonlySet<string> | undefined {
  if (!limitsNodes(pool)) return undefined;
  const out = new Set<string>();
  for (const [node, labels] of nodeLabels) if (pool.announcements.some((a) => a.nodeSelectors.some((s) => selectorMatches(s, labels)))) out.add(node);
  return out;
}

/** Why an address may be announced only from some nodes, and from which. */
export interface NodeLimit {
  readonly pool: string;
  /** The L2Advertisements whose nodeSelectors apply, sorted. */
  readonly advertisements: readonly string[];
  /** The Nodes that match, whether or not vipd runs on them. */
  readonly nodes: ReadonlySet<string>;
}

/**
 * For each of `ips` in a MetalLB pool that limits its nodes (the pool `metallbPoolOf` names, as for
 * the unadvertised warning), which nodes may announce it. An address outside such pools is absent:
 * any node may.
 */
export function nodeLimits(cfg: MetallbConfig, ips: Iterable<string>, nodeLabels: ReadonlyMap<string, Readonly<Record<string, string>>>): Map<string, NodeLimit> {
  const out = new Map<string, NodeLimit>();
  const byPool = new Map<string, NodeLimit>();
  for (const ip of ips) {
    const pool = metallbPoolOf(cfg, ip);
    if (!pool || !limitsNodes(pool)) continue;
    let limit = byPool.get(pool.name);
    if (!limit) {
      limit = { pool: pool.name, advertisements: [...new Set(pool.announcements.map((a) => a.advertisement))].sort(), nodes: announcingNodes(pool, nodeLabels)! };
      byPool.set(pool.name, limit);
    }
    out.set(ip, limit);
  }
  return out;
}

/**
 * The interfaces a node announces a pool's addresses on (L2Advertisement `interfaces`), given that
 * node's labels (undefined: not known, so only advertisements without nodeSelectors apply).
 * MetalLB's union: over the selecting advertisements that apply to the node, in name order, each
 * list in its own order; one of them without `interfaces` means vipd's own interface
 * (vip_interface), as does an unadvertised pool or none applying: the result is then undefined.
 * Which nodes may announce is nodeSelectors' business (`announcingNodes`); this never narrows it,
 * as in MetalLB, where the interfaces do not take part in choosing the node.
 */
export function announceInterfaces(pool: MetallbPool, labels: Readonly<Record<string, string>> | undefined): readonly string[] | undefined {
  const applies = pool.announcements
    .filter((a) => a.nodeSelectors.length === 0 || (labels !== undefined && a.nodeSelectors.some((s) => selectorMatches(s, labels))))
    .sort((a, b) => (a.advertisement < b.advertisement ? -1 : a.advertisement > b.advertisement ? 1 : 0));
  if (applies.length === 0 || applies.some((a) => a.interfaces.length === 0)) return undefined;
  return [...new Set(applies.flatMap((a) => a.interfaces))];
}

/** Does some L2Advertisement of a pool name interfaces? */
export function namesInterfaces(pool: MetallbPool): boolean {
  return pool.announcements.some((a) => a.interfaces.length > 0);
}

/** Does some pool have an advertisement naming interfaces and one with nodeSelectors (so the node's own labels decide)? */
export function interfacesNeedLabels(cfg: MetallbConfig): boolean {
  return cfg.pools.some((p) => namesInterfaces(p) && p.announcements.some((a) => a.nodeSelectors.length > 0));
}

/** For each of `ips` in a MetalLB pool whose advertisements name interfaces for this node: those interfaces. */
export function interfacesByAddress(cfg: MetallbConfig, ips: Iterable<string>, labels: Readonly<Record<string, string>> | undefined): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const ip of ips) {
    const pool = metallbPoolOf(cfg, ip);
    const ifaces = pool ? announceInterfaces(pool, labels) : undefined;
    if (ifaces) out.set(ip, ifaces);
  }
  return out;
}
