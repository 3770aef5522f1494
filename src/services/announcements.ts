/**
 * Keeps this node's ServiceAnnouncement objects (logic/announcements.ts) in line with what its
 * service holders hold, and records a Normal `AnnouncerChanged` Event on each Service when this
 * node starts announcing one of its addresses.
 *
 * Invariants:
 * - Best effort, never in the holder's way: holders only tell this class what happened
 *   (`holding()` is synchronous and cheap); one background loop writes, one request at a time,
 *   each with a timeout. The state to reach is a set, not a queue, so a slow or absent API
 *   server costs memory for one set, however many changes happen meanwhile. A failure is logged
 *   (once per distinct error), counted (vipd_service_announcement_write_failures_total) and
 *   retried later with backoff; without the CRD installed that is a 404, and nothing else changes.
 * - Only this node's objects are touched: listed by the node label, named for this node.
 * - The first pass after start lists this node's objects and deletes those for addresses it does
 *   not hold: what a killed agent left. The objects a killed node leaves elsewhere stay (with an
 *   old SINCE) until that node runs again; the new holder's own object is the truth meanwhile.
 */
import { sleep, untilAborted, withSignal } from '../util/signals.js';
import { describeError, httpStatus, type ApiClient } from '../k8s/client.js';
import type { EventInput } from '../k8s/events.js';
import { paths, type List } from '../k8s/resources.js';
import { metrics } from '../observe/metrics.js';
import type { Logger } from '../observe/log.js';
import type { HoldingChange } from '../vip/holder.js';
import {
  LABEL_NODE,
  announcementWrites,
  announcerChangedNote,
  desiredAnnouncements,
  labelValue,
  type AnnouncementWrite,
  type HeldAddress,
  type ObservedAnnouncement,
  type ServiceRef,
} from './logic/announcements.js';
import type { ServiceLike } from './logic/model.js';
import type { Plan } from './logic/placement.js';

/** What this needs from the services controller (ServicesController implements it). */
export interface AnnouncementSource {
  plan(): Plan;
  onPlan(fn: (p: Plan) => void): () => void;
  service(key: string): ServiceLike | undefined;
  recordEvent(svc: ServiceLike, ev: EventInput): void;
}

export interface ServiceAnnouncerOptions {
  client: ApiClient;
  node: string;
  source: AnnouncementSource;
  /** svc_namespace: only this namespace ('' or undefined: all). */
  namespace?: string;
  /** Per request. Default 5 s. */
  requestTimeoutMs?: number;
  /** First retry after a failure; doubles up to 60 s. Default 2 s. */
  retryMs?: number;
  /** Wall clock for SINCE (the record is for people, so it is a date, not a monotonic time). */
  now?: () => Date;
  log: Logger;
}

export const ANNOUNCER_CHANGED = 'AnnouncerChanged';

export interface AnnouncedAddress {
  ip: string;
  iface: string;
  /** Service keys (`namespace/name`) on it. */
  services: string[];
  reason: string;
  /** Wall clock, ISO 8601. */
  since: string;
}

export class ServiceAnnouncer {
  private readonly held = new Map<string, HeldAddress & { iface: string }>();
  /** This node's objects as last seen or written; undefined until (re)listed. */
  private observed: Map<string, ObservedAnnouncement> | undefined;
  private dirty = true;
  private wake: (() => void) | undefined;
  private idle: Array<() => void> = [];
  private lastError = '';
  private readonly unsubscribe: () => void;
  private readonly stopper = new AbortController();

  constructor(private readonly o: ServiceAnnouncerOptions) {
    this.unsubscribe = o.source.onPlan(() => this.poke());
  }

  /** A service holder started or stopped answering for `ip` (Holder.onHolding). */
  holding(ip: string, iface: string, c: HoldingChange): void {
    if (!c.holding) {
      if (this.held.delete(ip)) this.poke();
      return;
    }
    this.held.set(ip, { ip, iface, reason: c.reason, since: (this.o.now?.() ?? new Date()).toISOString() });
    for (const key of this.servicesOn(this.o.source.plan()).get(ip) ?? []) {
      const svc = this.o.source.service(key);
      if (svc) this.o.source.recordEvent(svc, { type: 'Normal', reason: ANNOUNCER_CHANGED, action: 'Announce', note: announcerChangedNote(ip, this.o.node, c.reason) });
    }
    this.poke();
  }

  /** Runs until finish() (or `stop`, which skips the last writes). */
  async run(stop?: AbortSignal): Promise<void> {
    const signal = stop ? AbortSignal.any([stop, this.stopper.signal]) : this.stopper.signal;
    let delay = this.o.retryMs ?? 2_000;
    try {
      while (!signal.aborted) {
        if (!this.dirty) {
          this.settled();
          const woken = new AbortController();
          this.wake = () => woken.abort();
          await withSignal([signal, woken.signal], undefined, (s) => untilAborted(s));
          this.wake = undefined;
          continue;
        }
        this.dirty = false;
        if (await this.pass(signal)) {
          delay = this.o.retryMs ?? 2_000;
          continue;
        }
        this.settled();
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 60_000);
        this.dirty = true;
      }
    } finally {
      this.unsubscribe();
      this.settled();
    }
  }

  /**
   * Waits (at most `timeoutMs`) until what is held now is written, e.g. at shutdown once every
   * holder let go, so a stopped agent leaves no object behind.
   */
  async settle(timeoutMs: number): Promise<void> {
    this.poke();
    if (timeoutMs <= 0 || this.stopper.signal.aborted) return;
    await Promise.race([new Promise<void>((r) => this.idle.push(r)), sleep(timeoutMs, undefined, { unref: true })]);
  }

  /** settle(), then stop the loop. Shutdown runs it alongside the rest, never before it. */
  async finish(timeoutMs: number): Promise<void> {
    await this.settle(timeoutMs);
    this.stopper.abort();
  }

  private settled(): void {
    for (const r of this.idle.splice(0)) r();
  }

  private poke(): void {
    this.dirty = true;
    this.wake?.();
  }

  /** What this node announces, per address: on which interface, for which Services, why and since when (`vipd status`). */
  announcing(): AnnouncedAddress[] {
    const on = this.servicesOn(this.o.source.plan());
    return [...this.held.values()]
      .map((h) => ({ ip: h.ip, iface: h.iface, services: [...(on.get(h.ip) ?? [])], reason: h.reason, since: h.since }))
      .sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  }

  private servicesOn(p: Plan): Map<string, readonly string[]> {
    return new Map(p.units.map((u) => [u.ip, u.services]));
  }

  private serviceRef(key: string): ServiceRef | undefined {
    const m = this.o.source.service(key)?.metadata;
    return m?.name && m.namespace && m.uid ? { namespace: m.namespace, name: m.name, uid: m.uid } : undefined;
  }

  /**
   * One pass: list if needed, then every write the diff asks for; one refused write does not hold
   * up the others. False when anything failed (the next pass, after a backoff, tries again).
   */
  private async pass(signal: AbortSignal): Promise<boolean> {
    const timeoutMs = this.o.requestTimeoutMs ?? 5_000;
    let failed: { op: string; err: unknown } | undefined;
    const fail = (op: string, err: unknown): void => {
      metrics.announcementWriteFailures.inc({ op });
      failed ??= { op, err };
      // Changed or gone under us: our view is off; list again on the next pass.
      if (httpStatus(err) === 409 || httpStatus(err) === 404) this.observed = undefined;
    };
    try {
      this.observed ??= await this.list(signal, timeoutMs);
    } catch (err) {
      fail('list', err);
    }
    if (this.observed) {
      const held = [...this.held.values()];
      const desired = desiredAnnouncements({
        node: this.o.node,
        iface: held[0]?.iface ?? '',
        held,
        servicesOn: this.servicesOn(this.o.source.plan()),
        service: (k) => this.serviceRef(k),
        ...(this.o.namespace ? { namespace: this.o.namespace } : {}),
      });
      for (const w of announcementWrites(desired, [...this.observed.values()])) {
        if (signal.aborted || !this.observed) break;
        await this.write(w, signal, timeoutMs).catch((err: unknown) => fail(w.op, err));
      }
    }
    if (signal.aborted) return true;
    if (!failed) {
      if (this.lastError) this.o.log.info('ServiceAnnouncement records written again');
      this.lastError = '';
      return true;
    }
    const text = describeError(failed.err);
    if (text !== this.lastError) {
      const hint = httpStatus(failed.err) === 404 && failed.op !== 'delete' ? ' (is manifests/vipd-crds.yaml applied?)' : '';
      this.o.log.warn({ op: failed.op, err: text }, `cannot write ServiceAnnouncement records${hint}; retrying with backoff (this never affects who announces)`);
      this.lastError = text;
    }
    return false;
  }

  private async list(signal: AbortSignal, timeoutMs: number): Promise<Map<string, ObservedAnnouncement>> {
    const list = await this.o.client.request<List<ObservedAnnouncement>>('serviceannouncements.list', 'GET', paths.serviceAnnouncements(this.o.namespace || undefined), {
      query: { labelSelector: `${LABEL_NODE}=${labelValue(this.o.node)}` },
      signal,
      timeoutMs,
    });
    const mine = list.items.filter((i) => i.status?.node === this.o.node || i.status?.node === undefined);
    return new Map(mine.map((i) => [`${i.metadata?.namespace ?? ''}/${i.metadata?.name ?? ''}`, i]));
  }

  private async write(w: AnnouncementWrite, signal: AbortSignal, timeoutMs: number): Promise<void> {
    const observed = this.observed!;
    if (w.op === 'delete') {
      try {
        await this.o.client.request('serviceannouncements.delete', 'DELETE', paths.serviceAnnouncement(w.namespace, w.name), {
          body: { apiVersion: 'v1', kind: 'DeleteOptions', ...(w.resourceVersion ? { preconditions: { resourceVersion: w.resourceVersion } } : {}) },
          signal,
          timeoutMs,
        });
      } catch (err) {
        // Already gone (garbage-collected with its Service): that is what we wanted.
        if (httpStatus(err) !== 404) throw err;
      }
      observed.delete(`${w.namespace}/${w.name}`);
      return;
    }
    const { namespace, name } = w.body.metadata;
    const saved =
      w.op === 'create'
        ? await this.o.client.request<ObservedAnnouncement>('serviceannouncements.create', 'POST', paths.serviceAnnouncements(namespace), { body: w.body, signal, timeoutMs })
        : await this.o.client.request<ObservedAnnouncement>('serviceannouncements.update', 'PUT', paths.serviceAnnouncement(namespace, name), { body: w.body, signal, timeoutMs });
    observed.set(`${namespace}/${name}`, saved);
    this.o.log.debug({ op: w.op, object: `${namespace}/${name}`, addresses: w.body.status.addresses }, 'ServiceAnnouncement written');
  }

  /** The addresses this node holds, as recorded (tests, status). */
  heldAddresses(): HeldAddress[] {
    return [...this.held.values()].map(({ ip, reason, since }) => ({ ip, reason, since }));
  }
}
