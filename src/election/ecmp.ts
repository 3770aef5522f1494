/**
 * BGP mode's elector for the control-plane VIP: no election. Every node whose own API server is
 * healthy holds (and so announces) the VIP, and the router spreads connections over all of them
 * (ECMP). Two holders are the point here, not a fault: each one serves the API itself.
 *
 * Verdicts: hold until the agent stops while the gate is open (the cold-start probe is skipped:
 * other announcers are expected), standby as soon as it closes (within the health gate's
 * failure threshold x interval) and on shutdown.
 */
import type { HealthGate } from '../health/livez.js';
import { untilAborted } from '../util/signals.js';
import type { Elector, Verdict } from './types.js';

export class EcmpElector implements Elector {
  private readonly listeners = new Set<(v: Verdict) => void>();

  constructor(
    private readonly gate: HealthGate,
    /** Why the node holds when the gate is open at start (cp_enable=false: there is no gate). */
    private readonly openReason: string,
    /** Runs the gate's probe loop (a LivezProbe's run), when there is one. */
    private readonly runGate?: (signal: AbortSignal) => Promise<void>,
  ) {}

  onVerdict(listener: (v: Verdict) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(v: Verdict): void {
    for (const l of this.listeners) l(v);
  }

  private verdict(healthy: boolean, reason: string): Verdict {
    return healthy ? { kind: 'hold', until: Number.POSITIVE_INFINITY, reason: `announce (ECMP): ${reason}`, previousHolder: 'ecmp' } : { kind: 'standby', reason: `withdraw: ${reason}` };
  }

  async run(signal: AbortSignal): Promise<void> {
    const off = this.gate.onChange((healthy, reason) => {
      if (!signal.aborted) this.emit(this.verdict(healthy, reason));
    });
    if (this.gate.healthy()) this.emit(this.verdict(true, this.openReason));
    try {
      await Promise.all([this.runGate?.(signal), untilAborted(signal)]);
    } finally {
      off();
      this.emit({ kind: 'standby', reason: 'shutdown' });
    }
  }
}
