/**
 * Hybrid election for the agent (vip_peers set): peer voting grants the VIP; the Lease follows the
 * peer leader and steers elections while the API is up (steering.ts, docs/election.md). Only the peer
 * elector's verdicts reach the holders, so there is one granting mechanism and DESIGN rule 2 holds
 * by construction.
 *
 * The Lease is best effort here: when no API server answers (first kubeadm init, an outage) the
 * peers carry on alone; when the kubeconfig cannot even be loaded, the Lease part is left out and
 * logged, never fatal.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, peerConfigOf, type Config } from '../config/index.js';
import { EligibilityGate } from '../health/eligibility.js';
import type { HealthGate } from '../health/livez.js';
import type { Logger } from '../observe/log.js';
import { NO_LEASE, type LeaseObservation } from './steering.js';
import { setupLeaseElection, type LeaseSetup } from './lease/setup.js';
import { PeerElector, type PeerAddress } from './peers/driver.js';
import { parsePeerKey } from './peers/key.js';
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

export async function loadPeerKey(path: string | undefined): Promise<Buffer> {
  const contents = path === undefined ? undefined : await readFile(path).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError('vip_peer_key_file', path, `cannot be read (${err.code ?? err.message})`);
  });
  const parsed = parsePeerKey(contents);
  if (!parsed.ok) throw new ConfigError('vip_peer_key_file', path, parsed.error.message.replace(/^vip_peer_key_file:?\s*/, ''));
  return parsed.key;
}

export async function setupHybridElection(config: Config, log: Logger, buildLease: (followGate: HealthGate) => Promise<LeaseSetup>): Promise<Elector & { peer: PeerElector }> {
  // loadConfig has checked these settings with the same rules.
  const cfg = peerConfigOf(config);
  const key = await loadPeerKey(config.peerKeyFile);
  const addresses: Record<string, PeerAddress> = Object.fromEntries(config.peers.map((p) => [p.name, { host: p.host, port: p.port }]));

  const follow = new SwitchGate();
  let lease: LeaseSetup | undefined;
  try {
    lease = await buildLease(follow);
  } catch (err) {
    log.warn({ err }, 'Lease unavailable; peer voting alone decides (it always grants; the Lease only steers)');
  }
  const eligibility = lease?.probe
    ? new EligibilityGate({ local: lease.probe, client: lease.client, intervalMs: config.healthIntervalMs, timeoutMs: Math.min(1000, config.healthIntervalMs), log: log.child({ mod: 'eligibility' }) })
    : undefined;
  const peer = new PeerElector({ cfg, addresses, key, log: log.child({ mod: 'peers' }), ...(eligibility ? { gate: eligibility } : {}) });
  peer.onLeaseWanted((wanted) => follow.set(wanted, wanted ? 'peer leader' : 'not the peer leader'));

  const leaseDurationMs = config.leaseDuration * 1000;
  const observe = (): LeaseObservation => {
    const st = lease?.elector.status();
    if (!st) return NO_LEASE;
    if (st.role === 'holding' && st.until !== undefined) return { holder: config.nodeName, liveUntil: st.until };
    if (st.leader && st.observedAt !== undefined) return { holder: st.leader, liveUntil: st.observedAt + leaseDurationMs };
    return NO_LEASE;
  };

  return {
    peer,
    onVerdict: (listener) => peer.onVerdict(listener),
    async run(signal: AbortSignal): Promise<void> {
      let last = '';
      const push = () => {
        const o = observe();
        const sig = `${o.holder}@${Math.round(o.liveUntil)}`;
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
