/**
 * Address pools from kube-vip-cloud-provider's `kubevip` ConfigMap, so users switch without
 * rewriting their configuration. Pure: ConfigMap data in, pools and a list of problems out.
 *
 * Keys (values are comma lists; IPv4 and IPv6 may be mixed in one list):
 *   cidr-<namespace>, range-<namespace>, cidr-global, range-global   address pools
 *   allow-share-<namespace>, allow-share-global                       true/false
 *   search-order=desc                                                 hand out from the top
 *   skip-end-ips-in-cidr=true                                         no IPv4 network/broadcast
 *
 * Which pool a namespace uses: the first key present of cidr-<ns>, range-<ns>, cidr-global,
 * range-global. (kube-vip-cloud-provider checks cidr-<ns>, cidr-global, range-<ns>, range-global,
 * so a cidr-global there beats a range-<ns>; vipd lets the namespace key win, see docs/services.md.)
 * A key that is present selects its pool even when none of its entries is valid: the namespace then
 * gets nothing rather than a surprise address from the global pool.
 *
 * A bad entry or key is a problem (named key, entry, and what is allowed), never fatal: the other
 * entries and keys still load. Pools are ranges of bigints; nothing here enumerates addresses.
 */
import {
  addrProblem,
  formatAddr,
  formatRange,
  normalizeRanges,
  parseAddr,
  rangeContains,
  type Addr,
  type AddrRange,
} from './addr.js';
import { familyBits, type Family } from '../../net/ip.js';

export type PoolKind = 'cidr' | 'range';

/**
 * What allocation needs of a pool, wherever it was configured: the kubevip ConfigMap (`Pool`) or a
 * MetalLB IPAddressPool (`MetallbPool`, logic/metallb.ts). ipam.ts only ever sees this.
 */
export interface AddressPool {
  /** Unique across both sources: a ConfigMap key (`cidr-team-a`) or `metallb:<name>`. */
  readonly key: string;
  /** Normalised (sorted, merged), IPv4 ranges first. */
  readonly ranges: readonly AddrRange[];
}

export interface Pool extends AddressPool {
  /** The ConfigMap key, e.g. `cidr-team-a`. */
  readonly key: string;
  /** Namespace the pool belongs to; undefined for the global pool. */
  readonly namespace: string | undefined;
  readonly kind: PoolKind;
  /** Normalised (sorted, merged), IPv4 ranges first; after skip-end-ips-in-cidr. */
  readonly ranges: readonly AddrRange[];
}

export interface PoolProblem {
  readonly key: string;
  readonly entry?: string;
  /** error: an entry or key was dropped; warning: accepted with a change, or ignored as unsupported. */
  readonly severity: 'error' | 'warning';
  readonly message: string;
}

export interface PoolConfig {
  /** Pools by ConfigMap key. */
  readonly pools: ReadonlyMap<string, Pool>;
  /** allow-share values by suffix (`global` or a namespace). */
  readonly allowShare: ReadonlyMap<string, boolean>;
  readonly searchOrder: 'asc' | 'desc';
  readonly skipEndIpsInCidr: boolean;
  readonly problems: readonly PoolProblem[];
}

export const GLOBAL = 'global';
/** Keys of pools from MetalLB IPAddressPools start with this; no ConfigMap key can. */
export const METALLB_KEY_PREFIX = 'metallb:';

const CIDR_ALLOWED = 'a comma list of CIDRs such as 198.18.10.0/24 or 2001:db8:10::/112';
const RANGE_ALLOWED = 'a comma list of ranges such as 198.18.10.10-198.18.10.50 or 2001:db8::10-2001:db8::ff';
const BOOL_ALLOWED = 'true or false';
const KNOWN_KEYS = 'cidr-<namespace|global>, range-<namespace|global>, allow-share-<namespace|global>, search-order, skip-end-ips-in-cidr';

// Kubernetes namespace names are DNS-1123 labels.
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Go's strconv.ParseBool, which kube-vip-cloud-provider uses for allow-share. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function splitList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export interface EntryResult {
  ranges: AddrRange[];
  problems: PoolProblem[];
}

export function parseCidrEntry(key: string, entry: string, skipEnds: boolean): EntryResult {
  const bad = (message: string): EntryResult => ({ ranges: [], problems: [{ key, entry, severity: 'error', message }] });
  const slash = entry.indexOf('/');
  if (slash < 0 || slash !== entry.lastIndexOf('/')) return bad(`"${entry}" is not a CIDR; ${key} takes ${CIDR_ALLOWED}`);
  const addrText = entry.slice(0, slash);
  const bitsText = entry.slice(slash + 1);
  const why = addrProblem(addrText);
  if (why !== undefined) return bad(`"${entry}": ${why}; ${key} takes ${CIDR_ALLOWED}`);
  const addr = parseAddr(addrText) as Addr;
  const width = familyBits(addr.family);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > width) {
    return bad(`"${entry}": prefix length must be 0 to ${width}; ${key} takes ${CIDR_ALLOWED}`);
  }
  const bits = Number(bitsText);
  if (addr.family === 4 && addr.value === 0n && bits === 32) {
    return bad(`"${entry}" asks for DHCP, which vipd does not do; list the addresses to hand out instead`);
  }
  const hostBits = BigInt(width - bits);
  const first = (addr.value >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  const problems: PoolProblem[] = [];
  if (first !== addr.value) {
    const net = `${formatAddr({ family: addr.family, value: first })}/${bits}`;
    problems.push({ key, entry, severity: 'warning', message: `"${entry}" has host bits set; using ${net}` });
  }
  // RFC 3021: /31 and /32 have no network or broadcast address to skip.
  if (skipEnds && addr.family === 4 && bits <= 30) return { ranges: [{ family: 4, first: first + 1n, last: last - 1n }], problems };
  return { ranges: [{ family: addr.family, first, last }], problems };
}

export function parseRangeEntry(key: string, entry: string): EntryResult {
  const bad = (message: string): EntryResult => ({ ranges: [], problems: [{ key, entry, severity: 'error', message }] });
  const parts = entry.split('-');
  if (parts.length !== 2) return bad(`"${entry}" is not a range; ${key} takes ${RANGE_ALLOWED}`);
  const [aText, bText] = [(parts[0] as string).trim(), (parts[1] as string).trim()];
  for (const t of [aText, bText]) {
    const why = addrProblem(t);
    if (why !== undefined) return bad(`"${entry}": "${t}": ${why}; ${key} takes ${RANGE_ALLOWED}`);
  }
  const a = parseAddr(aText) as Addr;
  const b = parseAddr(bText) as Addr;
  if (a.family !== b.family) return bad(`"${entry}" mixes IPv4 and IPv6; both ends of a range must be one family`);
  if (a.value > b.value) return bad(`"${entry}" starts after it ends; write the lower address first`);
  return { ranges: [{ family: a.family, first: a.value, last: b.value }], problems: [] };
}

/** Parse the `kubevip` ConfigMap's data. Undefined data (no ConfigMap) gives no pools and no problems. */
export function parsePools(data: Readonly<Record<string, string>> | undefined): PoolConfig {
  const problems: PoolProblem[] = [];
  const pools = new Map<string, Pool>();
  const allowShare = new Map<string, boolean>();
  let searchOrder: 'asc' | 'desc' = 'asc';
  let skipEndIpsInCidr = false;
  const entries = Object.entries(data ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  // Settings first: skip-end-ips-in-cidr changes how cidr entries parse.
  for (const [key, raw] of entries) {
    const value = raw.trim();
    if (key === 'search-order') {
      if (value === 'desc' || value === 'asc') searchOrder = value;
      else problems.push({ key, severity: 'error', message: `"${raw}" is not a search order; allowed: asc (default) or desc` });
    } else if (key === 'skip-end-ips-in-cidr') {
      if (value === 'true' || value === 'false') skipEndIpsInCidr = value === 'true';
      else problems.push({ key, severity: 'error', message: `"${raw}" is not ${BOOL_ALLOWED}` });
    }
  }

  for (const [key, raw] of entries) {
    if (key === 'search-order' || key === 'skip-end-ips-in-cidr') continue;
    const m = /^(cidr|range|allow-share|interface)-(.+)$/.exec(key);
    if (!m) {
      problems.push({ key, severity: 'warning', message: `unknown key, ignored; known keys: ${KNOWN_KEYS}` });
      continue;
    }
    const kind = m[1] as string;
    const suffix = m[2] as string;
    if (suffix !== GLOBAL && !NAMESPACE_RE.test(suffix)) {
      problems.push({ key, severity: 'warning', message: `"${suffix}" is not a valid namespace name, so this key never applies; use <namespace> or global` });
      continue;
    }
    if (kind === 'interface') {
      problems.push({ key, severity: 'warning', message: 'per-namespace interfaces are not supported, ignored: vipd announces on vip_interface (MetalLB L2Advertisement interfaces can choose them per pool)' });
      continue;
    }
    if (kind === 'allow-share') {
      const b = parseGoBool(raw.trim());
      if (b === undefined) problems.push({ key, severity: 'error', message: `"${raw}" is not ${BOOL_ALLOWED}` });
      else allowShare.set(suffix, b);
      continue;
    }
    const list = splitList(raw);
    if (list.length === 0) {
      problems.push({
        key,
        severity: 'error',
        message: `is empty, so ${suffix === GLOBAL ? 'the global pool' : `namespace ${suffix}`} has no addresses; ${key} takes ${kind === 'cidr' ? CIDR_ALLOWED : RANGE_ALLOWED}`,
      });
    }
    const ranges: AddrRange[] = [];
    for (const entry of list) {
      const r = kind === 'cidr' ? parseCidrEntry(key, entry, skipEndIpsInCidr) : parseRangeEntry(key, entry);
      ranges.push(...r.ranges);
      problems.push(...r.problems);
    }
    pools.set(key, { key, namespace: suffix === GLOBAL ? undefined : suffix, kind: kind as PoolKind, ranges: normalizeRanges(ranges) });
  }

  for (const [key, pool] of pools) {
    if (pool.kind !== 'range') continue;
    const shadow = `cidr-${pool.namespace ?? GLOBAL}`;
    if (pools.has(shadow)) problems.push({ key, severity: 'warning', message: `ignored: ${shadow} is also set and cidr keys are checked before range keys` });
  }
  return { pools, allowShare, searchOrder, skipEndIpsInCidr, problems };
}

/** The pool a namespace allocates from, or undefined if no key applies. */
export function poolFor(cfg: PoolConfig, namespace: string): Pool | undefined {
  const order = namespace === GLOBAL ? [GLOBAL] : [namespace, GLOBAL];
  for (const scope of order) {
    for (const kind of ['cidr', 'range'] as const) {
      const p = cfg.pools.get(`${kind}-${scope}`);
      if (p) return p;
    }
  }
  return undefined;
}

/** The namespace's own pool (cidr-<ns>, else range-<ns>), never the global one. */
export function namespacePool(cfg: PoolConfig, namespace: string): Pool | undefined {
  return cfg.pools.get(`cidr-${namespace}`) ?? cfg.pools.get(`range-${namespace}`);
}

/** allow-share-<namespace>, else allow-share-global, else false. */
export function allowShareFor(cfg: PoolConfig, namespace: string): boolean {
  return cfg.allowShare.get(namespace) ?? cfg.allowShare.get(GLOBAL) ?? false;
}

export function poolRanges(pool: AddressPool, family: Family): AddrRange[] {
  return pool.ranges.filter((r) => r.family === family);
}

export function poolHasFamily(pool: AddressPool, family: Family): boolean {
  return pool.ranges.some((r) => r.family === family);
}

export function poolContains(pool: AddressPool, a: Addr): boolean {
  return pool.ranges.some((r) => rangeContains(r, a));
}

/** `cidr-team-a (198.18.10.0-198.18.10.255, 2001:db8::/112 …)` for messages. */
export function describePool(pool: AddressPool): string {
  const shown = pool.ranges.slice(0, 4).map(formatRange).join(', ');
  const name = pool.key.startsWith(METALLB_KEY_PREFIX) ? `IPAddressPool ${pool.key.slice(METALLB_KEY_PREFIX.length)}` : pool.key;
  return `${name} (${pool.ranges.length === 0 ? 'no valid entries' : shown}${pool.ranges.length > 4 ? ', …' : ''})`;
}

export function formatProblem(p: PoolProblem): string {
  return `kubevip ConfigMap key ${p.key}${p.severity === 'warning' ? ' (warning)' : ''}: ${p.message}`;
}
