/**
 * Hybrid election for the agent (vip_peers set): peer voting grants the VIP; the Lease follows the
 * peer leader and steers elections while the API is up (steering.ts, docs/election.md). Only the peer
 * elector's verdicts reach the holders, so there is one granting mechanism and rule 2 of docs/design.md holds
 * by construction.
 *
 * The Lease is best effort here: when no API server answers (first kubeadm init, an outage) the
 * peers carry on alone; when the agent has no API client (the kubeconfig cannot even be loaded),
 * the Lease part is left out and logged, never fatal. Settings arrive checked; nothing here reads
 * Config.
 */
import { EligibilityGate } from '../health/eligibility.js';
import type { HealthGate } from '../health/livez.js';
import type { Logger } from '../observe/log.js';
import { NO_LEASE, type LeaseObservation } from './steering.js';
import type { ApiClient } from '../k8s/client.js';
import type { LeaseElection } from './lease/setup.js';
import { PeerElector, type PeerAddress } from './peers/driver.js';
import type { PeerConfig } from './peers/timing.js';
import type { Elector } from './types.js';

/** A gate someone else opens and closes. */
class SwitchGate implements HealthGate {
  private open = false;
  private readonly listeners = new Set<(healthy: boolean, reason: string) => void>();
  healthy(): boolean {
    return this.open;
  }
  set(open: boolean, reason: string): void {
    if (open === this.open) return;
    this.open = open;
    for (const l of this.listeners) l(open, reason);
  }
  onChange(listener: (healthy: boolean, reason: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface HybridOptions {
  /** The peer core's checked configuration (src/config/index.ts). */
  cfg: PeerConfig;
  addresses: Record<string, PeerAddress>;
  key: Buffer;
  /** The Lease half, built around the given follow gate; absent when there is no API client. */
  buildLease?: (followGate: HealthGate) => LeaseElection;
  /** For the eligibility probes of the other API servers (with the Lease half's livez probe). */
  client?: ApiClient;
  eligibility: { intervalMs: number; timeoutMs: number };
  leaseDurationMs: number;
  log: Logger;
}

export function buildHybridElection(o: HybridOptions): Elector & { peer: PeerElector; lease: LeaseElection | undefined } {
  const { cfg, log } = o;
  const follow = new SwitchGate();
  const lease = o.buildLease?.(follow);
  if (!lease) log.warn('Lease unavailable; peer voting alone decides (it always grants; the Lease only steers)');
  const eligibility =
    lease?.probe && o.client ? new EligibilityGate({ local: lease.probe, client: o.client, ...o.eligibility, log: log.child({ mod: 'eligibility' }) }) : undefined;
  const peer = new PeerElector({ cfg, addresses: o.addresses, key: o.key, log: log.child({ mod: 'peers' }), ...(eligibility ? { gate: eligibility, apiGate: lease!.probe! } : {}) });
  peer.onLeaseWanted((wanted) => follow.set(wanted, wanted ? 'peer leader' : 'not the peer leader'));

  const observe = (): LeaseObservation => {
    const st = lease?.elector.status();
    if (!st) return NO_LEASE;
    if (st.role === 'holding' && st.until !== undefined) return { holderIdentity: cfg.self, liveUntil: st.until };
    if (st.leader && st.observedAt !== undefined) return { holderIdentity: st.leader, liveUntil: st.observedAt + o.leaseDurationMs };
    return NO_LEASE;
  };

  return {
    peer,
    lease,
    onVerdict: (listener) => peer.onVerdict(listener),
    async run(signal: AbortSignal): Promise<void> {
      let last = '';
      const push = () => {
        const o = observe();
        const sig = `${o.holderIdentity}@${Math.round(o.liveUntil)}`;
        if (sig !== last) {
          last = sig;
          peer.observeLease(o);
        }
      };
      const offLease = lease?.elector.onVerdict(() => push());
      const timer = setInterval(push, 250);
      try {
        await Promise.all([peer.run(signal), lease?.run(signal), eligibility?.run(signal)]);
      } finally {
        clearInterval(timer);
        offLease?.();
      }
    },
  };
}
