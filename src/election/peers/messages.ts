/**
 * Peer messages as the core sees them (after authentication). The codec adds the per-sender
 * counter, the wall-clock stamp and the MAC; the core never sees a message that failed a check.
 *
 * A "round" is the requester's monotonic time when it sent the request. Responses echo it with the
 * requester's boot epoch, so a requester only counts answers to requests it sent in this life.
 */

/** 16 lowercase hex digits: 8 random bytes drawn at process start. */
export type Epoch = string;

export type RejectReason =
  | 'none'
  | 'stale-term' // the request's term is below ours
  | 'promised' // we promised another node and the promise is still running
  | 'voted' // we voted for another candidate in this term
  | 'sticky' // we heard a live leader within the election timeout
  | 'lease' // the Lease names another node that is active on the peer network
  | 'quiet' // boot quiet period, shutting down, or releasing
  | 'released'; // the request is older than a release we got from its sender

export const REJECT_REASONS: readonly RejectReason[] = ['none', 'stale-term', 'promised', 'voted', 'sticky', 'lease', 'quiet', 'released'];

export type Body =
  /**
   * "Would you vote for me at `term`?" (term = candidate's term + 1; binds nobody).
   * `bootstrap`: a lone bootstrap node announcing its claim; whoever hears it answers (which ends
   * the bootstrap) or, in its boot quiet period, treats the sender as a leader.
   */
  | { type: 'prevote'; bootstrap: boolean }
  | { type: 'prevote-resp'; granted: boolean; reason: RejectReason }
  /** "Vote for me in `term` and promise me E from now." */
  | { type: 'vote'; round: number }
  | { type: 'vote-resp'; granted: boolean; reason: RejectReason; reqEpoch: Epoch; round: number }
  /** The leader's renewal: "keep promising me". `bootstrap`: it holds by the bootstrap rule (no majority yet). */
  | { type: 'heartbeat'; round: number; bootstrap: boolean }
  /**
   * `eligible`: the responder may hold the VIP itself (its health gate is open), so a leader transfer may
   * pick it; `apiHealthy`: its own API server answers too (eligible because no API server answers is
   * not enough for a leader that leaves because of its health). apiHealthy implies eligible.
   */
  | { type: 'heartbeat-resp'; granted: boolean; reason: RejectReason; reqEpoch: Epoch; round: number; eligible: boolean; apiHealthy: boolean }
  /**
   * "I no longer use promises made to me for rounds <= round (this epoch); I stopped holding at least L ago."
   * `transferTo`: the eligible follower the leader hands over to (Raft's leader transfer): it
   * campaigns at once, the others wait a round first. null: nobody chosen, everyone campaigns.
   */
  | { type: 'release'; round: number; transferTo: string | null };

export type BodyType = Body['type'];

export interface PeerMessage {
  from: string;
  to: string;
  /** Sender's boot epoch. */
  epoch: Epoch;
  term: number;
  body: Body;
}

export function isRequest(b: Body): boolean {
  return b.type === 'prevote' || b.type === 'vote' || b.type === 'heartbeat';
}
