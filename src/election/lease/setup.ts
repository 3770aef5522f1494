/**
 * Wires the Lease elector over the agent's one API client: Lease store, Events, the /livez health
 * gate (control-plane mode) and the elector, with request timeouts derived from the Lease timing
 * so an endpoint failover fits inside one renew deadline.
 *
 * run(signal) returns after the elector has stepped down and released the Lease (run's own
 * guarantee) and the Events in flight are written (bounded). The client is the caller's.
 */
import type { Logger } from '../../observe/log.js';
import { LivezProbe, LIVEZ_DEFAULTS, type HealthGate } from '../../health/livez.js';
import type { ApiClient } from '../../k8s/client.js';
import { sleep } from '../../util/signals.js';
import { EventRecorder } from '../../k8s/events.js';
import { LeaseElector, type LeaseElectorOptions } from './elector.js';
import type { LeaseTiming, TimingNames } from './state.js';
import { ApiLeaseStore } from './store.js';

/**
 * Per-endpoint attempt timeout: a quarter of the renew deadline (so three endpoints can fail in
 * turn and a fourth still renews in time), at least the retry period, at most 5 s.
 */
export function suggestedRequestTimeoutMs(t: Pick<LeaseTiming, 'renewDeadlineMs' | 'retryPeriodMs'>): number {
  return Math.min(5_000, Math.max(t.retryPeriodMs, Math.floor(t.renewDeadlineMs / 4)));
}

/** Open while every given gate is open. */
export function allGates(gates: ReadonlyArray<HealthGate | undefined>): HealthGate {
  const list = gates.filter((g): g is HealthGate => g !== undefined);
  if (list.length === 1) return list[0]!;
  const healthy = () => list.every((g) => g.healthy());
  return {
    healthy,
    onChange(listener) {
      let last = healthy();
      const offs = list.map((g) =>
        g.onChange((_h, reason) => {
          const now = healthy();
          if (now !== last) {
            last = now;
            listener(now, reason);
          }
        }),
      );
      return () => offs.forEach((off) => off());
    },
  };
}

export interface LivezGateOptions {
  /** Default: `<localEndpoint>/livez`. */
  url?: string;
  intervalMs?: number;
  timeoutMs?: number;
  failureThreshold?: number;
  successThreshold?: number;
}

export interface LeaseElectionOptions {
  /** The agent's one API client (built and run by the composition root). */
  client: ApiClient;
  identity: string;
  namespace: string;
  name: string;
  /** Checked by the config module (src/config/index.ts). */
  timing: LeaseTiming;
  timingNames?: TimingNames;
  /** Control-plane mode: gate on the local /livez. `false` for modes without a local API server. */
  livez: LivezGateOptions | false;
  requestTimeoutMs?: number;
  log: Logger;
  /**
   * Hybrid mode: the Lease is taken and kept only while this gate is open too (the peer leader
   * follows with the Lease; docs/election.md). Combined with the livez gate.
   */
  followGate?: HealthGate;
  /** Extra elector options (tests: clock, watchdog…). */
  elector?: Partial<Omit<LeaseElectorOptions, 'store' | 'identity' | 'gate' | 'events'>>;
}

export interface LeaseElection {
  elector: LeaseElector;
  events: EventRecorder;
  probe: LivezProbe | undefined;
  /** Runs the probe and the elector; returns after the elector has released and the Events in flight are written (bounded). */
  run(signal: AbortSignal): Promise<void>;
}

/** The local API server's /livez probe, over the agent's client (its CA and credentials). */
export function livezProbeFor(client: ApiClient, l: LivezGateOptions, log: Logger): LivezProbe {
  const local = client.localEndpoint();
  return new LivezProbe({
    url: l.url ?? `${local}/livez`,
    intervalMs: l.intervalMs ?? LIVEZ_DEFAULTS.intervalMs,
    timeoutMs: l.timeoutMs ?? LIVEZ_DEFAULTS.timeoutMs,
    failureThreshold: l.failureThreshold ?? LIVEZ_DEFAULTS.failureThreshold,
    successThreshold: l.successThreshold ?? LIVEZ_DEFAULTS.successThreshold,
    requestOptions: () => client.httpsOptions(local, { keepAlive: true }),
    log: log.child({ mod: 'livez' }),
  });
}

export function buildLeaseElection(o: LeaseElectionOptions): LeaseElection {
  const { client, log } = o;
  const requestTimeoutMs = o.requestTimeoutMs ?? suggestedRequestTimeoutMs(o.timing);
  const store = new ApiLeaseStore({ client, namespace: o.namespace, name: o.name, requestTimeoutMs });
  const events = new EventRecorder({
    client,
    instance: o.identity,
    regarding: () => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: o.namespace, name: o.name }),
    log: log.child({ mod: 'events' }),
  });
  const probe = o.livez === false ? undefined : livezProbeFor(client, o.livez, log);
  const elector = new LeaseElector({
    ...o.elector,
    ...o.timing,
    ...(o.timingNames ? { timingNames: o.timingNames } : {}),
    store,
    identity: o.identity,
    events,
    ...(probe || o.followGate ? { gate: allGates([probe, o.followGate]) } : {}),
    log: log.child({ mod: 'lease' }),
  });
  return {
    elector,
    events,
    probe,
    async run(signal: AbortSignal): Promise<void> {
      const probing = probe?.run(signal);
      try {
        await elector.run(signal);
      } finally {
        await probing;
        await Promise.race([events.flush(), sleep(1_000, undefined, { unref: true })]);
      }
    },
  };
}
