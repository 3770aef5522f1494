/**
 * Wires the Lease elector for the agent: API client (local endpoint first, learned endpoints,
 * credential files), Lease store, Events, the /livez health gate (control-plane mode), and the
 * elector, with request timeouts derived from the lease timing so an endpoint failover fits
 * inside one renew deadline.
 *
 * run(signal) runs them all and returns after the elector has stepped down and released the
 * Lease (run's own guarantee), the Events in flight are written (bounded) and the client closed.
 */
import type { Logger } from '../../observe/log.js';
import { createLogger } from '../../observe/log.js';
import { LivezProbe, LIVEZ_DEFAULTS, type HealthGate } from '../../health/livez.js';
import { ApiClient, DEFAULT_LOCAL_ENDPOINT, type ApiClientOptions } from '../../k8s/client.js';
import { EventRecorder } from '../../k8s/events.js';
import { LeaseElector, type LeaseElectorOptions } from './elector.js';
import { validateLeaseTiming, type LeaseTiming, type LeaseTimingInput, type TimingNames } from './state.js';
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

/** The API client's own settings, passed through (localEndpoint defaults to https://127.0.0.1:6443). */
type ClientSettings = Pick<
  ApiClientOptions,
  'kubeconfigPath' | 'fallbackKubeconfigPath' | 'localEndpoint' | 'tlsServerName' | 'extraEndpoints' | 'endpointsCachePath' | 'discoverEndpoints' | 'excludeAddresses'
>;

export interface LeaseSetupOptions extends ClientSettings {
  identity: string;
  namespace: string;
  name: string;
  timing?: LeaseTimingInput;
  timingNames?: TimingNames;
  /** Control-plane mode: gate on the local /livez (default on). `false` for modes without a local API server. */
  livez?: LivezGateOptions | false;
  requestTimeoutMs?: number;
  log?: Logger;
  /**
   * Hybrid mode: the Lease is taken and kept only while this gate is open too (the peer holder
   * follows with the Lease; docs/election.md). Combined with the livez gate.
   */
  followGate?: HealthGate;
  /** Extra elector options (tests: clock, watchdog…). */
  elector?: Partial<Omit<LeaseElectorOptions, 'store' | 'identity' | 'gate' | 'events'>>;
}

export interface LeaseSetup {
  elector: LeaseElector;
  client: ApiClient;
  events: EventRecorder;
  probe: LivezProbe | undefined;
  gate: HealthGate | undefined;
  run(signal: AbortSignal): Promise<void>;
}

export async function setupLeaseElection(o: LeaseSetupOptions): Promise<LeaseSetup> {
  const log = o.log ?? createLogger();
  // Validate first: a bad timing must fail before anything connects.
  const timing = validateLeaseTiming(o.timing ?? {}, o.timingNames);
  const requestTimeoutMs = o.requestTimeoutMs ?? suggestedRequestTimeoutMs(timing);
  const client = await ApiClient.create({
    kubeconfigPath: o.kubeconfigPath,
    ...(o.fallbackKubeconfigPath ? { fallbackKubeconfigPath: o.fallbackKubeconfigPath } : {}),
    localEndpoint: o.localEndpoint ?? DEFAULT_LOCAL_ENDPOINT,
    ...(o.tlsServerName ? { tlsServerName: o.tlsServerName } : {}),
    ...(o.extraEndpoints ? { extraEndpoints: o.extraEndpoints } : {}),
    ...(o.endpointsCachePath ? { endpointsCachePath: o.endpointsCachePath } : {}),
    ...(o.discoverEndpoints === undefined ? {} : { discoverEndpoints: o.discoverEndpoints }),
    ...(o.excludeAddresses ? { excludeAddresses: o.excludeAddresses } : {}),
    requestTimeoutMs,
    log: log.child({ mod: 'k8s' }),
  });
  const store = new ApiLeaseStore({ client, namespace: o.namespace, name: o.name, requestTimeoutMs });
  const events = new EventRecorder({
    client,
    instance: o.identity,
    regarding: () => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: o.namespace, name: o.name }),
    log: log.child({ mod: 'events' }),
  });
  let probe: LivezProbe | undefined;
  if (o.livez !== false) {
    const l = o.livez ?? {};
    const local = client.localEndpoint();
    probe = new LivezProbe({
      url: l.url ?? `${local}/livez`,
      intervalMs: l.intervalMs ?? LIVEZ_DEFAULTS.intervalMs,
      timeoutMs: l.timeoutMs ?? LIVEZ_DEFAULTS.timeoutMs,
      failureThreshold: l.failureThreshold ?? LIVEZ_DEFAULTS.failureThreshold,
      successThreshold: l.successThreshold ?? LIVEZ_DEFAULTS.successThreshold,
      requestOptions: () => client.httpsOptions(local),
      log: log.child({ mod: 'livez' }),
    });
  }
  const elector = new LeaseElector({
    ...o.elector,
    ...timing,
    ...(o.timingNames ? { timingNames: o.timingNames } : {}),
    store,
    identity: o.identity,
    events,
    ...(probe || o.followGate ? { gate: allGates([probe, o.followGate]) } : {}),
    log: log.child({ mod: 'lease' }),
  });
  return {
    elector,
    client,
    events,
    probe,
    gate: probe,
    async run(signal: AbortSignal): Promise<void> {
      const background = [client.run(signal), probe?.run(signal)];
      try {
        await elector.run(signal);
      } finally {
        await Promise.allSettled(background);
        await Promise.race([events.flush(), new Promise((r) => setTimeout(r, 1_000).unref())]);
        client.close();
      }
    },
  };
}
