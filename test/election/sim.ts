/**
 * Discrete-event simulation of peer electors (pure cores) on per-node clocks, a lossy network,
 * a Lease record, crashes, restarts and SIGSTOP/SIGCONT.
 *
 * True time `t` is the simulator's; node i's monotonic clock reads offset_i + rate_i·t. A process
 * restart keeps the clock (CLOCK_MONOTONIC is per machine). A paused node takes no steps; what
 * arrives for it waits in its socket buffer and is processed on SIGCONT with a jumped clock.
 *
 * Checked after every event (throws SimViolation):
 * - OVERLAP: hold intervals [grant, min(deadline, standby) + L] of two nodes never overlap in true
 *   time. A crashed or frozen holder's interval runs to its deadline + L (the conservative case,
 *   as if the kernel kept answering).
 * - COVERAGE: at every instant a node holds, a majority of configured peers (one in an active
 *   bootstrap) have a promise to it covering that instant (the promise ledger, kept in true time
 *   across restarts, because a promise outlives the process that made it).
 * - ONE PROMISE: no node's ledger has live promises to two nodes at once; a promise ends early only
 *   on a release from its leader or a candidate dropping its own releasable vote.
 */
import { createHmac } from 'node:crypto';
import { initPeer, isHolding, nextWakeup, step, type Effect, type Input, type PeerState } from '../../src/election/peers/core.js';
import type { PeerMessage } from '../../src/election/peers/messages.js';
import type { PeerTiming } from '../../src/election/peers/timing.js';
import { PeerCodec, ReplayGuard, type DropReason } from '../../src/election/peers/codec.js';

export class SimViolation extends Error {
  override readonly name = 'SimViolation';
}

export interface SimNodeSpec {
  name: string;
  /** Clock rate against true time, within [1−ρ, 1+ρ]. */
  rate?: number;
  offset?: number;
  bootstrap?: boolean;
}

export interface SimConfig {
  nodes: SimNodeSpec[];
  timing: PeerTiming;
  seed: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Nodes acquire a free/expired Lease while the core says lease-wanted (default true). */
  autoLease?: boolean;
  /** Run every message through the wire codec and replay guard (slower). */
  codec?: boolean;
  /** Per-node key override (a node configured with the wrong key). */
  keys?: Record<string, Buffer>;
  /** Record core events in `log` (scenarios). */
  log?: boolean;
  /** Also every message sent (debugging). */
  logMessages?: boolean;
  /** Also every extension of a grant (one per heartbeat round). */
  logExtensions?: boolean;
}

export interface NetSettings {
  drop: number;
  dup: number;
  minDelay: number;
  maxDelay: number;
}

interface Interval {
  node: string;
  start: number;
  untilTrue: number;
  standbyAt: number;
}

interface LedgerEntry {
  to: string;
  start: number;
  end: number;
}

interface SimNode {
  name: string;
  rate: number;
  offset: number;
  bootstrap: boolean;
  status: 'down' | 'running' | 'paused';
  state: PeerState | null;
  wakeGen: number;
  inbox: PeerMessage[];
  open: Interval | null;
  ledger: LedgerEntry[];
  incarnation: number;
  api: boolean;
  leaseObservedAt: number;
  leaseSeenVersion: number;
  eligible: boolean;
  /** Its own API server answers (false with eligible true: it saw no API server answer at all). */
  apiHealthy: boolean;
  codec: PeerCodec | null;
  guard: ReplayGuard | null;
  everStarted: boolean;
}

type Ev =
  | { kind: 'deliver'; at: number; seq: number; to: string; msg: PeerMessage; wire: Buffer | null }
  | { kind: 'wake'; at: number; seq: number; node: string; gen: number }
  | { kind: 'poll'; at: number; seq: number; node: string };

/** A min-heap of timed events: earliest `at` first, then insertion order (`seq`). */
export class Heap<T extends { at: number; seq: number }> {
  private a: T[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): T | undefined {
    return this.a[0];
  }
  push(e: T): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[i]!, a[p]!)) {
        [a[i], a[p]] = [a[p]!, a[i]!];
        i = p;
      } else break;
    }
  }
  pop(): T | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(x: { at: number; seq: number }, y: { at: number; seq: number }): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

export function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One line per message, without the round times (they are clock readings, not news). */
export function describeMessage(m: PeerMessage): string {
  const b = m.body;
  const flag = 'bootstrap' in b && b.bootstrap ? ' (bootstrap)' : '';
  const ans = 'granted' in b ? (b.granted ? ' granted' : ` rejected (${b.reason})`) : '';
  return `${b.type} term=${m.term}${ans}${flag}`;
}

const SIM_KEY = createHmac('sha256', 'vipd-sim').update('key').digest();

export class Sim {
  t = 0;
  readonly log: string[] = [];
  readonly intervals: Interval[] = [];
  readonly nodes = new Map<string, SimNode>();
  readonly names: string[];
  readonly drops = new Map<DropReason, number>();
  /** Log every message sent (scenarios: `log messages`). */
  logMessages: boolean;
  /** Counts for tuning. */
  steps = 0;
  messages = 0;
  private q = new Heap<Ev>();
  private seq = 0;
  private rnd: () => number;
  private net: NetSettings = { drop: 0, dup: 0, minDelay: 1, maxDelay: 1 };
  private blocked = new Set<string>();
  private lease: { holder: string | null; version: number; renewedAt: number } = { holder: null, version: 0, renewedAt: Number.NEGATIVE_INFINITY };
  private readonly LD: number;
  private readonly RD: number;
  private readonly RP: number;
  private readonly quorum: number;
  private readonly L: number;

  constructor(readonly cfg: SimConfig) {
    this.rnd = mulberry(cfg.seed);
    this.logMessages = cfg.logMessages ?? false;
    this.names = cfg.nodes.map((n) => n.name);
    this.quorum = Math.floor(this.names.length / 2) + 1;
    this.L = cfg.timing.lingerMs;
    this.LD = cfg.leaseDurationMs ?? 3_000;
    this.RD = cfg.renewDeadlineMs ?? 2_000;
    this.RP = cfg.retryPeriodMs ?? 400;
    for (const n of cfg.nodes) {
      this.nodes.set(n.name, {
        name: n.name,
        rate: n.rate ?? 1,
        offset: n.offset ?? 1_000_000 + Math.floor(this.rnd() * 1_000_000),
        bootstrap: n.bootstrap ?? false,
        status: 'down',
        state: null,
        wakeGen: 0,
        inbox: [],
        open: null,
        ledger: [],
        incarnation: 0,
        api: true,
        leaseObservedAt: Number.NEGATIVE_INFINITY,
        leaseSeenVersion: -1,
        eligible: true,
        apiHealthy: true,
        codec: null,
        guard: null,
        everStarted: false,
      });
    }
  }

  // ----------------------------------------------------------------------------------------
  // clocks

  local(n: SimNode, t: number = this.t): number {
    return n.offset + n.rate * t;
  }

  trueOf(n: SimNode, local: number): number {
    return (local - n.offset) / n.rate;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  // ----------------------------------------------------------------------------------------
  // controls

  setNet(n: Partial<NetSettings>): void {
    this.net = { ...this.net, ...n };
  }

  partition(groups: string[][]): void {
    this.blocked.clear();
    for (const a of this.names) {
      for (const b of this.names) {
        if (a === b) continue;
        const ga = groups.findIndex((g) => g.includes(a));
        const gb = groups.findIndex((g) => g.includes(b));
        if (ga !== gb) this.blocked.add(`${a}>${b}`);
      }
    }
  }

  /** One-way loss a→b. */
  block(a: string, b: string): void {
    this.blocked.add(`${a}>${b}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  reachable(a: string, b: string): boolean {
    return !this.blocked.has(`${a}>${b}`);
  }

  start(name: string): void {
    const n = this.node(name);
    if (n.status !== 'down') return;
    n.incarnation += 1;
    n.status = 'running';
    n.inbox = [];
    const epoch = (n.incarnation * 0x1000 + this.names.indexOf(name)).toString(16).padStart(16, '0');
    n.state = initPeer(
      { ...this.cfg.timing, self: name, peers: this.names, bootstrap: n.bootstrap },
      this.local(n),
      epoch,
      Math.floor(this.rnd() * 2 ** 32),
    );
    if (this.cfg.codec) {
      n.codec = new PeerCodec({ self: name, peers: this.names, key: this.cfg.keys?.[name] ?? SIM_KEY, epoch });
      n.guard = new ReplayGuard({ peers: this.names });
    }
    n.leaseObservedAt = Number.NEGATIVE_INFINITY;
    n.leaseSeenVersion = -1;
    if (!n.everStarted) {
      n.everStarted = true;
      this.push({ kind: 'poll', at: this.t + this.rnd() * this.RP, seq: 0, node: name });
    }
    this.apply(n, { type: 'eligible', now: this.local(n), eligible: n.eligible, apiHealthy: n.apiHealthy });
    this.pollLease(n);
  }

  crash(name: string): void {
    const n = this.node(name);
    if (n.status === 'down') return;
    n.status = 'down';
    n.state = null;
    n.inbox = [];
    n.wakeGen += 1;
    // A dead agent's interval runs to its deadline + L (kernel mode keeps answering until then).
    if (n.open !== null) {
      this.intervals.push(n.open);
      n.open = null;
    }
    this.note(`${name} crashed`);
  }

  restart(name: string): void {
    this.crash(name);
    this.start(name);
  }

  pause(name: string): void {
    const n = this.node(name);
    if (n.status === 'running') {
      n.status = 'paused';
      this.note(`${name} stopped (SIGSTOP)`);
    }
  }

  /** SIGCONT: timers first (libuv runs due timers before polling I/O), then the socket backlog; or the other way round. */
  cont(name: string, messagesFirst = false): void {
    const n = this.node(name);
    if (n.status !== 'paused') return;
    n.status = 'running';
    this.note(`${name} continued (SIGCONT)`);
    const backlog = n.inbox;
    n.inbox = [];
    if (!messagesFirst) this.apply(n, { type: 'tick', now: this.local(n) });
    for (const m of backlog) {
      if (n.status !== 'running') break;
      this.deliverTo(n, m);
    }
    if (messagesFirst && n.status === 'running') this.apply(n, { type: 'tick', now: this.local(n) });
  }

  shutdown(name: string): void {
    const n = this.node(name);
    if (n.status !== 'running') return;
    this.apply(n, { type: 'shutdown', now: this.local(n) });
  }

  campaign(name: string): void {
    const n = this.node(name);
    if (n.status === 'running') this.apply(n, { type: 'campaign', now: this.local(n) });
  }

  setEligible(name: string, ok: boolean, apiHealthy = ok): void {
    const n = this.node(name);
    n.eligible = ok;
    n.apiHealthy = apiHealthy;
    if (n.status === 'running') this.apply(n, { type: 'eligible', now: this.local(n), eligible: ok, apiHealthy });
  }

  setApi(name: string, up: boolean): void {
    this.node(name).api = up;
  }

  get retryPeriodMs(): number {
    return this.RP;
  }

  /** The Lease record now names `holder`: an administrator's write, outside the client-go rules (scenarios). */
  setLeaseHolder(holder: string | null): void {
    this.lease = { holder, version: this.lease.version + 1, renewedAt: this.t };
    for (const n of this.nodes.values()) if (n.status === 'running') this.pollLease(n);
  }

  leaseHolder(): string | null {
    return this.lease.holder;
  }

  /** Advance true time by `ms`, processing every event on the way. */
  run(ms: number): void {
    const end = this.t + ms;
    let sameInstant = 0;
    for (;;) {
      const e = this.q.peek();
      if (e === undefined || e.at > end) break;
      this.q.pop();
      sameInstant = e.at <= this.t ? sameInstant + 1 : 0;
      // A core whose next wakeup never moves forward would spin a real event loop too.
      if (sameInstant > 10_000) throw new SimViolation(`t=${this.t.toFixed(3)} LIVELOCK: 10000 events without time advancing`);
      this.t = Math.max(this.t, e.at);
      this.handle(e);
      this.check();
    }
    this.t = end;
    this.check();
  }

  /** Nodes holding the VIP right now (interval open and deadline not passed). */
  holders(): string[] {
    const out: string[] = [];
    for (const n of this.nodes.values()) {
      const i = n.open;
      if (i !== null && this.t < Math.min(i.untilTrue, i.standbyAt) + this.L) out.push(n.name);
    }
    return out;
  }

  /** Holding by the node's own account (running and its core says hold). */
  coreHolders(): string[] {
    const out: string[] = [];
    for (const n of this.nodes.values()) if (n.status === 'running' && n.state !== null && isHolding(n.state, this.local(n))) out.push(n.name);
    return out;
  }

  stateOf(name: string): PeerState | null {
    return this.node(name).state;
  }

  // ----------------------------------------------------------------------------------------
  // internals

  private wall(): number {
    return Date.UTC(2030, 0, 1) + this.t;
  }

  private push(e: Ev): void {
    e.seq = ++this.seq;
    this.q.push(e);
  }

  private note(s: string): void {
    if (this.cfg.log) this.log.push(`t=${Math.round(this.t)} ${s}`);
  }

  private handle(e: Ev): void {
    switch (e.kind) {
      case 'deliver': {
        const n = this.node(e.to);
        if (!this.reachable(e.msg.from, e.to)) return;
        if (n.status === 'down') return;
        let msg = e.msg;
        if (e.wire !== null && n.codec !== null && n.guard !== null) {
          const r = n.codec.decode(e.wire);
          if (!r.ok) {
            this.drops.set(r.reason, (this.drops.get(r.reason) ?? 0) + 1);
            return;
          }
          // Replay guard runs when the process reads the datagram; a paused process reads later.
          msg = r.msg;
          if (n.status === 'paused') {
            n.inbox.push(Object.assign(msg, { __wire: r }) as PeerMessage);
            return;
          }
          const g = n.guard.admit(r.header, this.local(n), this.wall());
          if (!g.ok) {
            this.drops.set(g.reason, (this.drops.get(g.reason) ?? 0) + 1);
            return;
          }
        }
        if (n.status === 'paused') {
          n.inbox.push(msg);
          return;
        }
        this.deliverTo(n, msg, true);
        return;
      }
      case 'wake': {
        const n = this.node(e.node);
        if (n.status !== 'running' || e.gen !== n.wakeGen) return;
        this.apply(n, { type: 'tick', now: this.local(n) });
        return;
      }
      case 'poll': {
        const n = this.node(e.node);
        this.push({ kind: 'poll', at: this.t + this.RP * (1 + 0.2 * this.rnd()), seq: 0, node: e.node });
        if (n.status === 'running') this.pollLease(n);
        return;
      }
    }
  }

  private deliverTo(n: SimNode, msg: PeerMessage, guarded = false): void {
    const wire = (msg as { __wire?: { header: Parameters<ReplayGuard['admit']>[0] } }).__wire;
    if (!guarded && wire !== undefined && n.guard !== null) {
      const g = n.guard.admit(wire.header, this.local(n), this.wall());
      if (!g.ok) {
        this.drops.set(g.reason, (this.drops.get(g.reason) ?? 0) + 1);
        return;
      }
    }
    this.apply(n, { type: 'message', now: this.local(n), msg });
  }

  /**
   * Lease elector stand-in with client-go rules, gated as docs/election.md recommends: a node
   * acquires and renews only while its core says lease-wanted (or when told to: `wantLease`, an
   * elector not gated on peers). The holder sees itself holding until its last renew + RD; others
   * see the record live until they observed its last change + LD and may acquire only after that.
   */
  private pollLease(n: SimNode): void {
    if (n.status !== 'running' || n.state === null || !n.api) return;
    const now = this.local(n);
    const L = this.lease;
    const s = n.state;
    const wants = (this.cfg.autoLease !== false && s.leaseWanted) || this.leaseWanter === n.name;
    if (L.holder === n.name && wants) {
      L.version += 1;
      L.renewedAt = this.t;
    }
    if (L.version !== n.leaseSeenVersion) {
      n.leaseSeenVersion = L.version;
      n.leaseObservedAt = now;
    }
    const free = L.holder === null || (L.holder !== n.name && now >= n.leaseObservedAt + this.LD);
    if (free && wants) {
      this.lease = { holder: n.name, version: L.version + 1, renewedAt: this.t };
      n.leaseSeenVersion = this.lease.version;
      n.leaseObservedAt = now;
      this.note(`${n.name} acquired the Lease`);
    }
    const rec = this.lease;
    // Our own record: held until our last renew (its last change) + RD; someone else's: + LD.
    const liveUntil = n.leaseObservedAt + (rec.holder === n.name ? this.RD : this.LD);
    this.apply(n, { type: 'lease', now, lease: { holderIdentity: rec.holder, liveUntil } });
  }

  private leaseWanter: string | null = null;

  /** `name`'s Lease elector tries to acquire (at its polls, when the record is free by its view); null: nobody. */
  wantLease(name: string | null): void {
    this.leaseWanter = name;
  }

  /** The holder releases the Lease (ReleaseOnCancel), if its API is up. */
  releaseLease(): void {
    const h = this.lease.holder;
    if (h === null || !this.node(h).api) return;
    this.lease = { holder: null, version: this.lease.version + 1, renewedAt: this.t };
    const n = this.node(h);
    if (n.status === 'running') this.pollLease(n);
  }

  private apply(n: SimNode, input: Input): void {
    if (n.state === null || n.status !== 'running') return;
    const before = n.state;
    const { state, effects } = step(before, input);
    this.steps += 1;
    n.state = state;
    this.ledger(n, before, state, input, effects);
    for (const fx of effects) this.effect(n, fx);
    n.wakeGen += 1;
    const w = nextWakeup(state);
    if (Number.isFinite(w)) this.push({ kind: 'wake', at: Math.max(this.t, this.trueOf(n, w)), seq: 0, node: n.name, gen: n.wakeGen });
  }

  private effect(n: SimNode, fx: Effect): void {
    switch (fx.type) {
      case 'send':
        this.send(n, fx.msg);
        return;
      case 'verdict': {
        const v = fx.verdict;
        if (v.kind === 'hold') {
          const untilTrue = this.trueOf(n, v.until);
          const o = n.open;
          if (o !== null && this.t < Math.min(o.untilTrue, o.standbyAt) + this.L) {
            if (untilTrue < o.untilTrue - 1e-6) throw new SimViolation(`t=${this.t} ${n.name}: grant deadline moved backwards`);
            o.untilTrue = untilTrue;
            if (this.cfg.logExtensions) this.note(`${n.name} hold extended to +${Math.round(v.until - this.local(n))}ms`);
          } else {
            if (o !== null) this.intervals.push(o);
            const i: Interval = { node: n.name, start: this.t, untilTrue, standbyAt: Number.POSITIVE_INFINITY };
            this.checkNewInterval(i);
            n.open = i;
            this.note(`${n.name} HOLD until +${Math.round(v.until - this.local(n))}ms (${v.reason})`);
          }
        } else {
          if (n.open !== null) {
            n.open.standbyAt = Math.min(n.open.standbyAt, this.t);
            this.intervals.push(n.open);
            n.open = null;
          }
          this.note(`${n.name} standby${v.leader ? ` leader=${v.leader}` : ''} (${v.reason})`);
        }
        return;
      }
      case 'lease-wanted':
        return;
      case 'event': {
        if (!this.cfg.log) return;
        const e = fx.event;
        const parts = Object.entries(e)
          .filter(([k, v]) => k !== 'kind' && k !== 'until' && v !== null)
          .map(([k, v]) => `${k}=${String(v)}`);
        this.note(`${n.name} ${e.kind}${parts.length ? ' ' + parts.join(' ') : ''}`);
        return;
      }
    }
  }

  private send(from: SimNode, msg: PeerMessage): void {
    this.messages += 1;
    if (this.logMessages) this.note(`${msg.from}->${msg.to} ${describeMessage(msg)}`);
    if (!this.reachable(msg.from, msg.to)) return;
    let wire: Buffer | null = null;
    if (from.codec !== null) wire = from.codec.encode(msg, this.wall());
    const copies = this.rnd() < this.net.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.rnd() < this.net.drop) continue;
      const d = this.net.minDelay + this.rnd() * (this.net.maxDelay - this.net.minDelay);
      this.push({ kind: 'deliver', at: this.t + d, seq: 0, to: msg.to, msg, wire });
    }
  }

  // ----------------------------------------------------------------------------------------
  // invariants

  private end(i: Interval): number {
    return Math.min(i.untilTrue, i.standbyAt) + this.L;
  }

  private checkNewInterval(i: Interval): void {
    const others = [...this.intervals, ...[...this.nodes.values()].map((n) => n.open).filter((x): x is Interval => x !== null)];
    for (const o of others) {
      if (o.node === i.node) continue;
      if (this.end(o) > i.start) {
        throw new SimViolation(
          `t=${this.t.toFixed(3)} OVERLAP: ${i.node} granted while ${o.node}'s grant [${o.start.toFixed(3)}, ${this.end(o).toFixed(3)}] is live`,
        );
      }
    }
    // Old intervals that ended long ago are of no further use.
    if (this.intervals.length > 64) this.intervals.splice(0, this.intervals.length - 32);
  }

  /** Track promises in true time; an early end is legal only for a release or a dropped own candidacy vote. */
  private ledger(n: SimNode, before: PeerState, after: PeerState, input: Input, effects: Effect[]): void {
    const p0 = before.promise;
    const p1 = after.promise;
    if (p0 === p1) return;
    const nowLocal = after.now;
    const last = n.ledger[n.ledger.length - 1];
    if (p0 !== null && nowLocal < p0.until && (p1 === null || p1.to !== p0.to)) {
      // Ended early.
      const legal =
        after.role.kind === 'stopped' ||
        (p0.to === n.name && p0.releasable) ||
        (p0.to === n.name && effects.some((f) => f.type === 'event' && f.event.kind === 'released')) ||
        (input.type === 'message' && input.msg.from === p0.to && input.msg.body.type === 'release');
      if (!legal) throw new SimViolation(`t=${this.t.toFixed(3)} ${n.name}: promise to ${p0.to} dropped early (${input.type})`);
      // A stopped process's promise still binds (it may come back): keep the entry running.
      if (after.role.kind !== 'stopped' && last !== undefined && last.to === p0.to && last.end > this.t) last.end = this.t;
    }
    if (p1 !== null && (p0 === null || p1.to !== p0.to || p1.until !== p0.until)) {
      const endTrue = this.trueOf(n, p1.until);
      const cur = n.ledger[n.ledger.length - 1];
      if (cur !== undefined && cur.to === p1.to && cur.end >= this.t) {
        cur.end = Math.max(cur.end, endTrue);
      } else {
        for (const e of n.ledger) {
          if (e.to !== p1.to && e.end > this.t) {
            throw new SimViolation(`t=${this.t.toFixed(3)} ONE PROMISE: ${n.name} promised ${p1.to} while its promise to ${e.to} runs until ${e.end.toFixed(3)}`);
          }
        }
        n.ledger.push({ to: p1.to, start: this.t, end: endTrue });
        if (n.ledger.length > 16) n.ledger.splice(0, n.ledger.length - 8);
      }
    }
  }

  private check(): void {
    for (const n of this.nodes.values()) {
      const i = n.open;
      if (i === null || this.t >= this.end(i)) continue;
      let need = this.quorum;
      const st = n.state;
      if (n.bootstrap && st !== null && st.bootstrap === 'active') need = 1;
      if (n.bootstrap && st === null) need = 1; // crashed bootstrap leader: its last grant may be self-only
      let have = 0;
      for (const v of this.nodes.values()) {
        if (v.ledger.some((e) => e.to === n.name && e.start <= this.t && this.t < e.end)) have += 1;
      }
      // The linger after a deadline is covered too: the promise must outlast end(i), not just now.
      let coverEnd = 0;
      for (const v of this.nodes.values()) {
        if (v.ledger.some((e) => e.to === n.name && e.start <= this.t && this.end(i) <= e.end)) coverEnd += 1;
      }
      if (have < need || coverEnd < need) {
        throw new SimViolation(
          `t=${this.t.toFixed(3)} COVERAGE: ${n.name} holds (until ${this.end(i).toFixed(3)}) with ${have} live promises, ${coverEnd} lasting to its end; needs ${need}`,
        );
      }
    }
  }
}
