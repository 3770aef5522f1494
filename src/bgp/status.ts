/**
 * What FRR's JSON says about the sessions, reduced to what vipd reports: pure, so the parsing is
 * tested on recorded output and the driver only fetches.
 */

export interface PeerStatus {
  address: string;
  /** FRR's state name: Established, Active, Connect, Idle, ... */
  state: string;
  established: boolean;
  /** Messages queued to the peer (0 once an UPDATE or withdraw has been handed to TCP). */
  outq: number;
  /** BFD state when BFD runs on the session: up, down, init, or undefined without BFD. */
  bfd?: string;
}

interface SummaryPeer {
  state?: string;
  outq?: number;
}

/** `show bgp summary json`: one object per address family with a `peers` map. */
export function parseSummary(json: unknown): Map<string, PeerStatus> {
  const out = new Map<string, PeerStatus>();
  if (typeof json !== 'object' || json === null) return out;
  for (const af of Object.values(json as Record<string, unknown>)) {
    const peers = (af as { peers?: Record<string, SummaryPeer> } | null)?.peers;
    if (!peers || typeof peers !== 'object') continue;
    for (const [address, p] of Object.entries(peers)) {
      const state = p.state ?? 'Unknown';
      const prev = out.get(address);
      out.set(address, { address, state, established: state === 'Established', outq: (p.outq ?? 0) + (prev?.outq ?? 0) });
    }
  }
  return out;
}

/** `show bfd peers json`: an array of sessions with `peer` and `status`. */
export function parseBfdPeers(json: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!Array.isArray(json)) return out;
  for (const s of json as Array<{ peer?: string; status?: string }>) if (s.peer && s.status) out.set(s.peer, s.status);
  return out;
}

/** `show bgp ipv4|ipv6 unicast <prefix> json`: does bgpd still have a path for it? */
export function hasPaths(json: unknown): boolean {
  const paths = (json as { paths?: unknown[] } | null)?.paths;
  return Array.isArray(paths) && paths.length > 0;
}

export function describePeers(peers: Iterable<PeerStatus>): string {
  return [...peers].map((p) => `${p.address} ${p.state}${p.bfd ? ` (BFD ${p.bfd})` : ''}`).join(', ') || 'no peers';
}
