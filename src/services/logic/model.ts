/**
 * Kubernetes Service / EndpointSlice objects → the pure inputs of allocation and announcement.
 * Pure: structural types only (objects arrive both as client-node models with Dates and as raw
 * watch JSON with strings; both are accepted).
 *
 * vipd's own record of what it allocated lives in the Service's status, as a condition of type
 * `vipd.io/Allocated` written in the same status update as `status.loadBalancer.ingress`. Only
 * that record (never the ingress list, which any controller can write) tells vipd which
 * addresses are its own, so an address another controller put into status is never announced.
 */
import type { Family } from '../../net/ip.js';
import { canonicalAddr } from './addr.js';
import type { IpFamilyPolicy, ServiceClaim, ServicePort } from './ipam.js';

export const ANNOTATION_LB_IPS = 'kube-vip.io/loadbalancerIPs';
export const ANNOTATION_IGNORE = 'kube-vip.io/ignore';
/** MetalLB's spelling of the requested addresses; read after kube-vip's, before spec.loadBalancerIP. */
export const ANNOTATION_METALLB_LB_IPS = 'metallb.io/loadBalancerIPs';
/** MetalLB's sharing key: Services with the same value may share an address. */
export const ANNOTATION_METALLB_SHARED_IP = 'metallb.io/allow-shared-ip';
/** MetalLB's pool request: allocate from this IPAddressPool only (also when its autoAssign is false). */
export const ANNOTATION_METALLB_POOL = 'metallb.io/address-pool';
export const CONDITION_TYPE = 'vipd.io/Allocated';
export const ALLOCATED_PREFIX = 'allocated: ';
export const DEFAULT_LB_CLASS = 'vipd.io/lb';
export const KUBE_VIP_LB_CLASS = 'kube-vip.io/kube-vip-class';

type Timestamp = Date | string | undefined;

export interface ConditionLike {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: Timestamp;
  observedGeneration?: number;
}

export interface IngressLike {
  ip?: string;
  hostname?: string;
  ipMode?: string;
  ports?: Array<{ port?: number; protocol?: string }>;
}

export interface ServiceLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: Timestamp;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    deletionTimestamp?: Timestamp;
  };
  spec?: {
    type?: string;
    loadBalancerClass?: string;
    loadBalancerIP?: string;
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    externalTrafficPolicy?: string;
    ports?: Array<{ port?: number; protocol?: string }>;
  };
  status?: {
    loadBalancer?: { ingress?: IngressLike[] };
    conditions?: ConditionLike[];
  };
}

export interface EndpointSliceLike {
  metadata?: { namespace?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: Array<{ nodeName?: string; conditions?: { ready?: boolean } }>;
}

export interface ClassFilter {
  /** lb_class_name. */
  readonly className: string;
  /** lb_class_only: class-less Services are not ours. */
  readonly classOnly: boolean;
  /** lb_class_legacy_handling: kube-vip's rule (class-less accepted unless classOnly); false = class must match. */
  readonly legacyHandling: boolean;
}

export const DEFAULT_CLASS_FILTER: ClassFilter = { className: DEFAULT_LB_CLASS, classOnly: false, legacyHandling: true };

export function serviceKey(svc: ServiceLike): string {
  return `${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`;
}

export function isoTime(t: Timestamp): string {
  if (t === undefined) return '';
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}

/** Is this a Service vipd gives an address to? (type LoadBalancer, our class, not ignored, not being deleted) */
export function isManaged(svc: ServiceLike, filter: ClassFilter): boolean {
  if (svc.spec?.type !== 'LoadBalancer') return false;
  if (svc.metadata?.deletionTimestamp) return false;
  if (svc.metadata?.annotations?.[ANNOTATION_IGNORE] === 'true') return false;
  const cls = svc.spec.loadBalancerClass;
  if (cls) return cls === filter.className;
  return filter.legacyHandling && !filter.classOnly;
}

function families(svc: ServiceLike): Family[] {
  const out: Family[] = [];
  for (const f of svc.spec?.ipFamilies ?? []) {
    if (f === 'IPv4' && !out.includes(4)) out.push(4);
    if (f === 'IPv6' && !out.includes(6)) out.push(6);
  }
  return out;
}

function policy(svc: ServiceLike): IpFamilyPolicy {
  const p = svc.spec?.ipFamilyPolicy;
  return p === 'PreferDualStack' || p === 'RequireDualStack' ? p : 'SingleStack';
}

export function ports(svc: ServiceLike): ServicePort[] {
  return (svc.spec?.ports ?? []).filter((p) => typeof p.port === 'number').map((p) => ({ port: p.port as number, protocol: p.protocol ?? 'TCP' }));
}

/** Requested addresses: kube-vip's annotation, else MetalLB's, else spec.loadBalancerIP (deprecated upstream). */
export function requested(svc: ServiceLike): { ips: string[]; source?: string } {
  for (const name of [ANNOTATION_LB_IPS, ANNOTATION_METALLB_LB_IPS]) {
    const ann = svc.metadata?.annotations?.[name];
    if (ann !== undefined && ann.trim() !== '') return { ips: ann.split(',').map((s) => s.trim()).filter((s) => s !== ''), source: `annotation ${name}` };
  }
  const spec = svc.spec?.loadBalancerIP;
  if (spec) return { ips: [spec.trim()], source: 'spec.loadBalancerIP' };
  return { ips: [] };
}

function annotation(svc: ServiceLike, name: string): string | undefined {
  const v = svc.metadata?.annotations?.[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** metallb.io/allow-shared-ip's sharing key, if set. */
export function sharingKey(svc: ServiceLike): string | undefined {
  return annotation(svc, ANNOTATION_METALLB_SHARED_IP);
}

/** metallb.io/address-pool's pool name, if set. */
export function askedPool(svc: ServiceLike): string | undefined {
  return annotation(svc, ANNOTATION_METALLB_POOL);
}

export function allocatedCondition(svc: ServiceLike): ConditionLike | undefined {
  return svc.status?.conditions?.find((c) => c.type === CONDITION_TYPE);
}

/** vipd's own record: the addresses it allocated to this Service (canonical), or [] if none. */
export function recordedIps(svc: ServiceLike): string[] {
  const c = allocatedCondition(svc);
  if (!c || c.status !== 'True' || !c.message?.startsWith(ALLOCATED_PREFIX)) return [];
  const out: string[] = [];
  for (const s of c.message.slice(ALLOCATED_PREFIX.length).split(',')) {
    const ip = canonicalAddr(s);
    if (ip !== undefined && !out.includes(ip)) out.push(ip);
  }
  return out;
}

export function externalTrafficPolicy(svc: ServiceLike): 'Cluster' | 'Local' {
  return svc.spec?.externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster';
}

export function toClaim(svc: ServiceLike): ServiceClaim {
  const req = requested(svc);
  const pool = askedPool(svc);
  const key = sharingKey(svc);
  return {
    key: serviceKey(svc),
    namespace: svc.metadata?.namespace ?? '',
    priority: isoTime(svc.metadata?.creationTimestamp),
    families: families(svc),
    policy: policy(svc),
    requested: req.ips,
    ...(req.source !== undefined ? { requestSource: req.source } : {}),
    ports: ports(svc),
    externalTrafficPolicy: externalTrafficPolicy(svc),
    current: recordedIps(svc),
    labels: svc.metadata?.labels ?? {},
    ...(pool !== undefined ? { askedPool: pool } : {}),
    ...(key !== undefined ? { sharingKey: key } : {}),
  };
}

/** Canonical IPs currently in status.loadBalancer.ingress (whoever wrote them). */
export function ingressIps(svc: ServiceLike): string[] {
  const out: string[] = [];
  for (const i of svc.status?.loadBalancer?.ingress ?? []) {
    const ip = i.ip === undefined ? undefined : canonicalAddr(i.ip);
    if (ip !== undefined && !out.includes(ip)) out.push(ip);
  }
  return out;
}

/** Service key → nodes with a ready endpoint of it (for externalTrafficPolicy: Local). */
export function readyEndpointNodes(slices: Iterable<EndpointSliceLike>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.['kubernetes.io/service-name'];
    if (!svc || s.addressType === 'FQDN') continue;
    const key = `${s.metadata?.namespace ?? ''}/${svc}`;
    let set = out.get(key);
    for (const e of s.endpoints ?? []) {
      // An unset ready condition means unknown, which consumers treat as ready (API docs).
      if (e.conditions?.ready === false || !e.nodeName) continue;
      if (!set) out.set(key, (set = new Set()));
      set.add(e.nodeName);
    }
  }
  return out;
}
