/**
 * Rendezvous (highest-random-weight) hashing: which node announces a service IP.
 *
 * Every node computes the same answer from the same inputs (the IP and the candidate names), with
 * no coordination. Removing a candidate moves only the IPs it owned; adding one moves only the
 * IPs it now wins. Candidates are the live, healthy members (for externalTrafficPolicy Local:
 * those with a ready local endpoint); choosing them is the caller's job.
 *
 * The weight function is part of the wire contract: nodes running different weight functions
 * disagree on owners, so it must never change without a versioned migration.
 */

/** cyrb53: a well-mixed 53-bit string hash (exact in a double), so weights compare as numbers. */
function cyrb53(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Weight of `node` for `key` (a canonical IP). NUL separates the two so no pair collides by concatenation. */
export function weight(node: string, key: string): number {
  return cyrb53(`${node}\u0000${key}`);
}

/** Candidates best first: highest weight, ties by name. Duplicates collapse. */
export function rank(key: string, candidates: Iterable<string>): string[] {
  const scored = [...new Set(candidates)].map((n) => ({ n, w: weight(n, key) }));
  scored.sort((a, b) => b.w - a.w || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  return scored.map((s) => s.n);
}

/** The node that announces `key`, or undefined when there is no candidate. */
export function owner(key: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestW = -1;
  for (const n of candidates) {
    const w = weight(n, key);
    if (w > bestW || (w === bestW && best !== undefined && n < best)) {
      best = n;
      bestW = w;
    }
  }
  return best;
}
