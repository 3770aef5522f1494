import { untilAborted } from '../util/signals.js';
import type { Elector, Verdict } from './types.js';

/**
 * vip_leaderelection=false: this node holds the VIP unconditionally until the agent stops.
 * The operator has promised there is no other holder; nothing here can check that, but the
 * holder's cold-start probe reports a foreign owner.
 */
export class StandaloneElector implements Elector {
  private readonly listeners = new Set<(v: Verdict) => void>();

  onVerdict(listener: (v: Verdict) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async run(signal: AbortSignal): Promise<void> {
    for (const l of this.listeners) l({ kind: 'hold', until: Number.POSITIVE_INFINITY, reason: 'standalone (vip_leaderelection=false)' });
    await untilAborted(signal);
    for (const l of this.listeners) l({ kind: 'standby', reason: 'shutdown' });
  }
}
