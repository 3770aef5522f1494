/**
 * In-memory Lease with the API server's compare-and-swap semantics, for unit tests of the
 * elector's logic only (the real behaviour is tested against kube-apiserver in lease-api.test.ts).
 * Each node gets its own view, which can be frozen (requests hang until aborted) or made to
 * ignore aborts (to exercise the watchdog).
 */
import { LeaseConflictError, LeaseNotFoundError, type LeaseStore, type LeaseWatchEvent } from '../../../src/election/lease/store.js';
import type { LeaseRecord, LeaseSpecWrite } from '../../../src/election/lease/state.js';

export class MemoryLease {
  record: LeaseRecord | undefined;
  private rv = 100;
  readonly watchers = new Set<(ev: LeaseWatchEvent) => void>();
  writes: Array<{ by: string; spec: LeaseSpecWrite; at: number }> = [];

  write(by: string, spec: LeaseSpecWrite): LeaseRecord {
    this.rv++;
    this.record = {
      holderIdentity: spec.holderIdentity,
      acquireTime: spec.acquireTime,
      renewTime: spec.renewTime,
      leaseDurationSeconds: spec.leaseDurationSeconds,
      transitions: spec.transitions,
      resourceVersion: String(this.rv),
      uid: 'uid-1',
    };
    this.writes.push({ by, spec, at: performance.now() });
    const r = this.record;
    // Watch delivery is asynchronous, as on the wire.
    for (const w of this.watchers) setImmediate(() => w({ type: 'upsert', record: { ...r } }));
    return { ...r };
  }

  view(node: string): MemoryView {
    return new MemoryView(this, node);
  }
}

export class MemoryView implements LeaseStore {
  readonly namespace = 'kube-system';
  readonly name = 'vip';
  frozen = false;
  /** Requests hang and ignore their AbortSignal (a wedged client). */
  wedged = false;
  failNext: Error | undefined;
  /** The watch stays connected but delivers nothing (a hung stream); counts watch starts. */
  watchMuted = false;
  watchStarts = 0;
  private thaw = new Set<() => void>();

  constructor(
    private readonly m: MemoryLease,
    readonly node: string,
  ) {}

  unfreeze(): void {
    this.frozen = false;
    for (const t of this.thaw) t();
    this.thaw.clear();
  }

  private async gate(signal: AbortSignal): Promise<void> {
    if (this.wedged) await new Promise<never>(() => {});
    if (this.frozen) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.thaw.delete(go);
          reject(signal.reason ?? new Error('aborted'));
        };
        const go = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        this.thaw.add(go);
      });
    }
    await new Promise((r) => setImmediate(r));
    signal.throwIfAborted();
    const f = this.failNext;
    if (f) {
      this.failNext = undefined;
      throw f;
    }
  }

  async get(signal: AbortSignal): Promise<LeaseRecord | undefined> {
    await this.gate(signal);
    return this.m.record ? { ...this.m.record } : undefined;
  }

  async create(spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord> {
    await this.gate(signal);
    if (this.m.record) throw new LeaseConflictError('exists');
    return this.m.write(this.node, spec);
  }

  async update(resourceVersion: string, spec: LeaseSpecWrite, signal: AbortSignal): Promise<LeaseRecord> {
    await this.gate(signal);
    if (!this.m.record) throw new LeaseNotFoundError('missing');
    if (this.m.record.resourceVersion !== resourceVersion) throw new LeaseConflictError('conflict');
    return this.m.write(this.node, spec);
  }

  async watch(onEvent: (ev: LeaseWatchEvent) => void, signal: AbortSignal): Promise<void> {
    await this.gate(signal);
    this.watchStarts++;
    const deliver = (ev: LeaseWatchEvent) => {
      if (!this.frozen && !this.watchMuted && !signal.aborted) onEvent(ev);
    };
    if (this.m.record) onEvent({ type: 'upsert', record: { ...this.m.record } });
    this.m.watchers.add(deliver);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    this.m.watchers.delete(deliver);
  }
}
