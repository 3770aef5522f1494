/**
 * Discrete-event simulation of service-IP grants (src/services/logic/grants.ts): voters and
 * members on per-node clocks, a lossy reordering network, partitions, crashes, restarts and
 * SIGSTOP/SIGCONT, with placement by rendezvous over each member's live view (or an adversarial
 * placement that wants random IPs at random times).
 *
 * True time `t` is the simulator's; node i's monotonic clock reads offset_i + rate_i·t and keeps
 * running across restarts and pauses. A node is one agent: its voter (if it is one of the voters)
 * and its member crash, restart and pause together.
 *
 * Checked at every hold start (throws GrantSimViolation):
 * - ONE HOLDER: for every IP, the intervals in which members answer for it never overlap in true
 *   time. An interval runs from the holds report that includes the IP to the report that drops
 *   it, plus the linger L; for a crashed or paused member, to its hold deadline plus L (as if the
 *   kernel kept answering until the deadline).
 */
import { Heap, mulberry } from '../../election/sim.js';
import { owner } from '../../../src/services/logic/rendezvous.js';
import {
  initMember,
  initVoter,
  memberNextWakeup,
  memberStep,
  voterOnClaim,
  type GrantMsg,
  type MemberState,
  type VoterState,
} from '../../../src/services/logic/grants.js';
import type { PeerTiming } from '../../../src/election/peers/timing.js';

export class GrantSimViolation extends Error {
  override readonly name = 'GrantSimViolation';
}

export interface GrantSimConfig {
  seed: number;
  /** Node names; the first `voters` are voters, every node is a member. */
  nodes: number;
  voters: number;
  ips: number;
  timing: PeerTiming;
  /** Clock rate error bound actually used (≤ timing.skew). */
  rateSpread: number;
  /** manual: only `want()` says what a member claims (scenario scripts). */
  placement: 'rendezvous' | 'adversarial' | 'manual';
  /** How long after start a member becomes a placement candidate; default random 0..100 ms. */
  readyAfterMs?: number;
  /** Per IP, the members eligible for it (externalTrafficPolicy: Local); undefined = all. */
  eligibleFraction?: number;
}

interface Interval {
  ip: string;
  member: string;
  start: number;
  /** Close time in true time (report dropped it), or null while open. */
  closedAt: number | null;
  deadlineLocal: number;
}

interface Node {
  name: string;
  rate: number;
  offset: number;
  status: 'down' | 'running' | 'paused';
  voter: VoterState | null;
  member: MemberState | null;
  incarnation: number;
  wakeGen: number;
  /** The wakeup (local clock) the pending wake event is for. */
  wakeAt: number;
  inbox: GrantMsg[];
  open: Map<string, Interval>;
  eligible: Set<string>;
}

type Ev =
  | { kind: 'deliver'; at: number; seq: number; to: string; msg: GrantMsg }
  | { kind: 'wake'; at: number; seq: number; node: string; gen: number }
  | { kind: 'want'; at: number; seq: number; node: string }
  | { kind: 'ready'; at: number; seq: number; node: string; incarnation: number };

type NoSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;

export class GrantSim {
  t = 0;
  readonly nodes = new Map<string, Node>();
  readonly names: string[];
  readonly voterNames: string[];
  readonly ipList: string[];
  readonly closed: Interval[] = [];
  steps = 0;
  /** When set, chaos, holds and the voters' answers about `traceIp` are written here (debugging). */
  trace: string[] | null = null;
  traceIp = '';
  /** When set, every hold that starts or ends and every change of a live view (scenario scripts). */
  log: string[] | null = null;
  private q = new Heap<Ev>();
  private seq = 0;
  private rnd: () => number;
  net = { drop: 0, minDelay: 0.2, maxDelay: 2 };
  private blocked = new Set<string>();
  private readonly L: number;

  constructor(readonly cfg: GrantSimConfig) {
    this.rnd = mulberry(cfg.seed);
    this.names = Array.from({ length: cfg.nodes }, (_, i) => `n${i + 1}`);
    this.voterNames = this.names.slice(0, cfg.voters);
    this.ipList = Array.from({ length: cfg.ips }, (_, i) => `198.18.9.${i + 1}`);
    this.L = cfg.timing.lingerMs;
    for (const name of this.names) {
      const eligible = new Set<string>();
      for (const ip of this.ipList) if (cfg.eligibleFraction === undefined || this.rnd() < cfg.eligibleFraction) eligible.add(ip);
      this.nodes.set(name, {
        name,
        rate: 1 + (this.rnd() * 2 - 1) * cfg.rateSpread,
        offset: this.rnd() * 1e6,
        status: 'down',
        voter: null,
        member: null,
        incarnation: 0,
        wakeGen: 0,
        wakeAt: Number.NaN,
        inbox: [],
        open: new Map(),
        eligible,
      });
    }
    // Every IP has at least one eligible member (an IP with none is announced nowhere, by design).
    for (const ip of this.ipList) {
      if (![...this.nodes.values()].some((n) => n.eligible.has(ip))) this.node(this.names[Math.floor(this.rnd() * this.names.length)]!).eligible.add(ip);
    }
  }

  random(): number {
    return this.rnd();
  }

  private node(name: string): Node {
    return this.nodes.get(name)!;
  }

  private local(n: Node, t = this.t): number {
    return n.offset + n.rate * t;
  }

  private trueOf(n: Node, local: number): number {
    return (local - n.offset) / n.rate;
  }

  private push(e: NoSeq<Ev>): void {
    (e as Ev).seq = this.seq++;
    this.q.push(e as Ev);
  }

  // chaos ---------------------------------------------------------------------------------------

  start(name: string): void {
    const n = this.node(name);
    if (n.status !== 'down') return;
    this.note(`start ${name}`);
    n.status = 'running';
    n.incarnation++;
    const now = this.local(n);
    const epoch = `${name}-${n.incarnation}`;
    n.voter = this.voterNames.includes(name) ? initVoter({ self: name, electionTimeoutMs: this.cfg.timing.electionTimeoutMs }, now, epoch) : null;
    // As in the agent: not a placement candidate until its caches have listed (a random while).
    n.member = initMember({ ...this.cfg.timing, self: name, voters: this.voterNames, candidate: false }, now, epoch);
    n.inbox = [];
    n.wakeAt = Number.NaN;
    this.stepMember(n, { type: 'tick', now });
    this.push({ kind: 'ready', at: this.t + (this.cfg.readyAfterMs ?? this.rnd() * 100), node: name, incarnation: n.incarnation });
    this.scheduleWant(n, 0);
  }

  private note(line: string): void {
    this.trace?.push(`t=${this.t.toFixed(2)} ${line}`);
  }

  crash(name: string): void {
    this.note(`crash ${name}`);
    if (this.node(name).status !== 'down') this.say(`${name} crashed`);
    const n = this.node(name);
    if (n.status === 'down') return;
    n.status = 'down';
    this.abandonOpen(n);
    n.voter = null;
    n.member = null;
    n.inbox = [];
  }

  pause(name: string): void {
    this.note(`pause ${name}`);
    const n = this.node(name);
    if (n.status === 'running') n.status = 'paused';
  }

  cont(name: string): void {
    this.note(`cont ${name}`);
    const n = this.node(name);
    if (n.status !== 'paused') return;
    n.status = 'running';
    // A wake event that fell in the pause was dropped: the next step schedules afresh.
    n.wakeAt = Number.NaN;
    const inbox = n.inbox;
    n.inbox = [];
    for (const m of inbox) this.handle(n, m);
    if (n.member) this.stepMember(n, { type: 'tick', now: this.local(n) });
  }

  shutdown(name: string): void {
    this.note(`shutdown ${name}`);
    const n = this.node(name);
    if (n.status !== 'running' || !n.member) return;
    this.stepMember(n, { type: 'shutdown', now: this.local(n) });
  }

  partition(groups: string[][]): void {
    this.note(`partition ${groups.map((g) => g.join(' ')).join(' | ')}`);
    this.blocked.clear();
    for (let i = 0; i < groups.length; i++)
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i]!) for (const b of groups[j]!) this.blocked.add(`${a}>${b}`);
      }
  }

  heal(): void {
    this.blocked.clear();
  }

  status(name: string): Node['status'] {
    return this.node(name).status;
  }

  // engine --------------------------------------------------------------------------------------

  runUntil(t: number): void {
    for (;;) {
      const e = this.q.peek();
      if (e === undefined || e.at > t) break;
      this.q.pop();
      this.t = Math.max(this.t, e.at);
      this.steps++;
      const n = this.node(e.kind === 'deliver' ? e.to : e.node);
      if (e.kind === 'deliver') {
        if (n.status === 'down') continue;
        if (n.status === 'paused') n.inbox.push(e.msg);
        else this.handle(n, e.msg);
      } else if (e.kind === 'wake') {
        if (e.gen !== n.wakeGen || n.status !== 'running' || !n.member) continue;
        n.wakeAt = Number.NaN;
        this.stepMember(n, { type: 'tick', now: this.local(n) });
      } else if (e.kind === 'ready') {
        if (n.status !== 'running' || !n.member || n.incarnation !== e.incarnation) continue;
        this.stepMember(n, { type: 'candidate', now: this.local(n), candidate: true });
      } else {
        if (n.status !== 'running' || !n.member) continue;
        this.applyWant(n);
        this.scheduleWant(n, 50 + this.rnd() * 400);
      }
    }
    this.t = Math.max(this.t, t);
  }

  private handle(n: Node, m: GrantMsg): void {
    const now = this.local(n);
    if (m.type === 'claim') {
      if (!n.voter) return;
      const resp = voterOnClaim(n.voter, now, m);
      if (this.trace && m.ips.includes(this.traceIp)) this.note(`${n.name} claim ${m.from} r=${m.round.toFixed(1)} → ${resp === null ? 'ignored' : resp.granted.includes(this.traceIp) ? 'granted' : resp.quiet ? 'quiet' : 'refused'}`);
      if (resp) this.send(n.name, resp);
    } else if (n.member) {
      this.stepMember(n, { type: 'message', now, msg: m });
    }
  }

  private send(from: string, msg: GrantMsg): void {
    if (this.blocked.has(`${from}>${msg.to}`)) return;
    if (from !== msg.to && this.rnd() < this.net.drop) return;
    const delay = from === msg.to ? 0.05 : this.net.minDelay + this.rnd() * (this.net.maxDelay - this.net.minDelay);
    this.push({ kind: 'deliver', at: this.t + delay, to: msg.to, msg });
  }

  private stepMember(n: Node, input: Parameters<typeof memberStep>[1]): void {
    const s = n.member!;
    const fx = memberStep(s, input);
    let replace = false;
    for (const f of fx) {
      if (f.type === 'send') this.send(n.name, f.msg);
      else if (f.type === 'holds') this.onHolds(n, f.holds);
      else if (f.type === 'live') {
        this.say(`${n.name} sees live: ${f.members.join(' ') || '(none)'}`);
        if (this.cfg.placement === 'rendezvous') replace = true;
      }
    }
    const w = memberNextWakeup(s);
    if (w !== n.wakeAt) {
      n.wakeGen++;
      n.wakeAt = w;
      if (Number.isFinite(w)) this.push({ kind: 'wake', at: Math.max(this.t, this.trueOf(n, w)) + 1e-6, node: n.name, gen: n.wakeGen });
    }
    // Placement reruns on a new live view, after this step's effects (as the coordinator would).
    if (replace) this.applyWant(n);
  }

  private scheduleWant(n: Node, delay: number): void {
    if (this.cfg.placement === 'adversarial') this.push({ kind: 'want', at: this.t + delay, node: n.name });
  }

  /** What placement tells this member to hold. */
  private applyWant(n: Node): void {
    const s = n.member!;
    let ips: string[];
    if (this.cfg.placement === 'manual') return;
    if (this.cfg.placement === 'rendezvous') {
      const live = s.reportedLive === '' ? [] : s.reportedLive.split(',');
      ips = this.ipList.filter((ip) => owner(ip, live.filter((m) => this.node(m).eligible.has(ip))) === n.name);
    } else {
      ips = this.ipList.filter(() => this.rnd() < 0.5);
    }
    this.stepMember(n, { type: 'want', now: this.local(n), ips });
  }

  /** Manual placement: what `name` claims from now on. */
  want(name: string, ips: string[]): void {
    const n = this.node(name);
    if (n.status === 'running' && n.member) this.stepMember(n, { type: 'want', now: this.local(n), ips });
  }

  private say(line: string): void {
    this.log?.push(`t=${Math.round(this.t)} ${line}`);
  }

  private onHolds(n: Node, holds: ReadonlyMap<string, number>): void {
    if (this.log) {
      for (const ip of holds.keys()) if (!n.open.has(ip)) this.say(`${n.name} holds ${ip}`);
      for (const ip of n.open.keys()) if (!holds.has(ip)) this.say(`${n.name} lets go of ${ip}`);
    }
    if (this.trace) this.note(`${n.name} holds ${holds.has(this.traceIp) ? `until ${this.trueOf(n, holds.get(this.traceIp)!).toFixed(2)}` : '-'}`);
    for (const [ip, iv] of n.open) {
      if (holds.has(ip)) continue;
      // A member that was paused past its deadline reports the drop late; it stopped answering at
      // the deadline (the same model as the VIP simulation: the deadline bounds every hold).
      iv.closedAt = Math.min(this.t, this.trueOf(n, iv.deadlineLocal));
      n.open.delete(ip);
      this.closed.push(iv);
    }
    for (const [ip, until] of holds) {
      const cur = n.open.get(ip);
      if (cur && this.t <= this.trueOf(n, cur.deadlineLocal)) {
        cur.deadlineLocal = until;
        continue;
      }
      if (cur) {
        // Extended only after its deadline had passed (a paused member catching up on answers):
        // it stopped answering at the deadline, and this is a new hold that must be checked.
        cur.closedAt = this.trueOf(n, cur.deadlineLocal);
        this.closed.push(cur);
      }
      const iv: Interval = { ip, member: `${n.name}#${n.incarnation}`, start: this.t, closedAt: null, deadlineLocal: until };
      this.checkStart(iv);
      n.open.set(ip, iv);
    }
  }

  /** A crashed member's open holds run to their deadline (the kernel may keep answering), and no further. */
  private abandonOpen(n: Node): void {
    for (const iv of n.open.values()) {
      iv.closedAt = this.trueOf(n, iv.deadlineLocal);
      this.closed.push(iv);
    }
    n.open.clear();
  }

  private endOf(iv: Interval, n: Node): number {
    if (iv.closedAt !== null) return iv.closedAt + this.L;
    // Open: a running member still answers; a paused one until its deadline.
    return n.status === 'paused' ? this.trueOf(n, iv.deadlineLocal) + this.L : Number.POSITIVE_INFINITY;
  }

  private checkStart(iv: Interval): void {
    for (const n of this.nodes.values()) {
      const other = n.open.get(iv.ip);
      if (other && other.member !== iv.member && this.endOf(other, n) > iv.start) {
        throw new GrantSimViolation(`t=${iv.start.toFixed(2)} ${iv.member} holds ${iv.ip} while ${other.member} still does (since ${other.start.toFixed(2)}, ${n.status})`);
      }
    }
    for (let i = this.closed.length - 1; i >= 0; i--) {
      const c = this.closed[i]!;
      if (c.ip !== iv.ip || c.member === iv.member) continue;
      const end = c.closedAt! + this.L;
      if (end > iv.start) throw new GrantSimViolation(`t=${iv.start.toFixed(2)} ${iv.member} holds ${iv.ip}; ${c.member} held it until ${end.toFixed(2)} (from ${c.start.toFixed(2)})`);
    }
    // Old intervals can never overlap a future start again: keep the list short.
    if (this.closed.length > 256) this.closed.splice(0, this.closed.length - 128);
  }

  /** Which member holds each IP right now (running members only). */
  holders(): Map<string, string[]> {
    const out = new Map<string, string[]>(this.ipList.map((ip) => [ip, []]));
    for (const n of this.nodes.values()) if (n.status === 'running') for (const ip of n.open.keys()) out.get(ip)!.push(n.name);
    return out;
  }

  /** The IPs no running member holds. */
  unheld(): string[] {
    return [...this.holders()].filter(([, h]) => h.length === 0).map(([ip]) => ip);
  }
}
