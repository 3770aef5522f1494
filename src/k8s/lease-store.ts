/**
 * One coordination.k8s.io/v1 Lease over ApiClient (endpoint failover, per-attempt timeouts):
 * read, create, compare-and-swap replace, watch. Both kinds of Lease vipd writes go through it:
 * the elected Leases (election/lease/store.ts turns objects into the elector's LeaseRecords) and
 * the services member Leases (services/member-lease.ts: renew, release, fence). It lives in k8s/
 * because a member Lease is not an election (each node writes only its own, others only fence
 * it); what the two share is the API object and its concurrency rule.
 *
 * Invariants:
 * - update() sends exactly the resourceVersion the caller passes, so the API applies it only if
 *   the Lease is still at that version: a writer never overwrites a change it has not seen.
 * - A write replaces the whole object, so it is built on `base`, the copy the caller's decision
 *   rests on: labels, annotations, ownerReferences and spec fields the writer does not set are
 *   carried over, and the labels and annotations the writer owns are laid over them. This store
 *   keeps no copy itself: which copy is current is the caller's rule.
 * - 409 surfaces as LeaseConflictError, 404 on update as LeaseNotFoundError; both carry the HTTP
 *   status, so httpStatus() sorts them like the API's own errors. Other errors pass unchanged.
 */
import type { V1Lease, V1LeaseSpec, V1ObjectMeta } from '@kubernetes/client-node';
import { withSignal } from '../util/signals.js';
import { httpStatus, type ApiClient, type HttpMethod } from './client.js';
import { paths } from './resources.js';

/** What vipd reads of a Lease: the API's JSON (times are MicroTime strings); a client-node V1Lease fits too. */
export interface LeaseLike {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: V1ObjectMeta['ownerReferences'];
  };
  spec?: {
    holderIdentity?: string | null;
    acquireTime?: unknown;
    renewTime?: unknown;
    leaseDurationSeconds?: number | null;
    leaseTransitions?: number | null;
  };
}

/** The spec fields a write sets (times as MicroTime strings); one left out keeps the base's value. */
export interface LeaseSpecFields {
  holderIdentity: string;
  acquireTime?: string;
  renewTime: string;
  leaseDurationSeconds: number;
  leaseTransitions: number;
}

export interface LeaseWrite {
  spec: LeaseSpecFields;
  /** The labels and annotations this writer owns, laid over the base's. */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export type LeaseEvent = { type: 'upsert'; lease: LeaseLike } | { type: 'deleted' };

export class LeaseConflictError extends Error {
  override readonly name = 'LeaseConflictError';
  readonly statusCode = 409;
}
export class LeaseNotFoundError extends Error {
  override readonly name = 'LeaseNotFoundError';
  readonly statusCode = 404;
}

type Verb = 'get' | 'create' | 'update' | 'watch';

export interface LeaseObjectStoreOptions {
  client: ApiClient;
  namespace: string;
  name: string;
  /** Names the calls in logs and the API error metric: `<op>.get`, `<op>.update`, … */
  op: string;
  /** A different name for one kind of call (a fence is an update, counted on its own). */
  opNames?: Partial<Record<Verb, string>>;
  /** Per attempt (per endpoint); default the client's. Also bounds a watch's connect. */
  requestTimeoutMs?: number;
  /** Bound on one get/create/update with all its endpoint attempts; default none. */
  opTimeoutMs?: number;
  /** Server-side watch timeout, so streams rotate even when nothing happens (default 300 s). */
  watchTimeoutSeconds?: number;
  /** A stream that delivers nothing for this long is dropped and re-opened (default 60 s). */
  watchIdleTimeoutMs?: number;
}

export class LeaseObjectStore {
  readonly namespace: string;
  readonly name: string;

  constructor(private readonly o: LeaseObjectStoreOptions) {
    this.namespace = o.namespace;
    this.name = o.name;
  }

  private get where(): string {
    return `Lease ${this.namespace}/${this.name}`;
  }

  private opName(verb: Verb): string {
    return this.o.opNames?.[verb] ?? `${this.o.op}.${verb}`;
  }

  private call(verb: Verb, method: HttpMethod, apiPath: string, body: V1Lease | undefined, signal: AbortSignal): Promise<LeaseLike> {
    const attempt = (s: AbortSignal): Promise<LeaseLike> =>
      this.o.client.request<LeaseLike>(this.opName(verb), method, apiPath, {
        signal: s,
        ...(body === undefined ? {} : { body }),
        ...(this.o.requestTimeoutMs === undefined ? {} : { timeoutMs: this.o.requestTimeoutMs }),
      });
    return this.o.opTimeoutMs === undefined ? attempt(signal) : withSignal([signal], this.o.opTimeoutMs, attempt);
  }

  private body(resourceVersion: string | undefined, w: LeaseWrite, base: LeaseLike | undefined): V1Lease {
    const m = base?.metadata;
    const metadata: V1ObjectMeta = { name: this.name, namespace: this.namespace };
    if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
    const labels = layered(m?.labels, w.labels);
    const annotations = layered(m?.annotations, w.annotations);
    if (labels) metadata.labels = labels;
    if (annotations) metadata.annotations = annotations;
    if (m?.ownerReferences) metadata.ownerReferences = m.ownerReferences;
    return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec: { ...(base?.spec ?? {}), ...w.spec } as unknown as V1LeaseSpec };
  }

  /** undefined when the Lease does not exist. */
  async get(signal: AbortSignal): Promise<LeaseLike | undefined> {
    try {
      return await this.call('get', 'GET', paths.lease(this.namespace, this.name), undefined, signal);
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** LeaseConflictError when it already exists. `base`: what to carry over (a Lease seen before). */
  async create(w: LeaseWrite, signal: AbortSignal, base?: LeaseLike): Promise<LeaseLike> {
    const body = this.body(undefined, w, base);
    try {
      return await this.call('create', 'POST', paths.leases(this.namespace), body, signal);
    } catch (err) {
      if (httpStatus(err) === 409) throw new LeaseConflictError(`${this.where} already exists`);
      throw err;
    }
  }

  /** Compare-and-swap on `resourceVersion`: LeaseConflictError on 409, LeaseNotFoundError on 404. */
  async update(resourceVersion: string, w: LeaseWrite, signal: AbortSignal, base?: LeaseLike): Promise<LeaseLike> {
    const body = this.body(resourceVersion, w, base);
    try {
      return await this.call('update', 'PUT', paths.lease(this.namespace, this.name), body, signal);
    } catch (err) {
      const s = httpStatus(err);
      if (s === 409) throw new LeaseConflictError(`${this.where} changed since resourceVersion ${resourceVersion}`);
      if (s === 404) throw new LeaseNotFoundError(`${this.where} does not exist`);
      throw err;
    }
  }

  /** One watch stream (current state first, as an upsert when it exists); resolves when it ends. */
  async watch(onEvent: (ev: LeaseEvent) => void, signal: AbortSignal): Promise<void> {
    await this.o.client.watch(
      this.opName('watch'),
      paths.leases(this.namespace),
      // No resourceVersion: the stream starts with the current object as ADDED.
      { fieldSelector: `metadata.name=${this.name}`, timeoutSeconds: this.o.watchTimeoutSeconds ?? 300 },
      (type, object) => {
        if (type === 'ADDED' || type === 'MODIFIED') onEvent({ type: 'upsert', lease: object as LeaseLike });
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

function layered(base: Record<string, string> | undefined, owned: Record<string, string> | undefined): Record<string, string> | undefined {
  return base || owned ? { ...base, ...owned } : undefined;
}
