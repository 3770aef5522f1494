/**
 * What every elector (Lease, peers, hybrid) tells a holder: may this node hold the VIP, and until when.
 * `until` is a deadline on the agent's monotonic clock (src/util/clock.ts). A holder must have stopped
 * answering for the VIP by `until` even if no further verdict ever arrives.
 */
export type Verdict =
  /**
   * `previousHolder`: the node the elector knows held the VIP before (a failover). Absent on a cold
   * start, when the holder may first probe the wire for a foreign owner; a failover never waits.
   */
  | { kind: 'hold'; until: number; reason: string; previousHolder?: string }
  | { kind: 'standby'; leader?: string; reason: string };

export interface Elector {
  /** Runs until the signal aborts; a released elector gives up any grant it holds (e.g. clears the Lease). */
  run(signal: AbortSignal): Promise<void>;
  /** Called on every change of verdict and on every extension of a grant's deadline. */
  onVerdict(listener: (verdict: Verdict) => void): () => void;
}
