/**
 * ServiceAnnouncement objects (vipd.io/v1alpha1, manifests/vipd-crds.yaml): a record for people of
 * which node announces which address of which Service, why and since when, one object per
 * (Service, announcing node) in the Service's namespace, in the spirit of MetalLB's
 * ServiceL2Status. Pure: names, bodies and the create/update/delete diff; the I/O is in
 * ../announcements.ts.
 *
 * Invariants:
 * - Each node writes only objects named for itself (the node is part of the name and a label),
 *   so two nodes never write the same object and no write needs to read another node's view.
 * - The record is never an input to placement or elections: it says what a holder did.
 * - Everything lives in `status` (there is no spec: nobody asks for anything, the object only
 *   reports), without a status subresource, so one write creates or changes an object.
 */
import { createHash } from 'node:crypto';

export const ANNOUNCEMENT_API_VERSION = 'vipd.io/v1alpha1';
export const ANNOUNCEMENT_KIND = 'ServiceAnnouncement';
export const LABEL_SERVICE = 'vipd.io/service-name';
export const LABEL_NODE = 'vipd.io/node';
const LABEL_APP = { 'app.kubernetes.io/name': 'vipd' };

/** One address this node announces: why (the holder's reason) and since when (RFC 3339). */
export interface HeldAddress {
  readonly ip: string;
  readonly reason: string;
  readonly since: string;
  /** The interface it is announced on; absent: DesiredInput.iface. Addresses of one Service may differ (L2Advertisement interfaces per pool). */
  readonly iface?: string;
}

export interface ServiceRef {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface AnnouncementStatus {
  node: string;
  serviceName: string;
  serviceNamespace: string;
  /** MetalLB's shape: the interfaces the addresses are announced on. */
  interfaces: Array<{ name: string }>;
  /** The addresses, sorted (the ADDRESSES printer column). */
  addresses: string[];
  /** Why the most recently started address is announced here. */
  reason: string;
  /** When this node started announcing the first of these addresses (the SINCE column). */
  since: string;
  /** Per address: reason and since. */
  announcements: Array<{ address: string; reason: string; since: string }>;
}

export interface Announcement {
  apiVersion: typeof ANNOUNCEMENT_API_VERSION;
  kind: typeof ANNOUNCEMENT_KIND;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    ownerReferences: Array<{ apiVersion: 'v1'; kind: 'Service'; name: string; uid: string }>;
    resourceVersion?: string;
  };
  status: AnnouncementStatus;
}

/** What the API server has of this node's objects (only what the diff compares). */
export interface ObservedAnnouncement {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion?: string; kind?: string; name?: string; uid?: string }>;
  };
  status?: Partial<AnnouncementStatus>;
}

const MAX_NAME = 63;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/** `s` if it fits in `max`, else a prefix and a hash of the whole, so distinct inputs stay distinct. */
function fit(s: string, max: number): string {
  if (s.length <= max) return s;
  const head = s.slice(0, max - 9).replace(/[^a-z0-9]+$/i, '');
  return `${head}-${shortHash(s)}`;
}

/**
 * The object's name: `<service>.<node>`. A Service name is a DNS label (no dots), so the first
 * dot splits it unambiguously and the name is unique per (Service, node) in the namespace; longer
 * than 63 characters, it is cut and a hash of the full pair appended.
 */
export function announcementName(service: string, node: string): string {
  const raw = `${service}.${node}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return fit(raw, MAX_NAME);
}

/** A label value for a node or Service name (≤ 63 characters; node names may be longer). */
export function labelValue(s: string): string {
  return fit(s, MAX_NAME);
}

export interface DesiredInput {
  readonly node: string;
  readonly iface: string;
  /** The addresses this node's holders hold right now. */
  readonly held: readonly HeldAddress[];
  /** Address → Service keys (`namespace/name`) on it, from the placement. */
  readonly servicesOn: ReadonlyMap<string, readonly string[]>;
  /** Service key → the Service (uid for the ownerReference); unknown Services get no object. */
  readonly service: (key: string) => ServiceRef | undefined;
  /** Only Services in this namespace ('' or undefined: all). */
  readonly namespace?: string;
}

/** The objects this node should have: one per Service that has an address held here. */
export function desiredAnnouncements(input: DesiredInput): Announcement[] {
  const perService = new Map<string, HeldAddress[]>();
  for (const h of input.held) {
    for (const key of input.servicesOn.get(h.ip) ?? []) {
      const list = perService.get(key) ?? [];
      list.push(h);
      perService.set(key, list);
    }
  }
  const out: Announcement[] = [];
  for (const [key, held] of [...perService].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const svc = input.service(key);
    if (!svc || !svc.uid) continue;
    if (input.namespace && svc.namespace !== input.namespace) continue;
    const sorted = [...held].sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : a.ip < b.ip ? -1 : 1));
    const latest = sorted[sorted.length - 1]!;
    out.push({
      apiVersion: ANNOUNCEMENT_API_VERSION,
      kind: ANNOUNCEMENT_KIND,
      metadata: {
        name: announcementName(svc.name, input.node),
        namespace: svc.namespace,
        labels: { ...LABEL_APP, [LABEL_SERVICE]: labelValue(svc.name), [LABEL_NODE]: labelValue(input.node) },
        ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: svc.name, uid: svc.uid }],
      },
      status: {
        node: input.node,
        serviceName: svc.name,
        serviceNamespace: svc.namespace,
        interfaces: [...new Set(held.map((h) => h.iface ?? input.iface))].sort().map((name) => ({ name })),
        addresses: held.map((h) => h.ip).sort(),
        reason: latest.reason,
        since: sorted[0]!.since,
        announcements: sorted.map((h) => ({ address: h.ip, reason: h.reason, since: h.since })),
      },
    });
  }
  return out;
}

export type AnnouncementWrite =
  | { op: 'create'; body: Announcement }
  | { op: 'update'; body: Announcement & { metadata: { resourceVersion: string } } }
  | { op: 'delete'; namespace: string; name: string; resourceVersion?: string };

const objKey = (namespace: string | undefined, name: string | undefined): string => `${namespace ?? ''}/${name ?? ''}`;

function sameContent(want: Announcement, have: ObservedAnnouncement): boolean {
  const labels = have.metadata?.labels ?? {};
  if (Object.entries(want.metadata.labels).some(([k, v]) => labels[k] !== v)) return false;
  const owners = (have.metadata?.ownerReferences ?? []).map((o) => `${o.apiVersion}|${o.kind}|${o.name}|${o.uid}`).join(',');
  if (owners !== want.metadata.ownerReferences.map((o) => `${o.apiVersion}|${o.kind}|${o.name}|${o.uid}`).join(',')) return false;
  return JSON.stringify(canonicalStatus(have.status ?? {})) === JSON.stringify(canonicalStatus(want.status));
}

/** The status fields in a fixed order (the API server does not keep JSON key order). */
function canonicalStatus(s: Partial<AnnouncementStatus>): unknown[] {
  return [
    s.node,
    s.serviceName,
    s.serviceNamespace,
    (s.interfaces ?? []).map((i) => i.name),
    s.addresses ?? [],
    s.reason,
    s.since,
    (s.announcements ?? []).map((a) => [a.address, a.reason, a.since]),
  ];
}

/**
 * What to write so the API server has exactly `desired` of this node's objects: create what is
 * missing, update what differs (guarded by the observed resourceVersion), delete the rest.
 * `observed` must be this node's objects only (the caller lists by the node label).
 */
export function announcementWrites(desired: readonly Announcement[], observed: readonly ObservedAnnouncement[]): AnnouncementWrite[] {
  const have = new Map(observed.map((o) => [objKey(o.metadata?.namespace, o.metadata?.name), o]));
  const writes: AnnouncementWrite[] = [];
  const wanted = new Set<string>();
  for (const want of desired) {
    const key = objKey(want.metadata.namespace, want.metadata.name);
    wanted.add(key);
    const cur = have.get(key);
    if (!cur) writes.push({ op: 'create', body: want });
    else if (!sameContent(want, cur)) writes.push({ op: 'update', body: { ...want, metadata: { ...want.metadata, resourceVersion: cur.metadata?.resourceVersion ?? '' } } });
  }
  for (const [key, cur] of have) {
    if (wanted.has(key)) continue;
    const rv = cur.metadata?.resourceVersion;
    writes.push({ op: 'delete', namespace: cur.metadata?.namespace ?? '', name: cur.metadata?.name ?? '', ...(rv ? { resourceVersion: rv } : {}) });
  }
  return writes;
}

/** The Event note when this node starts announcing an address of a Service. */
export function announcerChangedNote(ip: string, node: string, reason: string): string {
  return `${ip} announced by ${node}: ${reason}`;
}
