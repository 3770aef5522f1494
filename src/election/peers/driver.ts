/**
 * The peer elector on real sockets and timers: the pure core (core.ts) driven by UDP datagrams,
 * one timer armed for the core's next wakeup, the health gate and the Lease view.
 *
 * - Every datagram is decoded and authenticated (codec.ts) and passed through the replay guard
 *   before the core sees it; anything that fails is dropped and counted by reason, never acted on.
 * - The driver adds nothing to the protocol: the core decides, the driver only carries inputs and
 *   effects. Time is the monotonic clock for the core, the wall clock only for the replay window.
 * - A hold verdict names the last leader this node knew (a failover), so the holder claims without
 *   the cold-start probe.
 */
import { familyOf } from '../../net/ip.js';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { monotonicClock, type Clock } from '../../util/clock.js';
import type { HealthGate } from '../../health/livez.js';
import type { Logger } from '../../observe/log.js';
import { sleep, untilAborted } from '../../util/signals.js';
import { metrics } from '../../observe/metrics.js';
import type { LeaseObservation } from '../steering.js';
import type { Elector, Verdict } from '../types.js';
import { PeerCodec, ReplayGuard } from './codec.js';
import { initPeer, nextWakeup, peerSnapshot, step, type Effect, type Input, type PeerSnapshot, type PeerState } from './core.js';
import type { PeerConfig } from './timing.js';

/** Longest wait for queued datagrams (the release) to leave before the socket closes. */
const SEND_DRAIN_MS = 200;

export interface PeerAddress {
  host: string;
  port: number;
}

export interface PeerElectorOptions {
  cfg: PeerConfig;
  /** Address of every configured peer, this node included (its own is where it listens). */
  addresses: Readonly<Record<string, PeerAddress>>;
  key: Buffer;
  log: Logger;
  /** Eligibility (control-plane mode: the local API server answers, or no other one does). */
  gate?: HealthGate;
  /** The local API server alone (what makes this node a transfer target); default: `gate`. */
  apiGate?: HealthGate;
  clock?: Clock;
  wallClock?: () => number;
}

export class PeerElector implements Elector {
  private state: PeerState;
  private readonly listeners = new Set<(v: Verdict) => unknown>();
  private readonly leaseListeners = new Set<(wanted: boolean) => void>();
  private readonly codec: PeerCodec;
  private readonly guard: ReplayGuard;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastLeader: string | undefined;
  private stopped: (() => void) | undefined;
  private leaseWanted = false;
  /** Datagrams handed to the socket whose send has not completed yet. */
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly o: PeerElectorOptions) {
    this.clock = o.clock ?? monotonicClock;
    this.wall = o.wallClock ?? Date.now;
    const epoch = randomBytes(8).toString('hex');
    this.state = initPeer(o.cfg, this.clock.now(), epoch, randomBytes(4).readUInt32BE(0));
    this.codec = new PeerCodec({ self: o.cfg.self, peers: o.cfg.peers, key: o.key, epoch });
    this.guard = new ReplayGuard({ peers: o.cfg.peers });
  }

  onVerdict(listener: (v: Verdict) => unknown): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether this node should hold the Lease: exactly while it is the peer leader. */
  onLeaseWanted(listener: (wanted: boolean) => void): () => void {
    this.leaseListeners.add(listener);
    listener(this.leaseWanted);
    return () => this.leaseListeners.delete(listener);
  }

  /** The Lease record as this node sees it; steers elections (steering.ts). */
  observeLease(lease: LeaseObservation): void {
    this.feed({ type: 'lease', now: this.clock.now(), lease });
  }

  role(): PeerState['role']['kind'] {
    return this.state.role.kind;
  }

  term(): number {
    return this.state.term;
  }

  /** The core's state for `vipd status`, copied. */
  snapshot(): PeerSnapshot {
    return peerSnapshot(this.state);
  }

  async run(signal: AbortSignal): Promise<void> {
    const self = this.o.addresses[this.o.cfg.self];
    if (!self) throw new Error(`vip_peers has no address for this node (${this.o.cfg.self})`);
    const socket = createSocket({ type: familyOf(self.host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    this.socket = socket;
    socket.on('message', (buf) => this.receive(buf));
    socket.on('error', (err) => this.o.log.error({ err }, 'peer socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(self.port, self.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.o.log.info({ listen: `${self.host}:${self.port}`, peers: this.o.cfg.peers, bootstrap: this.o.cfg.bootstrap }, 'peer voting started');
    const gate = this.o.gate;
    const apiGate = this.o.apiGate ?? gate;
    const feedHealth = () => {
      if (gate) this.feed({ type: 'eligible', now: this.clock.now(), eligible: gate.healthy(), apiHealthy: apiGate!.healthy() });
    };
    const offGate = gate?.onChange(feedHealth);
    const offApi = apiGate !== gate ? apiGate?.onChange(feedHealth) : undefined;
    feedHealth();
    this.feed({ type: 'tick', now: this.clock.now() });

    await untilAborted(signal);
    // Step down (standby verdict at once), release promises after the linger, then stop.
    const done = new Promise<void>((resolve) => {
      this.stopped = resolve;
    });
    this.feed({ type: 'shutdown', now: this.clock.now() });
    const limit = setTimeout(() => this.stopped?.(), this.state.d.releaseDelayMs + 2 * this.o.cfg.electionTimeoutMs);
    await done;
    clearTimeout(limit);
    offGate?.();
    offApi?.();
    if (this.timer) clearTimeout(this.timer);
    // The release went to the socket in the same step that stopped the core, but dgram sends
    // complete asynchronously (address lookup, then the write): closing now would drop it, and the
    // peers would wait a whole election timeout instead of one round trip. Bounded: a send that
    // cannot complete (no route) must not hold the shutdown.
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(SEND_DRAIN_MS, undefined, { unref: true })]);
    socket.close();
  }

  private receive(buf: Buffer): void {
    const decoded = this.codec.decode(buf);
    if (!decoded.ok) {
      metrics.peerMessages.inc({ outcome: decoded.reason });
      return;
    }
    const admitted = this.guard.admit(decoded.header, this.clock.now(), this.wall());
    if (!admitted.ok) {
      metrics.peerMessages.inc({ outcome: admitted.reason });
      return;
    }
    metrics.peerMessages.inc({ outcome: 'accepted' });
    this.feed({ type: 'message', now: this.clock.now(), msg: decoded.msg });
  }

  private feed(input: Input): void {
    const { state, effects } = step(this.state, input);
    this.state = state;
    for (const fx of effects) this.apply(fx);
    this.arm();
  }

  private apply(fx: Effect): void {
    switch (fx.type) {
      case 'send': {
        const to = this.o.addresses[fx.msg.to];
        if (!to || !this.socket) return;
        const packet = this.codec.encode(fx.msg, this.wall());
        const sent = new Promise<void>((resolve) => {
          this.socket!.send(packet, to.port, to.host, (err) => {
            if (err) metrics.peerMessages.inc({ outcome: 'send-error' });
            resolve();
          });
        });
        this.inflight.add(sent);
        void sent.then(() => this.inflight.delete(sent));
        return;
      }
      case 'verdict': {
        let v = fx.verdict;
        if (v.kind === 'standby' && v.leader && v.leader !== this.o.cfg.self) this.lastLeader = v.leader;
        if (v.kind === 'hold' && this.lastLeader !== undefined && v.previousHolder === undefined) v = { ...v, previousHolder: this.lastLeader };
        for (const l of this.listeners) l(v);
        return;
      }
      case 'lease-wanted':
        this.leaseWanted = fx.wanted;
        for (const l of this.leaseListeners) l(fx.wanted);
        return;
      case 'event': {
        const e = fx.event;
        if (e.kind === 'stopped') this.stopped?.();
        this.o.log.info({ ...e, event: e.kind, term: this.state.term }, `peer ${e.kind}`);
        return;
      }
    }
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state.role.kind === 'stopped') return;
    const at = nextWakeup(this.state);
    if (!Number.isFinite(at)) return;
    const ms = Math.max(0, at - this.clock.now());
    this.timer = setTimeout(() => this.feed({ type: 'tick', now: this.clock.now() }), ms);
  }
}
