/**
 * The service-IP claim protocol (src/services/logic/membership.ts) in a seeded simulation, checked for
 * docs/design.md rule 1 at every 10 ms step: never two nodes answering for the same IP.
 *
 * Model: three nodes, one service IP, a linearizable Lease store (compare-and-swap on versions),
 * one watch per node that delivers commits in order but with its own, changing delay (sometimes
 * stalled for seconds), writes whose commit and answer each take 0 ms to seconds, clocks that run
 * up to 0.5 % fast or slow, nodes frozen (SIGSTOP: they keep "answering" until their own grant
 * deadline, the worst case allowed) and restarted with empty memory. The plan is ADVERSARIAL: each
 * node wants the IP or not at random, so safety must not depend on nodes agreeing on an owner.
 *
 * A node answers for the IP when its claim is confirmed and its local clock is before its member
 * grant's deadline (last successful write sent + renewDeadline), exactly the runner's verdict.
 *
 * The simulation has teeth: it finds two holders within 300 seeds when the confirmation skips the
 * conflict check, when a fence ignores the compare-and-swap, or when leaseDuration is far below
 * renewDeadline (1.2 s vs 2 s). A leaseDuration just under renewDeadline is not caught: the
 * window is then a few ms wide and needs several slow requests lined up.
 */
import { describe, expect, it } from 'vitest';
import { ClaimBook, MemberTable, type MemberRecord } from '../../../src/services/logic/membership.js';

const LD = 3000;
const RD = 2000;
const RP = 500;
const X = '198.18.0.130';
const STEP = 10;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Stored {
  holderIdentity: string;
  claims: string[];
  rv: number;
}

interface Commit {
  rv: number;
  node: string;
  rec: Stored;
  at: number;
}

interface Write {
  kind: 'own' | 'fence';
  by: string;
  target: string;
  baseRv: number | undefined;
  holderIdentity: string;
  claims: string[];
  sentLocal: number;
  commitAt: number;
  respondAt: number;
  result?: { ok: true; rv: number } | { ok: false };
}

interface SimNode {
  name: string;
  rate: number;
  offset: number;
  table: MemberTable;
  book: ClaimBook;
  grantUntil: number;
  lastRv: number | undefined;
  written: string | undefined;
  nextRenewAt: number;
  backoffUntil: number;
  inflight: Write | undefined;
  watchPos: number;
  watchDelay: number;
  /** Current API latency regime of this node: 0 normal, 1 slow, 2 very slow. */
  slow: number;
  frozenUntil: number;
  want: boolean;
  fencing: Map<string, number>;
}

export interface SimResult {
  violations: string[];
  heldSteps: number;
  /** Steps in which some running node wanted the IP. */
  wantedSteps: number;
  fences: number;
  confirmations: number;
}

export function simulate(seed: number, durationMs = 40_000, faults = true): SimResult {
  const rnd = mulberry32(seed);
  const pick = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const store = new Map<string, Stored>();
  const log: Commit[] = [];
  let rv = 100;
  const writes: Write[] = [];
  const names = ['a', 'b', 'c'];
  const res: SimResult = { violations: [], heldSteps: 0, wantedSteps: 0, fences: 0, confirmations: 0 };
  let T = 0;
  const local = (n: SimNode) => T * n.rate + n.offset;
  const fresh = (name: string, rate: number, offset: number): SimNode => ({
    name,
    rate,
    offset,
    table: new MemberTable(LD),
    book: new ClaimBook(),
    grantUntil: -Infinity,
    lastRv: store.get(name)?.rv,
    written: undefined,
    nextRenewAt: 0,
    backoffUntil: 0,
    inflight: undefined,
    watchPos: log.length,
    watchDelay: 0,
    slow: 0,
    frozenUntil: 0,
    want: false,
    fencing: new Map(),
  });
  const pendingRestarts: Array<{ i: number; at: number; node: SimNode }> = [];
  const nodes = names.map((n) => fresh(n, 1 + (rnd() - 0.5) * 0.01, pick(-100_000, 100_000)));
  const recOf = (node: string, s: Stored): MemberRecord => ({ node, holderIdentity: s.holderIdentity, claims: s.claims, resourceVersion: String(s.rv) });
  // A restarted node lists first: every current Lease, observed now.
  const relist = (n: SimNode) => {
    n.table.replaceAll([...store].map(([node, s]) => recOf(node, s)), local(n));
    n.watchPos = log.length;
  };
  for (const n of nodes) relist(n);
  const latency = (n: SimNode) => {
    if (n.slow === 2) return pick(1000, 4000);
    if (n.slow === 1) return pick(100, 2000);
    return rnd() < 0.95 ? pick(0, 100) : pick(100, 2500);
  };

  const send = (n: SimNode, w: Omit<Write, 'commitAt' | 'respondAt' | 'sentLocal'>) => {
    const commitAt = T + latency(n);
    const full: Write = { ...w, sentLocal: local(n), commitAt, respondAt: commitAt + latency(n) };
    writes.push(full);
    return full;
  };

  const holding = (n: SimNode) => n.book.state(X)?.kind === 'confirmed' && local(n) < n.grantUntil;

  const reconcile = (n: SimNode) => {
    const now = local(n);
    if (now >= n.grantUntil) n.grantUntil = -Infinity;
    const grant = now < n.grantUntil;
    n.book.setWanted(new Set(n.want ? [X] : []), (ip) => grant && n.table.claimant(ip, n.name, now) === undefined);
    // The holder lets go at once (standby is synchronous); the claim leaves with the next write.
    if (n.book.state(X)?.kind === 'releasing') n.book.released(X);
    const claims = n.book.published();
    const dirty = n.written === undefined || n.written !== claims.join(',');
    if (!n.inflight && now >= n.backoffUntil && (dirty || now >= n.nextRenewAt)) {
      n.inflight = send(n, { kind: 'own', by: n.name, target: n.name, baseRv: n.lastRv, holderIdentity: n.name, claims });
    }
    if (grant) {
      for (const o of n.table.expired(now)) {
        const node = o.record.node;
        const orv = Number(o.record.resourceVersion);
        if (node === n.name || n.fencing.get(node) === orv) continue;
        n.fencing.set(node, orv);
        send(n, { kind: 'fence', by: n.name, target: node, baseRv: orv, holderIdentity: '', claims: o.record.claims as string[] });
      }
    }
  };

  for (T = 0; T < durationMs; T += STEP) {
    // The store commits (compare-and-swap) in commit-time order.
    for (const w of writes.filter((x) => !x.result && x.commitAt <= T).sort((p, q) => p.commitAt - q.commitAt)) {
      const cur = store.get(w.target);
      if ((cur?.rv ?? undefined) === w.baseRv) {
        const s: Stored = { holderIdentity: w.holderIdentity, claims: w.claims, rv: ++rv };
        store.set(w.target, s);
        log.push({ rv: s.rv, node: w.target, rec: s, at: T });
        w.result = { ok: true, rv: s.rv };
        if (w.kind === 'fence') res.fences++;
      } else {
        w.result = { ok: false };
      }
    }
    for (const n of nodes) {
      if (T < n.frozenUntil) continue;
      // Answers to our own write.
      const w = n.inflight;
      if (w && ((w.result && w.respondAt <= T) || local(n) - w.sentLocal >= RD)) {
        n.inflight = undefined;
        const now = local(n);
        if (now - w.sentLocal >= RD || !w.result) {
          // The request timed out (op timeout = renewDeadline): an error, whatever the server did.
          n.backoffUntil = now + RP / 2;
        } else if (w.result.ok) {
          n.lastRv = w.result.rv;
          n.written = w.claims.join(',');
          n.nextRenewAt = w.sentLocal + RP;
          if (w.sentLocal + RD > now) n.grantUntil = Math.max(n.grantUntil, w.sentLocal + RD);
          n.book.written(w.claims, String(w.result.rv));
        } else {
          const cur = store.get(n.name);
          n.lastRv = cur?.rv;
          n.written = undefined;
          if (cur && cur.holderIdentity !== n.name) {
            n.grantUntil = -Infinity;
            n.book.reset();
          }
        }
      }
      // The watch: commits in order, each once it is older than this node's current delay.
      if (faults && rnd() < 0.01) n.watchDelay = rnd() < 0.6 ? pick(0, 100) : pick(100, 4000);
      if (faults && rnd() < 0.005) n.slow = rnd() < 0.6 ? 0 : rnd() < 0.6 ? 1 : 2;
      while (n.watchPos < log.length && log[n.watchPos]!.at + n.watchDelay <= T) {
        const c = log[n.watchPos++]!;
        const now = local(n);
        n.table.apply(recOf(c.node, c.rec), now);
        if (c.node === n.name && c.rec.holderIdentity === n.name) {
          res.confirmations += n.book.observedOwn(String(c.rv), (ip) => n.table.claimant(ip, n.name, now) !== undefined).confirmed.length;
        }
      }
      if (rnd() < 0.003) n.want = !n.want;
      reconcile(n);
    }
    // Faults: freeze (SIGSTOP) or kill and restart with empty memory.
    if (faults && rnd() < 0.002) {
      const i = pick(0, 2);
      const n = nodes[i]!;
      if (T >= n.frozenUntil) {
        if (rnd() < 0.5) n.frozenUntil = T + pick(500, 8000);
        else {
          const r = fresh(n.name, n.rate, n.offset);
          r.frozenUntil = T + pick(0, 5000);
          // Until restart the killed process is frozen with its old state (worst case: a grant still running).
          const dead = n;
          dead.frozenUntil = r.frozenUntil;
          nodes[i] = dead;
          const restartAt = r.frozenUntil;
          pendingRestarts.push({ i, at: restartAt, node: r });
        }
      }
    }
    for (const p of pendingRestarts.splice(0)) {
      if (p.at <= T) {
        relist(p.node);
        p.node.frozenUntil = 0;
        nodes[p.i] = p.node;
      } else pendingRestarts.push(p);
    }
    const holders = nodes.filter(holding).map((n) => n.name);
    if (holders.length > 0) res.heldSteps++;
    if (nodes.some((n) => n.want && T >= n.frozenUntil)) res.wantedSteps++;
    if (holders.length > 1) res.violations.push(`t=${T}: ${holders.join('+')} both answer for ${X}`);
  }
  return res;
}

describe('service-IP claims in simulation (never two holders)', () => {
  it('holds for 400 seeded runs of 40 s with lagging watches, slow writes, freezes and restarts', () => {
    let held = 0;
    let fences = 0;
    let confirmations = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const r = simulate(seed);
      expect(r.violations.slice(0, 3), `seed ${seed}`).toEqual([]);
      held += r.heldSteps;
      fences += r.fences;
      confirmations += r.confirmations;
    }
    // Not vacuous: the IP was held often (the fault model is harsh: a 5 % tail of slow requests
    // alone costs grants), claims got confirmed, members got fenced.
    expect(held).toBeGreaterThan(400 * 400);
    expect(confirmations).toBeGreaterThan(1000);
    expect(fences).toBeGreaterThan(50);
  });
});
