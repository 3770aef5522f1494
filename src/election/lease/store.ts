/**
 * The elector's view of one coordination.k8s.io/v1 Lease: read, create, compare-and-swap
 * update, watch, in LeaseRecords. The API implementation is the one Lease store
 * (k8s/lease-store.ts, which the member Leases use too); unit tests use an in-memory store with
 * the same CAS semantics.
 *
 * Invariants: update() always sends the resourceVersion the caller read (optimistic
 * concurrency); a 409 surfaces as LeaseConflictError and the caller re-reads. Fields we do not
 * own (labels, annotations, unknown spec fields) are carried over from the newest object seen.
 */
import { LeaseObjectStore, type LeaseLike, type LeaseObjectStoreOptions, type LeaseWrite } from '../../k8s/lease-store.js';
import { isNewerVersion, type LeaseRecord, type LeaseSpecWrite } from './state.js';

export { LeaseConflictError, LeaseNotFoundError } from '../../k8s/lease-store.js';

export type LeaseWatchEvent = { type: 'upsert'; record: LeaseRecord } | { type: 'deleted' };

export interface LeaseStore {
  readonly namespace: string;
  readonly name: string;
  /** undefined when the Lease does not exist. */
  get(signal: AbortSignal): Promise<LeaseRecord | undefined>;
  /** Throws LeaseConflictError when it already exists. */
  create(spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord>;
  /** CAS on resourceVersion: LeaseConflictError on 409, LeaseNotFoundError on 404. */
  update(resourceVersion: string, spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord>;
  /** One watch stream (current state first, as an upsert when it exists); resolves when it ends. */
  watch(onEvent: (ev: LeaseWatchEvent) => void, signal: AbortSignal): Promise<void>;
}

function timeString(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

export function toRecord(l: LeaseLike): LeaseRecord {
  const s = l.spec ?? {};
  const r: LeaseRecord = {
    holderIdentity: s.holderIdentity ?? '',
    transitions: s.leaseTransitions ?? 0,
    resourceVersion: l.metadata?.resourceVersion ?? '',
  };
  const at = timeString(s.acquireTime);
  const rt = timeString(s.renewTime);
  if (at !== undefined) r.acquireTime = at;
  if (rt !== undefined) r.renewTime = rt;
  if (typeof s.leaseDurationSeconds === 'number') r.leaseDurationSeconds = s.leaseDurationSeconds;
  if (l.metadata?.uid) r.uid = l.metadata.uid;
  return r;
}

export type ApiLeaseStoreOptions = Pick<LeaseObjectStoreOptions, 'client' | 'namespace' | 'name' | 'requestTimeoutMs' | 'watchTimeoutSeconds' | 'watchIdleTimeoutMs'>;

export class ApiLeaseStore implements LeaseStore {
  readonly namespace: string;
  readonly name: string;
  private readonly lease: LeaseObjectStore;
  private last: LeaseLike | undefined;

  constructor(o: ApiLeaseStoreOptions) {
    this.namespace = o.namespace;
    this.name = o.name;
    this.lease = new LeaseObjectStore({ ...o, op: 'lease' });
  }

  /**
   * Remembers the newest object seen (reads, writes and watch events alike), which the next write
   * is built on: one built on an older copy would wipe another writer's labels and annotations
   * even though its resourceVersion is current.
   */
  private keep(l: LeaseLike): LeaseRecord {
    const rv = l.metadata?.resourceVersion ?? '';
    const prev = this.last?.metadata?.resourceVersion;
    if (prev === undefined || rv === prev || isNewerVersion(rv, prev)) this.last = l;
    return toRecord(l);
  }

  async get(signal: AbortSignal): Promise<LeaseRecord | undefined> {
    const l = await this.lease.get(signal);
    return l === undefined ? undefined : this.keep(l);
  }

  async create(spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord> {
    return this.keep(await this.lease.create(leaseWrite(spec), signal, this.last));
  }

  async update(resourceVersion: string, spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord> {
    return this.keep(await this.lease.update(resourceVersion, leaseWrite(spec), signal, this.last));
  }

  watch(onEvent: (ev: LeaseWatchEvent) => void, signal: AbortSignal): Promise<void> {
    return this.lease.watch((ev) => onEvent(ev.type === 'upsert' ? { type: 'upsert', record: this.keep(ev.lease) } : ev), signal);
  }
}

/** The elector owns no labels or annotations, only the spec. */
function leaseWrite(s: LeaseSpecWrite): LeaseWrite {
  return {
    spec: {
      holderIdentity: s.holderIdentity,
      acquireTime: s.acquireTime,
      renewTime: s.renewTime,
      leaseDurationSeconds: s.leaseDurationSeconds,
      leaseTransitions: s.transitions,
    },
  };
}
