/**
 * Kubernetes Events (events.k8s.io/v1) about the Lease: acquired, lost, released, handed over.
 *
 * Invariants: recording never blocks or fails the caller. Writes run in the background with
 * a bounded queue and timeout; a failure is logged (and counted) and dropped. Events are a
 * record for people (`kubectl events --for lease/...`), never an input to the election.
 *
 * Repeats become a series, as client-go's events library does: the same Event (type, reason,
 * action and note about the same object) again within SERIES_WINDOW_MS of its last occurrence is
 * not a new object but a count on the first (events.k8s.io `series.count` and
 * `lastObservedTime`; core/v1 `count` and `lastTimestamp`), so a VIP that flaps all night leaves
 * a handful of Events, not thousands, and costs the API one write per SERIES_WRITE_MS per
 * flapping Event. The first repeat is written at once (the series becomes visible), later ones at
 * most every SERIES_WRITE_MS with the latest count, and `flush()` writes what is still due.
 * client-go waits up to 30 minutes between series writes; an operator watching a flap wants the
 * count while it happens.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Event, EventsV1Event } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../observe/log.js';
import { describeError, httpStatus, type ApiClient } from './client.js';
import { microTime, paths } from './resources.js';

export type EventType = 'Normal' | 'Warning';

export interface EventInput {
  type: EventType;
  /** UpperCamelCase machine reason, e.g. LeaseAcquired. */
  reason: string;
  /** What was done, e.g. Acquire, Renew, Release, StepDown. */
  action: string;
  /** Human sentence, ≤ 1 kB. */
  note: string;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
}

/** What electors depend on (lets unit tests pass a recorder that only remembers). */
export interface EventSink {
  record(ev: EventInput): void;
}

export interface EventRecorderOptions {
  client: ApiClient;
  /** The object the events are about (the Lease); a function because its uid is learned later. */
  regarding: () => ObjectRef;
  /** reportingInstance: this node. */
  instance: string;
  controller?: string;
  log?: Logger;
  timeoutMs?: number;
  maxPending?: number;
  /** SERIES_WINDOW_MS and SERIES_WRITE_MS (tests). */
  seriesWindowMs?: number;
  seriesWriteMs?: number;
}

/** A repeat this soon after the last occurrence joins its series (client-go's events API uses 6 min). */
export const SERIES_WINDOW_MS = 6 * 60_000;
/** After the first repeat, a series' count is written at most this often. */
export const SERIES_WRITE_MS = 30_000;

/** One Event object and the occurrences it stands for. */
export interface SeriesEntry {
  /** The Event's name once its create succeeded. */
  name?: string;
  /** Where it was created (core/v1 after a 404 from events.k8s.io). */
  core?: boolean;
  count: number;
  /** Wall-clock ms of the last occurrence. */
  lastAt: number;
  /** The count the API has (1 after the create). */
  writtenCount: number;
  /** Wall-clock ms of the last series write. */
  writtenAt: number;
}

/** What to do with an occurrence: a new Event, or a count on an existing one to write in `writeInMs`. */
export type SeriesDecision = { kind: 'create'; entry: SeriesEntry } | { kind: 'repeat'; entry: SeriesEntry; writeInMs: number };

/** The pure part: which occurrences are repeats, and when their counts are due. Times are wall ms. */
export class SeriesBook {
  private readonly entries = new Map<string, SeriesEntry>();

  constructor(
    private readonly windowMs = SERIES_WINDOW_MS,
    private readonly writeEveryMs = SERIES_WRITE_MS,
  ) {}

  observe(key: string, now: number): SeriesDecision {
    this.sweep(now);
    const e = this.entries.get(key);
    if (!e) {
      const entry: SeriesEntry = { count: 1, lastAt: now, writtenCount: 0, writtenAt: now };
      this.entries.set(key, entry);
      return { kind: 'create', entry };
    }
    e.count++;
    e.lastAt = now;
    return { kind: 'repeat', entry: e, writeInMs: this.writeInMs(e, now) };
  }

  /** How long until `e`'s count is due (0: now). Only meaningful while count > writtenCount. */
  writeInMs(e: SeriesEntry, now: number): number {
    return e.writtenCount < 2 ? 0 : Math.max(0, e.writtenAt + this.writeEveryMs - now);
  }

  /** Forgets `key` (its Event is gone, or could not be created): the next occurrence creates anew. */
  forget(key: string, entry: SeriesEntry): void {
    if (this.entries.get(key) === entry) this.entries.delete(key);
  }

  size(): number {
    return this.entries.size;
  }

  private sweep(now: number): void {
    // A count still due when its entry goes is written anyway: the recorder's timer holds the entry.
    for (const [k, e] of this.entries) if (now - e.lastAt > this.windowMs) this.entries.delete(k);
  }
}

export class EventRecorder implements EventSink {
  private pending = new Set<Promise<void>>();
  private readonly log: Logger;
  private readonly controller: string;
  private coreFallback = false;
  private readonly book: SeriesBook;
  /** Per series: the create or write in flight, so the next write follows it. */
  private readonly chains = new Map<SeriesEntry, Promise<void>>();
  private readonly due = new Map<SeriesEntry, { key: string; ev: EventInput; timer: NodeJS.Timeout }>();
  /** Series with a write queued that has not started: a burst of repeats queues one, not one each. */
  private readonly queued = new Set<SeriesEntry>();

  constructor(private readonly o: EventRecorderOptions) {
    this.log = o.log ?? createLogger(undefined, { mod: 'events' });
    this.controller = o.controller ?? 'vipd.io/lease-elector';
    this.book = new SeriesBook(o.seriesWindowMs, o.seriesWriteMs);
  }

  record(ev: EventInput): void {
    const input = ev.note.length > 1000 ? { ...ev, note: `${ev.note.slice(0, 997)}...` } : ev;
    const ref = this.o.regarding();
    const key = [ref.kind, ref.namespace, ref.name, ref.uid ?? '', input.type, input.reason, input.action, input.note].join('\0');
    const d = this.book.observe(key, Date.now());
    if (d.kind === 'create') this.createFor(key, d.entry, input, ref);
    else this.schedule(key, d.entry, d.writeInMs, input);
  }

  private createFor(key: string, entry: SeriesEntry, ev: EventInput, ref: ObjectRef): void {
    this.chain(
      entry,
      () =>
        this.create(ev, ref, entry).catch((err: unknown) => {
          this.book.forget(key, entry);
          throw err;
        }),
      ev.reason,
    );
  }

  /** Writes the series counts still due, then waits for every write in flight (tests, shutdown). */
  async flush(): Promise<void> {
    for (const [entry, { key, ev, timer }] of [...this.due]) {
      clearTimeout(timer);
      this.due.delete(entry);
      this.writeSeries(key, entry, ev);
    }
    // A write can start another (a series whose Event was gone is created again).
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private schedule(key: string, entry: SeriesEntry, inMs: number, ev: EventInput): void {
    if (this.due.has(entry)) return;
    if (inMs <= 0) {
      this.writeSeries(key, entry, ev);
      return;
    }
    const timer = setTimeout(() => {
      this.due.delete(entry);
      this.writeSeries(key, entry, ev);
    }, inMs);
    timer.unref();
    this.due.set(entry, { key, ev, timer });
  }

  private writeSeries(key: string, entry: SeriesEntry, ev: EventInput): void {
    if (this.queued.has(entry)) return;
    this.queued.add(entry);
    this.chain(entry, async () => {
      this.queued.delete(entry);
      if (entry.name === undefined || entry.count <= entry.writtenCount) return;
      const count = entry.count;
      const at = new Date(entry.lastAt);
      try {
        await this.patchSeries(entry, count, at);
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
        // The API's Event TTL (1 h by default) or someone took it: the latest occurrence starts a new one.
        this.book.forget(key, entry);
        const d = this.book.observe(key, entry.lastAt);
        if (d.kind === 'create') this.createFor(key, d.entry, ev, this.o.regarding());
        return;
      }
      entry.writtenCount = Math.max(entry.writtenCount, count);
      entry.writtenAt = Date.now();
      // Occurrences during the write are written at the next slot.
      if (entry.count > entry.writtenCount) this.schedule(key, entry, this.book.writeInMs(entry, Date.now()), ev);
    }, ev.reason);
  }

  /** Runs `job` after the entry's previous one, in the bounded background queue. */
  private chain(entry: SeriesEntry, job: () => Promise<void>, reason: string): void {
    if (this.pending.size >= (this.o.maxPending ?? 16)) {
      this.queued.delete(entry);
      this.log.warn({ reason }, 'event dropped: too many event writes pending');
      return;
    }
    const previous = this.chains.get(entry) ?? Promise.resolve();
    const p = previous.then(job).catch((err: unknown) => {
      this.log.warn({ reason, err: describeError(err) }, 'cannot write Kubernetes Event');
    });
    this.chains.set(entry, p);
    this.pending.add(p);
    void p.finally(() => {
      this.pending.delete(p);
      if (this.chains.get(entry) === p) this.chains.delete(entry);
    });
  }

  private async patchSeries(entry: SeriesEntry, count: number, at: Date): Promise<void> {
    const ref = this.o.regarding();
    const timeoutMs = this.o.timeoutMs ?? 5_000;
    const signal = AbortSignal.timeout(timeoutMs * 2);
    const opts = { signal, timeoutMs, contentType: 'application/merge-patch+json' };
    if (entry.core) {
      await this.o.client.request('events.patch', 'PATCH', paths.coreEvent(ref.namespace, entry.name!), { ...opts, body: { count, lastTimestamp: at.toISOString() } });
    } else {
      await this.o.client.request('events.patch', 'PATCH', paths.event(ref.namespace, entry.name!), { ...opts, body: { series: { count, lastObservedTime: microTime(at.getTime()) } } });
    }
  }

  private async create(ev: EventInput, ref: ObjectRef, entry: SeriesEntry): Promise<void> {
    const now = new Date(entry.lastAt);
    const name = `${ref.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
    const timeoutMs = this.o.timeoutMs ?? 5_000;
    const signal = AbortSignal.timeout(timeoutMs * 2);
    if (!this.coreFallback) {
      const body: Omit<EventsV1Event, 'eventTime'> & { eventTime: string } = {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace: ref.namespace },
        eventTime: microTime(now.getTime()),
        reportingController: this.controller,
        reportingInstance: this.o.instance.slice(0, 128),
        action: ev.action,
        reason: ev.reason,
        note: ev.note,
        type: ev.type,
        regarding: { ...ref },
      };
      try {
        await this.o.client.request('events.create', 'POST', paths.events(ref.namespace), { body, signal, timeoutMs });
        this.created(entry, name, false, now);
        return;
      } catch (err) {
        // Only an API server without events.k8s.io/v1 sends us to the core API.
        if (httpStatus(err) !== 404) throw err;
        this.coreFallback = true;
      }
    }
    const core: CoreV1Event = {
      metadata: { name, namespace: ref.namespace },
      involvedObject: { ...ref },
      reason: ev.reason,
      message: ev.note,
      type: ev.type,
      action: ev.action,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      source: { component: this.controller, host: this.o.instance },
      reportingComponent: this.controller,
      reportingInstance: this.o.instance.slice(0, 128),
    };
    await this.o.client.request('events.create', 'POST', paths.coreEvents(ref.namespace), { body: core, signal, timeoutMs });
    this.created(entry, name, true, now);
  }

  private created(entry: SeriesEntry, name: string, core: boolean, at: Date): void {
    entry.name = name;
    entry.core = core;
    entry.writtenCount = 1;
    entry.writtenAt = at.getTime();
  }
}
