/**
 * Service IP allocation as one pure function: pools + what each Service holds and asks for →
 * what each Service gets, or why it waits. The controller persists the result; it never
 * allocates anywhere else.
 *
 * Guarantees (property-tested in test/services/logic/ipam.test.ts):
 * - An address goes to at most one Service, except allowed sharing: same namespace,
 *   allow-share on for it, same externalTrafficPolicy, every Service on the address lists ports
 *   and no (port, protocol) pair appears twice.
 * - Every address handed out lies in the pool of the Service's namespace, or is a control-plane
 *   VIP the Service asked for by name.
 * - A Service's current addresses are kept while they stay valid (in its pool, of a family it
 *   wants, matching its request, not in conflict); nothing is reshuffled to make room. Among two
 *   current holders in conflict the earlier Service (priority, then key) keeps the address.
 * - A request (annotation or spec.loadBalancerIP) is honoured exactly or not at all: no partial
 *   grant, no substitute address. An address some Service asked for is never handed out
 *   automatically, so a waiting request is not overtaken.
 * - Same input → same output, whatever the order of `claims`; feeding the output back as
 *   `current` changes nothing. Free addresses are taken lowest first (highest first with
 *   search-order=desc), so released ones are reused; pools are never enumerated.
 */
import { familyName, type Family } from '../../net/ip.js';
import { canonicalAddr, formatAddr, parseAddr, type Addr, type AddrRange } from './addr.js';
import { GLOBAL, METALLB_KEY_PREFIX, allowShareFor, describePool, namespacePool, parsePools, poolContains, poolFor, poolHasFamily, poolRanges, type AddressPool, type PoolConfig } from './pools.js';
import { candidatePools, type MetallbConfig } from './metallb.js';

export type IpFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';

export interface ServicePort {
  readonly port: number;
  /** TCP, UDP or SCTP; Kubernetes defaults to TCP. */
  readonly protocol: string;
}

export interface ServiceClaim {
  /** `namespace/name`. */
  readonly key: string;
  readonly namespace: string;
  /** Orders conflicts: smaller first (the creation timestamp in RFC 3339 sorts correctly). Ties: key. */
  readonly priority: string;
  /** spec.ipFamilies in order; may be empty. */
  readonly families: readonly Family[];
  readonly policy: IpFamilyPolicy;
  /** Requested addresses as written (annotation kube-vip.io/loadbalancerIPs, else spec.loadBalancerIP). */
  readonly requested: readonly string[];
  /** Where `requested` came from, for messages, e.g. `annotation kube-vip.io/loadbalancerIPs`. */
  readonly requestSource?: string;
  readonly ports: readonly ServicePort[];
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  /** Addresses vipd recorded for this Service before (its own record, never another controller's status). */
  readonly current: readonly string[];
  /** The Service's labels (MetalLB serviceSelectors). */
  readonly labels?: Readonly<Record<string, string>>;
  /** metallb.io/address-pool: only this IPAddressPool. */
  readonly askedPool?: string;
  /** metallb.io/allow-shared-ip: Services with the same key may share an address (any namespace). */
  readonly sharingKey?: string;
}

export type PendingReason =
  | 'exhausted'
  | 'requested-ip-out-of-pool'
  | 'requested-ip-in-use'
  | 'no-pool-for-namespace'
  | 'family-unavailable'
  | 'invalid-request';

export interface MissingFamily {
  readonly family: Family;
  readonly reason: 'exhausted' | 'family-unavailable';
  readonly message: string;
}

export type Outcome =
  /** `ips`: canonical, in the Service's family order. `missing`: PreferDualStack families it could not get. */
  | { readonly kind: 'assigned'; readonly ips: readonly string[]; readonly missing: readonly MissingFamily[] }
  | { readonly kind: 'pending'; readonly reason: PendingReason; readonly message: string };

export interface AllocationInput {
  /**
   * The kubevip ConfigMap's pools. undefined, with no MetalLB pools either = no pool configuration
   * at all: current addresses are kept, nothing new is given.
   */
  readonly pools: PoolConfig | undefined;
  /** Pools from MetalLB IPAddressPools (logic/metallb.ts); undefined or empty: none. */
  readonly metallb?: MetallbConfig;
  /** Namespace name → its labels (MetalLB namespaceSelectors); a namespace not listed has none. */
  readonly namespaceLabels?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  readonly claims: readonly ServiceClaim[];
  /** Never handed out automatically; a Service that names one gets it (it rides on the control-plane holder). */
  readonly controlPlaneVips?: readonly string[];
  /** In use outside vipd (e.g. another controller's Services): never handed out, a request for one waits. */
  readonly reserved?: readonly string[];
}

const DUAL: readonly Family[] = [4, 6];
const EMPTY_POOLS: PoolConfig = parsePools(undefined);
const NO_POOLS = 'no address pools are configured (the kubevip ConfigMap is missing and no MetalLB IPAddressPool is read)';

interface Holding {
  readonly claim: ServiceClaim;
  readonly ports: ReadonlySet<string>;
}

interface Ctx {
  readonly input: AllocationInput;
  /** The ConfigMap's pools; an empty configuration when only MetalLB pools exist; undefined when neither does. */
  readonly kv: PoolConfig | undefined;
  readonly cp: ReadonlySet<string>;
  readonly reserved: ReadonlySet<string>;
  readonly requestedByAnyone: ReadonlySet<string>;
  /** ip → Services holding it. */
  readonly held: Map<string, Holding[]>;
  /** namespace → addresses held by its Services (for sharing). */
  readonly byNamespace: Map<string, Set<string>>;
  /** metallb.io/allow-shared-ip key → addresses held by Services with that key. */
  readonly bySharingKey: Map<string, Set<string>>;
  /** `poolKey|family|order` → next address to try; only ever moves past used addresses. */
  readonly cursors: Map<string, bigint>;
}

const portKey = (p: ServicePort): string => `${p.protocol.toUpperCase()}/${p.port}`;

export function compareClaims(a: ServiceClaim, b: ServiceClaim): number {
  return a.priority < b.priority ? -1 : a.priority > b.priority ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Families a Service may hold, in its order (SingleStack holds one of them). */
function allowedFamilies(c: ServiceClaim): readonly Family[] {
  const fams = [...new Set(c.families)];
  if (c.policy === 'SingleStack') return fams.length > 0 ? [fams[0] as Family] : DUAL;
  // The API server always lists both families for RequireDualStack; be safe if it did not.
  if (c.policy === 'RequireDualStack') return [...new Set([...fams, ...DUAL])];
  return fams.length > 0 ? fams : DUAL;
}

type Requests = { kind: 'none' } | { kind: 'ok'; byFamily: Map<Family, string> } | { kind: 'bad'; reason: PendingReason; message: string };

function parseRequests(c: ServiceClaim): Requests {
  const list = c.requested.map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) return { kind: 'none' };
  const src = c.requestSource ?? 'requested addresses';
  const byFamily = new Map<Family, string>();
  for (const raw of list) {
    const ip = canonicalAddr(raw);
    if (ip === undefined) return { kind: 'bad', reason: 'invalid-request', message: `${src}: "${raw}" is not an IP address (host names are not supported)` };
    if (ip === '0.0.0.0' || ip === '::') return { kind: 'bad', reason: 'invalid-request', message: `${src}: "${raw}" asks for DHCP, which vipd does not do; name an address from the pool or leave it empty` };
    const f = (parseAddr(ip) as Addr).family;
    const prev = byFamily.get(f);
    if (prev !== undefined && prev !== ip) {
      return { kind: 'bad', reason: 'invalid-request', message: `${src}: two ${familyName(f)} addresses (${prev}, ${ip}); a Service gets at most one address per family` };
    }
    byFamily.set(f, ip);
  }
  const allowed = allowedFamilies(c);
  for (const f of byFamily.keys()) {
    if (!allowed.includes(f)) {
      return { kind: 'bad', reason: 'family-unavailable', message: `${src}: asks for ${familyName(f)} but the Service's ipFamilies allow ${allowed.map(familyName).join(', ')}` };
    }
  }
  if (c.policy === 'SingleStack' && byFamily.size > 1) {
    return { kind: 'bad', reason: 'family-unavailable', message: `${src}: a SingleStack Service gets one address, ${byFamily.size} were asked for` };
  }
  if (c.policy === 'RequireDualStack' && byFamily.size < 2) {
    return { kind: 'bad', reason: 'family-unavailable', message: `${src}: a RequireDualStack Service needs one IPv4 and one IPv6 address; only ${[...byFamily.keys()].map(familyName).join('')} was asked for` };
  }
  return { kind: 'ok', byFamily };
}

/** Why `claim` may not hold `ip` next to its current holders, or undefined if it may. */
function conflict(ctx: Ctx, claim: ServiceClaim, ip: string): string | undefined {
  const holders = ctx.held.get(ip) ?? [];
  if (holders.length === 0) return undefined;
  const others = holders.map((h) => h.claim.key).join(', ');
  const first = holders[0] as Holding;
  // MetalLB's rule: every Service on the address has the same metallb.io/allow-shared-ip key.
  // Otherwise kube-vip's: one namespace with allow-share on.
  // Symmetric, so the outcome does not depend on which Service came first: a key on any side
  // means only the same key on every side shares.
  const keyShared = claim.sharingKey !== undefined && holders.every((h) => h.claim.sharingKey === claim.sharingKey);
  if (!keyShared) {
    if (claim.sharingKey !== undefined) return `${ip} is used by ${others}, without metallb.io/allow-shared-ip=${claim.sharingKey}`;
    const keyed = holders.find((h) => h.claim.sharingKey !== undefined);
    if (keyed) return `${ip} is used by ${others}, shared only by metallb.io/allow-shared-ip=${keyed.claim.sharingKey as string}`;
    if (first.claim.namespace !== claim.namespace) return `${ip} is used by ${others} (sharing is only within a namespace)`;
    if (!ctx.kv || !allowShareFor(ctx.kv, claim.namespace)) return `${ip} is used by ${others} (allow-share is off for namespace ${claim.namespace})`;
  }
  if (first.claim.externalTrafficPolicy !== claim.externalTrafficPolicy) return `${ip} is used by ${others} with externalTrafficPolicy ${first.claim.externalTrafficPolicy}`;
  if (claim.ports.length === 0) return `${ip} is used by ${others} (a Service without ports cannot share)`;
  if (holders.some((h) => h.ports.size === 0)) return `${ip} is used by ${others}, which has no ports and cannot share`;
  for (const p of claim.ports) {
    const k = portKey(p);
    const clash = holders.find((h) => h.ports.has(k));
    if (clash) return `${ip} is used by ${clash.claim.key} on port ${k}`;
  }
  return undefined;
}

function hold(ctx: Ctx, claim: ServiceClaim, ip: string): void {
  const list = ctx.held.get(ip) ?? [];
  list.push({ claim, ports: new Set(claim.ports.map(portKey)) });
  ctx.held.set(ip, list);
  let ns = ctx.byNamespace.get(claim.namespace);
  if (!ns) ctx.byNamespace.set(claim.namespace, (ns = new Set()));
  ns.add(ip);
  if (claim.sharingKey !== undefined) {
    let sk = ctx.bySharingKey.get(claim.sharingKey);
    if (!sk) ctx.bySharingKey.set(claim.sharingKey, (sk = new Set()));
    sk.add(ip);
  }
}

function release(ctx: Ctx, claim: ServiceClaim, ip: string): void {
  const list = (ctx.held.get(ip) ?? []).filter((h) => h.claim !== claim);
  if (claim.sharingKey !== undefined && !list.some((h) => h.claim.sharingKey === claim.sharingKey)) ctx.bySharingKey.get(claim.sharingKey)?.delete(ip);
  if (list.length > 0) {
    ctx.held.set(ip, list);
    return;
  }
  ctx.held.delete(ip);
  ctx.byNamespace.get(claim.namespace)?.delete(ip);
  // A freed address may sit behind a cursor; let every cursor of its family look again.
  const a = parseAddr(ip) as Addr;
  for (const [k, v] of ctx.cursors) {
    const [, fam, order] = k.split('|');
    if (Number(fam) !== a.family) continue;
    if (order === 'asc' ? a.value < v : a.value > v) ctx.cursors.set(k, a.value);
  }
}

function isUsed(ctx: Ctx, family: Family, value: bigint): boolean {
  const ip = formatAddr({ family, value });
  return ctx.held.has(ip) || ctx.reserved.has(ip) || ctx.cp.has(ip) || ctx.requestedByAnyone.has(ip);
}

/** Lowest (or highest) free address of `family` in `pool`. Walks only over used addresses, never the pool. */
function findFree(ctx: Ctx, pool: AddressPool, family: Family): string | undefined {
  // search-order is the ConfigMap's setting; MetalLB hands out lowest first.
  const order = pool.key.startsWith(METALLB_KEY_PREFIX) ? 'asc' : (ctx.kv?.searchOrder ?? 'asc');
  const ranges: AddrRange[] = poolRanges(pool, family);
  if (order === 'desc') ranges.reverse();
  const ck = `${pool.key}|${family}|${order}`;
  const cursor = ctx.cursors.get(ck);
  for (const r of ranges) {
    let v = order === 'asc' ? r.first : r.last;
    if (cursor !== undefined) {
      if (order === 'asc' ? cursor > r.last : cursor < r.first) continue;
      if (order === 'asc' ? cursor > v : cursor < v) v = cursor;
    }
    while (order === 'asc' ? v <= r.last : v >= r.first) {
      if (!isUsed(ctx, family, v)) {
        ctx.cursors.set(ck, v);
        return formatAddr({ family, value: v });
      }
      v = order === 'asc' ? v + 1n : v - 1n;
    }
  }
  ctx.cursors.set(ck, order === 'asc' ? (ranges.at(-1)?.last ?? 0n) + 1n : (ranges.at(-1)?.first ?? 0n) - 1n);
  return undefined;
}

/**
 * An address of `family` in `pool` that `claim` may share: one a Service with the same
 * metallb.io/allow-shared-ip key holds (either family, any namespace), else (kube-vip's
 * allow-share, IPv4 only) one a Service of this namespace holds.
 */
function findShared(ctx: Ctx, claim: ServiceClaim, pool: AddressPool, family: Family): string | undefined {
  const desc = !pool.key.startsWith(METALLB_KEY_PREFIX) && ctx.kv?.searchOrder === 'desc';
  const pick = (candidates: Iterable<string>): string | undefined => {
    let best: Addr | undefined;
    for (const ip of candidates) {
      const a = parseAddr(ip) as Addr;
      if (a.family !== family || ctx.cp.has(ip) || ctx.reserved.has(ip) || !poolContains(pool, a)) continue;
      if ((ctx.held.get(ip) ?? []).some((h) => h.claim === claim)) continue;
      if (conflict(ctx, claim, ip) !== undefined) continue;
      if (!best || (desc ? a.value > best.value : a.value < best.value)) best = a;
    }
    return best && formatAddr(best);
  };
  if (claim.sharingKey !== undefined) {
    const byKey = pick(ctx.bySharingKey.get(claim.sharingKey) ?? []);
    if (byKey !== undefined) return byKey;
  }
  if (family !== 4 || !ctx.kv || !allowShareFor(ctx.kv, claim.namespace)) return undefined;
  return pick(ctx.byNamespace.get(claim.namespace) ?? []);
}

/** The pools `claim` may take addresses from, in the order tried, or why there are none. */
interface Candidates {
  readonly pools: readonly AddressPool[];
  /** Why `pools` is empty (or only pools without addresses); for the pending message. */
  readonly none?: string;
  /** `cidr-x (…), the pool for namespace x` or `the pools for x/web (…; …)`, for messages. */
  readonly describe: string;
  /** `describe` as the subject of `has`/`have`: `… x, has` or `… (…) have`. */
  readonly has: string;
}

function describeList(c: ServiceClaim, list: readonly AddressPool[]): { describe: string; has: string } {
  if (list.length === 1) {
    const describe = `${describePool(list[0] as AddressPool)}, the pool for ${c.askedPool !== undefined ? c.key : `namespace ${c.namespace}`}`;
    return { describe, has: `${describe}, has` };
  }
  const describe = `the pools for ${c.key} (${list.map(describePool).join('; ')})`;
  return { describe, has: `${describe} have` };
}

/**
 * How the two sources combine (docs/services.md): a Service naming an IPAddressPool
 * (metallb.io/address-pool) gets only that pool. Otherwise a namespace with its own kubevip pool
 * (cidr-<ns>/range-<ns>) uses only it, as before MetalLB pools existed. Otherwise the MetalLB pools
 * that admit the Service, in MetalLB's order (logic/metallb.ts candidatePools), then the kubevip
 * global pool. `explicit`: the Service asked for an address, which may lie in an autoAssign=false pool.
 */
function poolsFor(ctx: Ctx, c: ServiceClaim, explicit: boolean): Candidates {
  const ml = ctx.input.metallb;
  const facts = { namespace: c.namespace, namespaceLabels: ctx.input.namespaceLabels?.get(c.namespace) ?? {}, serviceLabels: c.labels ?? {} };
  if (c.askedPool !== undefined) {
    const named = ml?.pools.find((p) => p.name === c.askedPool);
    const found = ml ? candidatePools(ml, facts, c.askedPool) : [];
    if (found.length > 0) return { pools: found, ...describeList(c, found) };
    const why = !named
      ? `annotation metallb.io/address-pool names IPAddressPool ${c.askedPool}, which vipd does not know${ml ? '' : ' (no MetalLB IPAddressPools are read)'}`
      : `annotation metallb.io/address-pool names IPAddressPool ${c.askedPool}, whose serviceAllocation does not admit ${c.key}`;
    return { pools: [], none: why, describe: `IPAddressPool ${c.askedPool}`, has: `IPAddressPool ${c.askedPool} has` };
  }
  const kv = ctx.kv;
  const own = kv && namespacePool(kv, c.namespace);
  if (own) {
    const d = describeList(c, [own]);
    return own.ranges.length > 0 ? { pools: [own], ...d } : { pools: [], ...d, none: `${d.has} no valid entries` };
  }
  const list: AddressPool[] = ml ? candidatePools(ml, facts, undefined, explicit) : [];
  const global = kv && poolFor(kv, GLOBAL);
  if (global) list.push(global);
  const usable = list.filter((p) => p.ranges.length > 0);
  const d = describeList(c, list);
  if (usable.length > 0) return { pools: usable, ...describeList(c, usable) };
  if (list.length > 0) return { pools: [], ...d, none: `${d.has} no valid entries` };
  const hint = ml && ml.pools.length > 0 ? ' in the kubevip ConfigMap, or an IPAddressPool that admits it' : ' in the kubevip ConfigMap';
  return { pools: [], ...d, none: `no pool for namespace ${c.namespace} (set cidr-${c.namespace}, range-${c.namespace}, cidr-global or range-global${hint})` };
}

/** May `claim` hold `ip` at all (ignoring other holders)? Undefined = yes, else the reason. */
function eligibility(ctx: Ctx, claim: ServiceClaim, ip: string, requested: boolean): { reason: PendingReason; message: string } | undefined {
  if (ctx.cp.has(ip)) {
    return requested ? undefined : { reason: 'requested-ip-in-use', message: `${ip} is the control-plane VIP; a Service gets it only by asking for it` };
  }
  if (ctx.reserved.has(ip)) return { reason: 'requested-ip-in-use', message: `${ip} is in use outside vipd` };
  if (!ctx.kv) return requested ? { reason: 'no-pool-for-namespace', message: NO_POOLS } : undefined;
  const cands = poolsFor(ctx, claim, requested);
  if (cands.pools.length === 0) return { reason: 'no-pool-for-namespace', message: cands.none ?? cands.describe };
  const a = parseAddr(ip) as Addr;
  if (!cands.pools.some((p) => poolContains(p, a))) return { reason: 'requested-ip-out-of-pool', message: `${ip} is not in ${cands.describe}` };
  return undefined;
}

function orderIps(claim: ServiceClaim, byFamily: ReadonlyMap<Family, string>): string[] {
  const order = [...new Set([...claim.families, 4, 6])] as Family[];
  return order.filter((f) => byFamily.has(f)).map((f) => byFamily.get(f) as string);
}

/** Allocate. The result has one entry per claim, in (priority, key) order. */
export function allocate(input: AllocationInput): Map<string, Outcome> {
  // A Service that ends up waiting gives back what it held, but by then Services processed
  // before it could not use those addresses. Rerun without such Services' current addresses
  // until nothing is given back late: the result is then the same as rerunning on it.
  const ignoreCurrent = new Set<string>();
  for (;;) {
    const { outcomes, gaveBack } = allocateOnce(input, ignoreCurrent);
    if (gaveBack.length === 0) return outcomes;
    for (const k of gaveBack) ignoreCurrent.add(k);
  }
}

function allocateOnce(input: AllocationInput, ignoreCurrent: ReadonlySet<string>): { outcomes: Map<string, Outcome>; gaveBack: string[] } {
  const claims = [...input.claims].sort(compareClaims);
  const gaveBack: string[] = [];
  const canon = (list: readonly string[] | undefined) => new Set((list ?? []).map(canonicalAddr).filter((s): s is string => s !== undefined));
  const requests = new Map<ServiceClaim, Requests>(claims.map((c) => [c, parseRequests(c)]));
  const requestedByAnyone = new Set<string>();
  for (const r of requests.values()) if (r.kind === 'ok') for (const ip of r.byFamily.values()) requestedByAnyone.add(ip);
  const hasMetallb = (input.metallb?.pools.length ?? 0) > 0;
  const ctx: Ctx = {
    input,
    kv: input.pools ?? (hasMetallb ? EMPTY_POOLS : undefined),
    bySharingKey: new Map(),
    cp: canon(input.controlPlaneVips),
    reserved: canon(input.reserved),
    requestedByAnyone,
    held: new Map(),
    byNamespace: new Map(),
    cursors: new Map(),
  };
  const kept = new Map<ServiceClaim, Map<Family, string>>(claims.map((c) => [c, new Map()]));
  const outcomes = new Map<string, Outcome>();
  const keptInA = new Map<ServiceClaim, ReadonlySet<string>>();

  // A: keep what each Service already holds while it stays valid; earlier Services first.
  for (const c of claims) {
    const req = requests.get(c) as Requests;
    if (req.kind === 'bad') continue;
    const mine = kept.get(c) as Map<Family, string>;
    const allowed = allowedFamilies(c);
    for (const raw of ignoreCurrent.has(c.key) ? [] : c.current) {
      const ip = canonicalAddr(raw);
      if (ip === undefined) continue;
      const f = (parseAddr(ip) as Addr).family;
      if (mine.has(f) || !allowed.includes(f)) continue;
      if (c.policy === 'SingleStack' && mine.size > 0) continue;
      if (req.kind === 'ok' && req.byFamily.get(f) !== ip) continue;
      // If another Service asked for this address by name, the holder still keeps it (no
      // reshuffle) and the asker waits with requested-ip-in-use.
      if (eligibility(ctx, c, ip, req.kind === 'ok') !== undefined) continue;
      if (conflict(ctx, c, ip) !== undefined) continue;
      hold(ctx, c, ip);
      mine.set(f, ip);
    }
    if (mine.size > 0) keptInA.set(c, new Set(mine.values()));
  }

  // B: requests, exactly or not at all.
  for (const c of claims) {
    const req = requests.get(c) as Requests;
    if (req.kind === 'none') continue;
    const mine = kept.get(c) as Map<Family, string>;
    if (req.kind === 'bad') {
      outcomes.set(c.key, { kind: 'pending', reason: req.reason, message: req.message });
      continue;
    }
    let failure: { reason: PendingReason; message: string } | undefined;
    // Every address is checked for what does not depend on other Services (pool, reserved,
    // control-plane VIP) before any for a conflict: checked family by family, a request with an
    // address out of pool said "in use" instead once another Service held its other address,
    // so the reason changed when the output was fed back.
    for (const [f, ip] of req.byFamily) {
      if (mine.get(f) === ip) continue;
      const why = eligibility(ctx, c, ip, true);
      if (why) {
        failure = { reason: why.reason, message: `${c.requestSource ?? 'requested'} ${ip}: ${why.message}` };
        break;
      }
    }
    for (const [f, ip] of failure ? [] : req.byFamily) {
      if (mine.get(f) === ip) continue;
      const clash = conflict(ctx, c, ip);
      if (clash) {
        failure = { reason: 'requested-ip-in-use', message: `${c.requestSource ?? 'requested'} ${ip}: ${clash}` };
        break;
      }
      hold(ctx, c, ip);
      mine.set(f, ip);
    }
    if (failure) {
      if ((keptInA.get(c)?.size ?? 0) > 0) gaveBack.push(c.key);
      for (const ip of mine.values()) release(ctx, c, ip);
      mine.clear();
      outcomes.set(c.key, { kind: 'pending', ...failure });
    } else {
      outcomes.set(c.key, { kind: 'assigned', ips: orderIps(c, mine), missing: [] });
    }
  }

  // C: everything else from the Service's pools, in the order poolsFor gives.
  for (const c of claims) {
    if ((requests.get(c) as Requests).kind !== 'none') continue;
    const mine = kept.get(c) as Map<Family, string>;
    const cands = ctx.kv ? poolsFor(ctx, c, false) : undefined;
    if (!cands || cands.pools.length === 0) {
      if (mine.size > 0 && !ctx.kv) {
        outcomes.set(c.key, { kind: 'assigned', ips: orderIps(c, mine), missing: [] });
        continue;
      }
      const message = !cands ? NO_POOLS : (cands.none ?? cands.describe);
      if (mine.size > 0) gaveBack.push(c.key);
      for (const ip of mine.values()) release(ctx, c, ip);
      outcomes.set(c.key, { kind: 'pending', reason: 'no-pool-for-namespace', message });
      continue;
    }
    const pools = cands.pools;
    const hasFamily = (f: Family) => pools.some((p) => poolHasFamily(p, f));
    let wanted: readonly Family[];
    if (c.policy === 'SingleStack') {
      const first = mine.keys().next().value ?? c.families[0] ?? (hasFamily(4) ? 4 : 6);
      wanted = [first];
    } else {
      wanted = allowedFamilies(c);
    }
    const missing: MissingFamily[] = [];
    const unavailable = (f: Family): MissingFamily => ({ family: f, reason: 'family-unavailable', message: `${cands.has} no ${familyName(f)} addresses` });
    // RequireDualStack: a family no pool has fails before anything is taken, so the reason
    // does not depend on what other Services happen to hold.
    const lacking = c.policy === 'RequireDualStack' ? wanted.filter((f) => !hasFamily(f)) : [];
    if (lacking.length > 0) missing.push(...lacking.map(unavailable));
    for (const f of lacking.length > 0 ? [] : wanted) {
      if (mine.has(f)) continue;
      if (!hasFamily(f)) {
        missing.push(unavailable(f));
        continue;
      }
      // Sharing first (a partner's address in any of the pools), then the first pool with a free one.
      let ip: string | undefined;
      for (const p of pools) if (ip === undefined) ip = findShared(ctx, c, p, f);
      for (const p of pools) if (ip === undefined) ip = findFree(ctx, p, f);
      if (ip === undefined) {
        missing.push({ family: f, reason: 'exhausted', message: `${cands.has} no free ${familyName(f)} address` });
        continue;
      }
      hold(ctx, c, ip);
      mine.set(f, ip);
    }
    const ok = c.policy === 'RequireDualStack' ? missing.length === 0 : mine.size > 0;
    if (ok) {
      outcomes.set(c.key, { kind: 'assigned', ips: orderIps(c, mine), missing: c.policy === 'PreferDualStack' ? missing : [] });
    } else {
      if ((keptInA.get(c)?.size ?? 0) > 0) gaveBack.push(c.key);
      for (const ip of mine.values()) release(ctx, c, ip);
      mine.clear();
      const m = missing[0] as MissingFamily;
      outcomes.set(c.key, { kind: 'pending', reason: m.reason, message: missing.map((x) => x.message).join('; ') });
    }
  }

  const sorted = new Map<string, Outcome>();
  for (const c of claims) sorted.set(c.key, outcomes.get(c.key) as Outcome);
  return { outcomes: sorted, gaveBack };
}
