/**
 * The elector's view of one coordination.k8s.io/v1 Lease: read, create, compare-and-swap
 * update, watch. The API implementation goes through ApiClient (endpoint failover, per-attempt
 * timeouts); unit tests use an in-memory store with the same CAS semantics.
 *
 * Invariants: update() always sends the resourceVersion the caller read (optimistic
 * concurrency); a 409 surfaces as LeaseConflictError and the caller re-reads. Fields we do not
 * own (labels, annotations, unknown spec fields) are carried over from the last object seen.
 */
import type { V1Lease } from '@kubernetes/client-node';
import { httpStatus, type ApiClient } from '../../k8s/client.js';
import { isNewerVersion, type LeaseRecord, type LeaseSpecWrite } from './state.js';

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

export class LeaseConflictError extends Error {
  override readonly name = 'LeaseConflictError';
}
export class LeaseNotFoundError extends Error {
  override readonly name = 'LeaseNotFoundError';
}

/** Structural subset of a Lease as it arrives from the typed client or raw watch JSON. */
interface LeaseLike {
  metadata?: { resourceVersion?: string; uid?: string };
  spec?: {
    holderIdentity?: string | null;
    acquireTime?: unknown;
    renewTime?: unknown;
    leaseDurationSeconds?: number | null;
    leaseTransitions?: number | null;
  };
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

export interface ApiLeaseStoreOptions {
  client: ApiClient;
  namespace: string;
  name: string;
  /** Per attempt (per endpoint); default the client's. */
  requestTimeoutMs?: number;
  /** Server-side watch timeout, so streams rotate even when nothing happens. */
  watchTimeoutSeconds?: number;
  /** A stream that delivers nothing for this long is dropped and re-opened (default 60 s). */
  watchIdleTimeoutMs?: number;
}

export class ApiLeaseStore implements LeaseStore {
  readonly namespace: string;
  readonly name: string;
  private last: V1Lease | undefined;

  constructor(private readonly o: ApiLeaseStoreOptions) {
    this.namespace = o.namespace;
    this.name = o.name;
  }

  private callOpts(signal: AbortSignal) {
    return this.o.requestTimeoutMs === undefined ? { signal } : { signal, timeoutMs: this.o.requestTimeoutMs };
  }

  private body(resourceVersion: string | undefined, spec: LeaseSpecWrite): V1Lease {
    const prev = this.last;
    const metadata: V1Lease['metadata'] = { name: this.name, namespace: this.namespace };
    if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
    if (prev?.metadata?.labels) metadata.labels = prev.metadata.labels;
    if (prev?.metadata?.annotations) metadata.annotations = prev.metadata.annotations;
    if (prev?.metadata?.ownerReferences) metadata.ownerReferences = prev.metadata.ownerReferences;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata,
      spec: {
        ...(prev?.spec ?? {}),
        holderIdentity: spec.holderIdentity,
        // MicroTime strings pass the generated serializer unchanged.
        acquireTime: spec.acquireTime as unknown as Date,
        renewTime: spec.renewTime as unknown as Date,
        leaseDurationSeconds: spec.leaseDurationSeconds,
        leaseTransitions: spec.transitions,
      },
    };
  }

  /**
   * Remembers the newest object seen (reads, writes and watch events alike), whose labels and
   * annotations the next update carries over: an update built on an older copy would wipe
   * another writer's changes even though its resourceVersion is current.
   */
  private keep(l: V1Lease): LeaseRecord {
    const rv = l.metadata?.resourceVersion ?? '';
    const prev = this.last?.metadata?.resourceVersion;
    if (prev === undefined || rv === prev || isNewerVersion(rv, prev)) this.last = l;
    return toRecord(l as LeaseLike);
  }

  async get(signal: AbortSignal): Promise<LeaseRecord | undefined> {
    try {
      const l = await this.o.client.call(
        'lease.get',
        (a) => a.coordination.readNamespacedLease({ name: this.name, namespace: this.namespace }, a.opts),
        this.callOpts(signal),
      );
      return this.keep(l);
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async create(spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord> {
    try {
      const l = await this.o.client.call(
        'lease.create',
        (a) => a.coordination.createNamespacedLease({ namespace: this.namespace, body: this.body(undefined, spec) }, a.opts),
        this.callOpts(signal),
      );
      return this.keep(l);
    } catch (err) {
      if (httpStatus(err) === 409) throw new LeaseConflictError(`Lease ${this.namespace}/${this.name} already exists`);
      throw err;
    }
  }

  async update(resourceVersion: string, spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord> {
    try {
      const l = await this.o.client.call(
        'lease.update',
        (a) => a.coordination.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body: this.body(resourceVersion, spec) }, a.opts),
        this.callOpts(signal),
      );
      return this.keep(l);
    } catch (err) {
      const s = httpStatus(err);
      if (s === 409) throw new LeaseConflictError(`Lease ${this.namespace}/${this.name} changed since resourceVersion ${resourceVersion}`);
      if (s === 404) throw new LeaseNotFoundError(`Lease ${this.namespace}/${this.name} does not exist`);
      throw err;
    }
  }

  async watch(onEvent: (ev: LeaseWatchEvent) => void, signal: AbortSignal): Promise<void> {
    await this.o.client.watch(
      'lease.watch',
      `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases`,
      // No resourceVersion: the stream starts with the current object as ADDED.
      { fieldSelector: `metadata.name=${this.name}`, timeoutSeconds: this.o.watchTimeoutSeconds ?? 300 },
      (type, object) => {
        // Raw JSON has the typed object's field names; keep() only copies metadata and spec fields.
        if (type === 'ADDED' || type === 'MODIFIED') onEvent({ type: 'upsert', record: this.keep(object as V1Lease) });
        else if (type === 'DELETED') onEvent({ type: 'deleted' });
      },
      signal,
      {
        idleTimeoutMs: this.o.watchIdleTimeoutMs ?? 60_000,
        ...(this.o.requestTimeoutMs === undefined ? {} : { connectTimeoutMs: this.o.requestTimeoutMs }),
      },
    );
  }
}
