/**
 * Kubernetes Events (events.k8s.io/v1) about the Lease: acquired, lost, released, handed over.
 *
 * Invariants: recording never blocks or fails the caller. Writes run in the background with
 * a bounded queue and timeout; a failure is logged (and counted) and dropped. Events are a
 * record for people (`kubectl events --for lease/...`), never an input to the election.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Event, EventsV1Event } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../observe/log.js';
import { describeError, httpStatus, type ApiClient } from './client.js';
import { paths } from './resources.js';

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
}

export class EventRecorder implements EventSink {
  private pending = new Set<Promise<void>>();
  private readonly log: Logger;
  private readonly controller: string;
  private coreFallback = false;

  constructor(private readonly o: EventRecorderOptions) {
    this.log = o.log ?? createLogger(undefined, { mod: 'events' });
    this.controller = o.controller ?? 'vipd.io/lease-elector';
  }

  record(ev: EventInput): void {
    if (this.pending.size >= (this.o.maxPending ?? 16)) {
      this.log.warn({ reason: ev.reason }, 'event dropped: too many event writes pending');
      return;
    }
    const p = this.write(ev).catch((err: unknown) => {
      this.log.warn({ reason: ev.reason, err: describeError(err) }, 'cannot write Kubernetes Event');
    });
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Waits for the writes in flight (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private async write(ev: EventInput): Promise<void> {
    const ref = this.o.regarding();
    const now = new Date();
    const name = `${ref.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
    const note = ev.note.length > 1000 ? `${ev.note.slice(0, 997)}...` : ev.note;
    const timeoutMs = this.o.timeoutMs ?? 5_000;
    const signal = AbortSignal.timeout(timeoutMs * 2);
    if (!this.coreFallback) {
      // eventTime is a MicroTime: exactly six fractional digits, or the API refuses the Event.
      const body: Omit<EventsV1Event, 'eventTime'> & { eventTime: string } = {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace: ref.namespace },
        eventTime: now.toISOString().replace(/Z$/, '000Z'),
        reportingController: this.controller,
        reportingInstance: this.o.instance.slice(0, 128),
        action: ev.action,
        reason: ev.reason,
        note,
        type: ev.type,
        regarding: { ...ref },
      };
      try {
        await this.o.client.request('events.create', 'POST', paths.events(ref.namespace), { body, signal, timeoutMs });
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
      message: note,
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
  }
}
