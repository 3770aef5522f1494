/**
 * Placement: which node should hold (and so announce) each service IP. Pure; every node computes the same plan from the same
 * view, and the holder for an IP on this node is fed from `ipsForNode(plan, me)`.
 *
 * - One unit per IP address: Services sharing an address are one unit with one owner, never
 *   two elections (kube-vip #947).
 * - An address equal to a control-plane VIP is not a unit at all: the control-plane holder
 *   already holds it, and a second holder for it would be a second lifecycle for one IP.
 * - Only addresses in vipd's own record (`ServiceView.ips`) appear; what another controller
 *   wrote into status never does.
 * - Owner: rendezvous hashing over the candidates. Candidates are the live members, less those
 *   not eligible for the address (`eligibleNodes`: MetalLB L2Advertisement nodeSelectors); for a
 *   unit with externalTrafficPolicy Local Services, of those the members with a ready local
 *   endpoint of every such Service on the address (or, if no member has all of them, of any).
 *   No candidate → no owner, and the address is announced nowhere.
 */
import type { Family } from '../../net/ip.js';
import { canonicalAddr, compareAddr, parseAddr, type Addr } from './addr.js';
import { rank } from './rendezvous.js';

export interface ServiceView {
  readonly key: string;
  /** vipd's record for this Service (not status). */
  readonly ips: readonly string[];
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
}

export interface PlanInput {
  readonly services: readonly ServiceView[];
  /** Service key → nodes with a ready local endpoint (only consulted for Local Services). */
  readonly readyEndpointNodes: ReadonlyMap<string, ReadonlySet<string>>;
  /** Live, healthy members that may announce. */
  readonly members: readonly string[];
  /** Address → the only nodes that may announce it; an address not in the map: any member. */
  readonly eligibleNodes?: ReadonlyMap<string, ReadonlySet<string>>;
  readonly controlPlaneVips?: readonly string[];
}

export interface PlacementUnit {
  readonly ip: string;
  readonly family: Family;
  /** Service keys on this address, sorted. */
  readonly services: readonly string[];
  /** Candidates best first; the first one is the owner. */
  readonly candidates: readonly string[];
  readonly owner: string | undefined;
  /** Why the owner is missing or the candidate set was widened. */
  readonly note?: string;
}

export interface Plan {
  /** Sorted by address (IPv4 first). */
  readonly units: readonly PlacementUnit[];
  /** Service addresses that are a control-plane VIP: held by the control-plane holder, not here. */
  readonly onControlPlaneVip: ReadonlyMap<string, readonly string[]>;
}

export function plan(input: PlanInput): Plan {
  const cp = new Set((input.controlPlaneVips ?? []).map(canonicalAddr).filter((s): s is string => s !== undefined));
  const members = [...new Set(input.members)].sort();
  const byIp = new Map<string, ServiceView[]>();
  for (const s of input.services) {
    for (const raw of s.ips) {
      const ip = canonicalAddr(raw);
      if (ip === undefined) continue;
      const list = byIp.get(ip) ?? [];
      if (!list.includes(s)) list.push(s);
      byIp.set(ip, list);
    }
  }
  const units: PlacementUnit[] = [];
  const onCp = new Map<string, string[]>();
  const addrs = [...byIp.keys()].map((ip) => [ip, parseAddr(ip) as Addr] as const).sort((a, b) => compareAddr(a[1], b[1]));
  for (const [ip, addr] of addrs) {
    const svcs = (byIp.get(ip) as ServiceView[]).slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const keys = svcs.map((s) => s.key);
    if (cp.has(ip)) {
      onCp.set(ip, keys);
      continue;
    }
    const local = svcs.filter((s) => s.externalTrafficPolicy === 'Local');
    const eligible = input.eligibleNodes?.get(ip);
    const allowed = eligible ? members.filter((m) => eligible.has(m)) : members;
    let candidates = allowed;
    let note: string | undefined;
    if (members.length > 0 && allowed.length === 0) {
      note = 'no live member is eligible for this address (L2Advertisement nodeSelectors)';
    } else if (local.length > 0) {
      const sets = local.map((s) => input.readyEndpointNodes.get(s.key) ?? new Set<string>());
      const all = allowed.filter((m) => sets.every((set) => set.has(m)));
      if (all.length > 0 || local.length === 1) {
        candidates = all;
      } else {
        candidates = allowed.filter((m) => sets.some((set) => set.has(m)));
        if (candidates.length > 0) note = 'no member has a ready endpoint of every Local Service on this address; using members with any';
      }
      if (candidates.length === 0) note = 'no live member has a ready local endpoint (externalTrafficPolicy: Local)';
    } else if (candidates.length === 0) {
      note = 'no live member';
    }
    const ranked = rank(ip, candidates);
    units.push({ ip, family: addr.family, services: keys, candidates: ranked, owner: ranked[0], ...(note !== undefined ? { note } : {}) });
  }
  return { units, onControlPlaneVip: onCp };
}

/** The addresses `node` should hold, sorted. */
export function ipsForNode(p: Plan, node: string): string[] {
  return p.units.filter((u) => u.owner === node).map((u) => u.ip);
}
