/**
 * A list-then-watch cache of one kind of object, over ApiClient (which fails over between API
 * servers for both lists and watch streams).
 *
 * Invariants:
 * - `synced` is true once a full list has been loaded; after that the cache only moves forward
 *   (watch events, or a fresh list replacing it whole). Consumers that must not act on a partial
 *   view (the allocator) wait for it.
 * - 410 Gone (resourceVersion too old, as an ERROR event or a refused watch) leads to a fresh
 *   list. So does a watch the server ends at once without delivering anything, with a back-off,
 *   so it never becomes a tight re-watch loop. Other errors back off 0.5 s → 30 s.
 * - `transform` keeps only what the controller reads, so the cache stays small.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, httpStatus, type ApiClient, type Apis } from './client.js';
import type { Logger } from '../observe/log.js';

export interface ObjectMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ReflectorOptions<T extends ObjectMeta> {
  /** For logs and metrics, e.g. `services`. */
  name: string;
  client: ApiClient;
  /** Full list, e.g. `(a) => a.core.listServiceForAllNamespaces({}, a.opts)`. */
  list: (apis: Apis) => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  /** Watch path, e.g. `/api/v1/services`. */
  watchPath: string;
  /** Extra watch query, e.g. a fieldSelector matching the list's. */
  watchQuery?: Record<string, string>;
  transform?: (obj: T) => T;
  log: Logger;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /** A watch silent this long (no event, no bookmark) is re-opened: the server may be frozen. */
  idleTimeoutMs?: number;
  requestTimeoutMs?: number;
}

const keyOf = (o: ObjectMeta): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Reflector<T extends ObjectMeta> {
  private readonly items = new Map<string, T>();
  private rv = '';
  private everSynced = false;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly o: ReflectorOptions<T>) {}

  get synced(): boolean {
    return this.everSynced;
  }

  list(): T[] {
    return [...this.items.values()];
  }

  get(namespace: string, name: string): T | undefined {
    return this.items.get(`${namespace}/${name}`);
  }

  /** Called after every change of the cache (a list or a watch event). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  private put(obj: T): void {
    this.items.set(keyOf(obj), this.o.transform ? this.o.transform(obj) : obj);
  }

  async run(signal: AbortSignal): Promise<void> {
    let backoff = 0;
    while (!signal.aborted) {
      try {
        if (this.rv === '') await this.relist(signal);
        const started = performance.now();
        let delivered = 0;
        await this.o.client.watch(
          `${this.o.name}.watch`,
          this.o.watchPath,
          { ...this.o.watchQuery, resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds: this.o.watchTimeoutSeconds ?? 300 },
          (type, object) => {
            delivered++;
            this.onEvent(type, object as T);
          },
          signal,
          { idleTimeoutMs: this.o.idleTimeoutMs ?? 150_000, ...(this.o.requestTimeoutMs ? { connectTimeoutMs: this.o.requestTimeoutMs } : {}) },
        );
        if (delivered === 0 && performance.now() - started < 2_000) {
          // An immediate, empty end is how an expired resourceVersion shows up here.
          this.o.log.debug({ what: this.o.name }, 'watch ended at once with nothing; listing again');
          this.rv = '';
          backoff = Math.min(Math.max(backoff * 2, 500), 30_000);
          await sleep(backoff, undefined, { signal }).catch(() => undefined);
        } else {
          backoff = 0;
        }
      } catch (err) {
        if (signal.aborted) break;
        if (httpStatus(err) === 410) {
          // resourceVersion too old (an ERROR event or a refused watch): list again, at once.
          this.o.log.debug({ what: this.o.name }, 'watch resourceVersion expired; listing again');
          this.rv = '';
          continue;
        }
        backoff = Math.min(Math.max(backoff * 2, 500), 30_000);
        this.o.log.warn({ what: this.o.name, err: describeError(err), retryMs: backoff }, 'list/watch failed; retrying');
        await sleep(backoff, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const res = await this.o.client.call(`${this.o.name}.list`, (a) => this.o.list(a), {
      signal,
      ...(this.o.requestTimeoutMs ? { timeoutMs: this.o.requestTimeoutMs } : {}),
    });
    this.items.clear();
    for (const obj of res.items) this.put(obj);
    this.rv = res.metadata?.resourceVersion ?? '';
    this.everSynced = true;
    this.changed();
  }

  private onEvent(type: string, obj: T): void {
    const rv = obj?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.rv = rv;
      return;
    }
    if (type === 'ADDED' || type === 'MODIFIED') this.put(obj);
    else if (type === 'DELETED') this.items.delete(keyOf(obj));
    else return;
    if (rv) this.rv = rv;
    this.changed();
  }
}
