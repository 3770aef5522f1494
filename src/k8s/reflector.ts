/**
 * A list-then-watch cache of one kind of object, over ApiClient (which fails over between API
 * servers for both lists and watch streams). The services controller's Services, EndpointSlices
 * and ConfigMap, and the member Leases' view (services/member-lease.ts) all run on it.
 *
 * Invariants:
 * - `synced` is true once a full list has been loaded; after that the cache only moves forward
 *   (watch events, or a fresh list replacing it whole). Consumers that must not act on a partial
 *   view (the allocator) wait for it.
 * - onChange listeners run synchronously after each list and each event has been applied, in
 *   the order the stream delivered them, which is resourceVersion order: a listener sees the
 *   cache exactly as of that event (the member view decides claims at that point of the order).
 * - 410 Gone (resourceVersion too old, as an ERROR event or a refused watch) leads to a fresh
 *   list, and so does relist(). So does a watch the server ends at once without delivering
 *   anything, with a back-off, so it never becomes a tight re-watch loop. Other errors back off
 *   (`backoff`, default 0.5 s → 30 s) and resume from the last version seen, or list again with
 *   `relistAfterError`.
 * - `transform` keeps only what the controller reads, so the cache stays small.
 * - With `mayBeAbsent`, a 404 (the API server does not serve the resource: a CRD that is not
 *   installed) is a state, not an error: the cache is empty and synced, one info line says so,
 *   and the list is tried again every `recheckMs` quietly; one more line when it appears.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { monotonicClock, type Clock } from '../util/clock.js';
import { withSignal } from '../util/signals.js';
import { describeError, httpStatus, type ApiClient } from './client.js';
import type { List } from './resources.js';
import type { Logger } from '../observe/log.js';

export interface ObjectMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ReflectorOptions<T extends ObjectMeta> {
  /** For logs and metrics, e.g. `services`. */
  name: string;
  client: ApiClient;
  /** Collection path, listed and watched, e.g. `paths.services()` (`/api/v1/services`). */
  path: string;
  /** Selects in the list and the watch alike, e.g. a fieldSelector. */
  query?: Record<string, string>;
  /** Only objects with these labels, in the list and the watch alike, e.g. `vipd.io/member=true`. */
  labelSelector?: string;
  transform?: (obj: T) => T;
  log: Logger;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /** A watch silent this long (no event, no bookmark) is re-opened: the server may be frozen (default 150 s). */
  idleTimeoutMs?: number;
  /** Per list attempt (per endpoint), and the watch's connect. */
  requestTimeoutMs?: number;
  /** Bound on one list with all its endpoint attempts; default none. */
  listOpTimeoutMs?: number;
  /** Back-off after a failure or an empty watch, doubling from minMs up to maxMs (default 500 ms → 30 s). */
  backoff?: { minMs: number; maxMs: number };
  /** A watch that ends within this long having delivered nothing is taken for an expired resourceVersion (default 2 s). */
  emptyWatchMs?: number;
  /** List again after any failed list or watch, not only after 410 (default false: resume the watch). */
  relistAfterError?: boolean;
  /** Times the empty-watch window. */
  clock?: Clock;
  /** The resource may not be served (an optional CRD): see the invariants above. */
  mayBeAbsent?: { recheckMs: number };
}

/** What a listener is told: a fresh list replaced the cache, or one watch event was applied. */
export type ReflectorEvent<T> = { kind: 'list' } | { kind: 'added' | 'modified' | 'deleted'; object: T };

const keyOf = (o: ObjectMeta): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Reflector<T extends ObjectMeta> {
  private readonly items = new Map<string, T>();
  private rv = '';
  private everSynced = false;
  private readonly listeners = new Set<(e: ReflectorEvent<T>) => void>();
  private readonly clock: Clock;
  /** Aborts the current watch when relist() is called. */
  private restart: AbortController | undefined;
  private absentNow = false;

  constructor(private readonly o: ReflectorOptions<T>) {
    this.clock = o.clock ?? monotonicClock;
  }

  get synced(): boolean {
    return this.everSynced;
  }

  /** mayBeAbsent: the last list found the resource not served (404). */
  get absent(): boolean {
    return this.absentNow;
  }

  list(): T[] {
    return [...this.items.values()];
  }

  get(namespace: string, name: string): T | undefined {
    return this.items.get(`${namespace}/${name}`);
  }

  /** Called synchronously after every change of the cache (a list or a watch event), in resourceVersion order. */
  onChange(fn: (e: ReflectorEvent<T>) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Drops the watch and lists again: the caller learned the cache is behind (e.g. a compare-and-swap found a newer version). */
  relist(): void {
    this.rv = '';
    this.restart?.abort(new Error('relist'));
  }

  private changed(e: ReflectorEvent<T>): void {
    for (const fn of this.listeners) fn(e);
  }

  private shape(obj: T): T {
    return this.o.transform ? this.o.transform(obj) : obj;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { minMs, maxMs } = this.o.backoff ?? { minMs: 500, maxMs: 30_000 };
    const emptyWatchMs = this.o.emptyWatchMs ?? 2_000;
    let backoff = 0;
    const grow = (): number => (backoff = Math.min(Math.max(backoff * 2, minMs), maxMs));
    const pause = (): Promise<unknown> => sleep(backoff, undefined, { signal }).catch(() => undefined);
    while (!signal.aborted) {
      const restart = new AbortController();
      this.restart = restart;
      try {
        if (this.rv === '') await this.listAll(signal);
        const started = this.clock.now();
        let delivered = 0;
        await withSignal([signal, restart.signal], undefined, (s) =>
          this.o.client.watch(
            `${this.o.name}.watch`,
            this.o.path,
            {
              ...this.o.query,
              ...(this.o.labelSelector === undefined ? {} : { labelSelector: this.o.labelSelector }),
              resourceVersion: this.rv,
              allowWatchBookmarks: true,
              timeoutSeconds: this.o.watchTimeoutSeconds ?? 300,
            },
            (type, object) => {
              delivered++;
              this.onEvent(type, object as T);
            },
            s,
            { idleTimeoutMs: this.o.idleTimeoutMs ?? 150_000, ...(this.o.requestTimeoutMs ? { connectTimeoutMs: this.o.requestTimeoutMs } : {}) },
          ),
        );
        if (delivered === 0 && this.clock.now() - started < emptyWatchMs) {
          // An immediate, empty end is how an expired resourceVersion shows up here.
          this.o.log.debug({ what: this.o.name }, 'watch ended at once with nothing; listing again');
          this.rv = '';
          grow();
          await pause();
        } else {
          backoff = 0;
        }
      } catch (err) {
        if (signal.aborted) break;
        if (restart.signal.aborted) continue; // relist() asked for it; rv is already cleared
        if (this.o.mayBeAbsent && httpStatus(err) === 404) {
          if (!this.absentNow) {
            this.o.log.info({ what: this.o.name, path: this.o.path, recheckMs: this.o.mayBeAbsent.recheckMs }, 'not served by the API server (is its CRD installed?); running without it and looking again periodically');
          }
          this.absentNow = true;
          this.rv = '';
          backoff = 0;
          if (!this.everSynced || this.items.size > 0) {
            this.items.clear();
            this.everSynced = true;
            this.changed({ kind: 'list' });
          }
          await sleep(this.o.mayBeAbsent.recheckMs, undefined, { signal }).catch(() => undefined);
          continue;
        }
        if (this.o.relistAfterError) this.rv = '';
        if (httpStatus(err) === 410) {
          // resourceVersion too old (an ERROR event or a refused watch): list again, at once.
          this.o.log.debug({ what: this.o.name }, 'watch resourceVersion expired; listing again');
          this.rv = '';
          continue;
        }
        grow();
        this.o.log.warn({ what: this.o.name, err: describeError(err), retryMs: backoff }, 'list/watch failed; retrying');
        await pause();
      }
    }
  }

  private async listAll(signal: AbortSignal): Promise<void> {
    const query = { ...this.o.query, ...(this.o.labelSelector === undefined ? {} : { labelSelector: this.o.labelSelector }) };
    const list = (s: AbortSignal) =>
      this.o.client.request<List<T>>(`${this.o.name}.list`, 'GET', this.o.path, {
        query,
        signal: s,
        ...(this.o.requestTimeoutMs ? { timeoutMs: this.o.requestTimeoutMs } : {}),
      });
    const res = this.o.listOpTimeoutMs === undefined ? await list(signal) : await withSignal([signal], this.o.listOpTimeoutMs, list);
    this.items.clear();
    for (const obj of res.items) this.items.set(keyOf(obj), this.shape(obj));
    this.rv = res.metadata?.resourceVersion ?? '';
    this.everSynced = true;
    if (this.absentNow) {
      this.absentNow = false;
      this.o.log.info({ what: this.o.name, path: this.o.path }, 'now served by the API server; reading it');
    }
    this.changed({ kind: 'list' });
  }

  private onEvent(type: string, raw: T): void {
    const rv = raw?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.rv = rv;
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
    const object = this.shape(raw);
    if (type === 'DELETED') this.items.delete(keyOf(raw));
    else this.items.set(keyOf(raw), object);
    if (rv) this.rv = rv;
    this.changed({ kind: type === 'ADDED' ? 'added' : type === 'MODIFIED' ? 'modified' : 'deleted', object });
  }
}
