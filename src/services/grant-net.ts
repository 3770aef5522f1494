/**
 * Service-IP grants on real sockets and timers: the voter answers claims on the grant port of a
 * control-plane node; the member drives its core (logic/grants.ts) from one UDP socket and one
 * timer. Every datagram is authenticated (grant-wire.ts) and passed through a replay guard before
 * the core sees it; the drivers add nothing to the protocol.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { familyOf } from '../net/ip.js';
import { monotonicClock, type Clock } from '../util/clock.js';
import { sleep } from '../util/signals.js';
import type { Logger } from '../observe/log.js';
import { metrics } from '../observe/metrics.js';
import { ReplayGuard } from '../election/peers/codec.js';
import type { PeerTiming } from '../election/peers/timing.js';
import { decodeGrant, GrantCodec } from './grant-wire.js';
import { initMember, initVoter, memberNextWakeup, memberStep, voterOnClaim, type MemberEffect, type MemberInput, type MemberState, type VoterState } from './logic/grants.js';

/** Longest wait for queued datagrams (the final release) to leave before a socket closes. */
const SEND_DRAIN_MS = 200;
/** Members a voter keeps replay state for (the longest silent is forgotten first). */
const MAX_MEMBERS = 4096;

export interface GrantAddress {
  host: string;
  port: number;
}

async function bindUdp(host: string, port: number): Promise<Socket> {
  const socket = createSocket({ type: familyOf(host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

export interface GrantVoterOptions {
  self: string;
  listen: GrantAddress;
  electionTimeoutMs: number;
  key: Buffer;
  log: Logger;
  clock?: Clock;
  wallClock?: () => number;
}

/** Answers claims; holds nothing itself. */
export class GrantVoter {
  private readonly state: VoterState;
  private readonly codec: GrantCodec;
  private readonly guard = new ReplayGuard({ peers: [], openSenders: MAX_MEMBERS });
  private readonly clock: Clock;
  private readonly wall: () => number;
  private socket: Socket | undefined;

  constructor(private readonly o: GrantVoterOptions) {
    this.clock = o.clock ?? monotonicClock;
    this.wall = o.wallClock ?? Date.now;
    const epoch = randomBytes(8).toString('hex');
    this.state = initVoter({ self: o.self, electionTimeoutMs: o.electionTimeoutMs }, this.clock.now(), epoch);
    this.codec = new GrantCodec({ key: o.key, epoch });
  }

  async start(): Promise<void> {
    const socket = (this.socket = await bindUdp(this.o.listen.host, this.o.listen.port));
    socket.on('error', (err) => this.o.log.error({ err }, 'service grant voter socket error'));
    socket.on('message', (buf, rinfo) => {
      const d = decodeGrant(buf, { key: this.o.key, self: this.o.self, accept: (_from, type) => type === 'claim' });
      if (!d.ok || d.msg.type !== 'claim') return void metrics.grantMessages.inc({ role: 'voter', outcome: d.ok ? 'unexpected' : d.reason });
      const admitted = this.guard.admit(d.header, this.clock.now(), this.wall());
      if (!admitted.ok) return void metrics.grantMessages.inc({ role: 'voter', outcome: admitted.reason });
      metrics.grantMessages.inc({ role: 'voter', outcome: 'accepted' });
      const resp = voterOnClaim(this.state, this.clock.now(), d.msg);
      if (resp !== null) socket.send(this.codec.encode(resp, this.wall()), rinfo.port, rinfo.address);
    });
    this.o.log.info({ listen: `${this.o.listen.host}:${this.o.listen.port}` }, 'service grant voter started');
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export interface GrantMemberOptions {
  self: string;
  /** Where this member sends from (the node's address; the port is any free one). */
  bindHost: string;
  voters: Readonly<Record<string, GrantAddress>>;
  timing: PeerTiming;
  key: Buffer;
  log: Logger;
  clock?: Clock;
  wallClock?: () => number;
}

/** This node as a member: claims what placement wants, reports what it may hold and who is live. */
export class GrantMember {
  private readonly state: MemberState;
  private readonly codec: GrantCodec;
  private readonly guard: ReplayGuard;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private readonly holdListeners = new Set<(holds: ReadonlyMap<string, number>) => void>();
  private readonly liveListeners = new Set<(members: readonly string[]) => void>();
  private stopped: (() => void) | undefined;
  private holds: ReadonlyMap<string, number> = new Map();
  private live: readonly string[] = [];

  constructor(private readonly o: GrantMemberOptions) {
    this.clock = o.clock ?? monotonicClock;
    this.wall = o.wallClock ?? Date.now;
    const epoch = randomBytes(8).toString('hex');
    const voters = Object.keys(o.voters).sort();
    // Not a placement candidate until the coordinator says its Services are cached.
    this.state = initMember({ ...o.timing, self: o.self, voters, candidate: false }, this.clock.now(), epoch);
    this.codec = new GrantCodec({ key: o.key, epoch });
    this.guard = new ReplayGuard({ peers: voters });
  }

  /** IPs this member may answer for, each with its deadline on the monotonic clock. */
  onHolds(listener: (holds: ReadonlyMap<string, number>) => void): () => void {
    this.holdListeners.add(listener);
    listener(this.holds);
    return () => this.holdListeners.delete(listener);
  }

  /** The members the voters hear from: placement's candidates. */
  onLive(listener: (members: readonly string[]) => void): () => void {
    this.liveListeners.add(listener);
    listener(this.live);
    return () => this.liveListeners.delete(listener);
  }

  currentHolds(): ReadonlyMap<string, number> {
    return this.holds;
  }

  liveMembers(): readonly string[] {
    return this.live;
  }

  async start(): Promise<void> {
    const socket = (this.socket = await bindUdp(this.o.bindHost, 0));
    socket.on('error', (err) => this.o.log.error({ err }, 'service grant member socket error'));
    const voters = new Set(Object.keys(this.o.voters));
    socket.on('message', (buf) => {
      const d = decodeGrant(buf, { key: this.o.key, self: this.o.self, accept: (from, type) => type === 'claim-resp' && voters.has(from) });
      if (!d.ok || d.msg.type !== 'claim-resp') return void metrics.grantMessages.inc({ role: 'member', outcome: d.ok ? 'unexpected' : d.reason });
      const admitted = this.guard.admit(d.header, this.clock.now(), this.wall());
      if (!admitted.ok) return void metrics.grantMessages.inc({ role: 'member', outcome: admitted.reason });
      metrics.grantMessages.inc({ role: 'member', outcome: 'accepted' });
      this.feed({ type: 'message', now: this.clock.now(), msg: d.msg });
    });
    this.o.log.info({ voters: Object.keys(this.o.voters) }, 'service grant member started');
    this.feed({ type: 'tick', now: this.clock.now() });
  }

  /** Whether this node may take addresses (its Services are cached); the voters list only candidates. */
  setCandidate(candidate: boolean): void {
    if (candidate !== this.state.candidate) this.feed({ type: 'candidate', now: this.clock.now(), candidate });
  }

  want(ips: Iterable<string>): void {
    this.feed({ type: 'want', now: this.clock.now(), ips: [...ips] });
  }

  /**
   * Lets go of everything (holds reported empty at once), releases the claims after the linger
   * with a last, empty claim, and closes the socket once that has left.
   */
  async stop(): Promise<void> {
    if (!this.socket) return;
    const done = new Promise<void>((resolve) => {
      this.stopped = resolve;
    });
    this.feed({ type: 'shutdown', now: this.clock.now() });
    const limit = setTimeout(() => this.stopped?.(), this.state.d.releaseDelayMs + 2 * this.o.timing.electionTimeoutMs);
    await done;
    clearTimeout(limit);
    if (this.timer) clearTimeout(this.timer);
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(SEND_DRAIN_MS, undefined, { unref: true })]);
    const s = this.socket;
    this.socket = undefined;
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private feed(input: MemberInput): void {
    for (const fx of memberStep(this.state, input)) this.apply(fx);
    this.arm();
  }

  private apply(fx: MemberEffect): void {
    switch (fx.type) {
      case 'send': {
        const to = this.o.voters[fx.msg.to];
        if (!to || !this.socket) return;
        const packet = this.codec.encode(fx.msg, this.wall());
        const sent = new Promise<void>((resolve) => {
          this.socket!.send(packet, to.port, to.host, (err) => {
            if (err) metrics.grantMessages.inc({ role: 'member', outcome: 'send-error' });
            resolve();
          });
        });
        this.inflight.add(sent);
        void sent.then(() => this.inflight.delete(sent));
        return;
      }
      case 'holds':
        this.holds = fx.holds;
        for (const l of this.holdListeners) l(fx.holds);
        return;
      case 'live':
        this.live = fx.members;
        this.o.log.info({ members: fx.members }, 'service members (as the voters hear them) changed');
        for (const l of this.liveListeners) l(fx.members);
        return;
      case 'stopped':
        this.stopped?.();
        return;
    }
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state.stopped) return;
    const at = memberNextWakeup(this.state);
    if (!Number.isFinite(at)) return;
    this.timer = setTimeout(() => this.feed({ type: 'tick', now: this.clock.now() }), Math.max(0, Math.ceil(at - this.clock.now())));
  }
}
