/**
 * The edge between vipd and the local FRR: applies the rendered configuration over the vty sockets,
 * watches the sessions, and confirms withdrawals. The holders announce by putting the VIP on lo
 * (src/bgp/frr-config.ts says why); this module is how vipd knows whether anyone hears it.
 *
 * Invariants
 * - FRR may start after vipd or restart under it (a sidecar): until bgpd answers, vipd waits and
 *   says so; whenever bgpd has lost vipd's `router bgp` (restarted empty), the configuration is
 *   applied again. The holders never wait for FRR: the address on lo is what FRR picks up.
 * - vipd never reports announcing without an Established session: `vipd_bgp_announcing` and the
 *   log line "holding ... but no BGP session is up" come from the polled session state.
 * - withdrawn() resolves once bgpd has no path left for the prefixes and nothing is queued to any
 *   established peer, or at its timeout: the agent's exit waits for it, so a SIGTERM withdraws
 *   before the process ends.
 */
import type { EventSink } from '../k8s/events.js';
import { familyOf } from '../net/ip.js';
import type { Logger } from '../observe/log.js';
import { metrics } from '../observe/metrics.js';
import { sleep } from '../util/signals.js';
import { hostPrefix, servicePrefixLine, type FrrConfig } from './frr-config.js';
import { describePeers, hasPaths, parseBfdPeers, parseSummary, type PeerStatus } from './status.js';
import { VtyClient } from './vty.js';

export interface FrrDriverOptions {
  /** FRR's vty socket directory (bgp_frr_socket_dir). */
  dir: string;
  config: FrrConfig;
  asn: number;
  bfd: boolean;
  /** How often the sessions are polled. */
  pollMs?: number;
  log: Logger;
  events?: EventSink;
}

export class FrrDriver {
  private readonly bgpd: VtyClient;
  private readonly bfdd: VtyClient;
  private readonly pollMs: number;
  private applied = false;
  /** Shutting down: the redistribution is off on purpose, polls must not put it back. */
  private draining = false;
  private reachable: boolean | undefined;
  private peers = new Map<string, PeerStatus>();
  private readonly held = new Set<string>();
  /** Every address held since start: what a shutdown must see withdrawn. */
  private readonly everHeld = new Set<string>();
  /** Service IPs whose prefix-list entry is (to be) in bgpd. */
  private readonly services = new Set<string>();
  private silentSince: boolean | undefined;

  constructor(private readonly o: FrrDriverOptions) {
    this.bgpd = new VtyClient('bgpd', o.dir);
    this.bfdd = new VtyClient('bfdd', o.dir);
    this.pollMs = o.pollMs ?? 1000;
  }

  /** True while at least one session is Established: what is on lo is heard by a router. */
  heard(): boolean {
    return [...this.peers.values()].some((p) => p.established);
  }

  sessions(): PeerStatus[] {
    return [...this.peers.values()];
  }

  /** The holders say what is on lo; the announcing gauge and warnings follow from it. */
  setHeld(ip: string, held: boolean): void {
    if (held) {
      this.held.add(ip);
      this.everHeld.add(ip);
    } else this.held.delete(ip);
    metrics.bgpAnnouncing.set({ vip: ip }, held && this.heard() ? 1 : 0);
    if (held && this.reachable !== undefined) this.warnIfUnheard();
  }

  private warnIfUnheard(): void {
    const silent = this.held.size > 0 && !this.heard();
    if (silent === this.silentSince) return;
    this.silentSince = silent;
    if (silent) this.o.log.warn({ sessions: describePeers(this.peers.values()) }, `holding ${[...this.held].join(', ')} on lo but no BGP session is up: nothing is announced`);
    else if (this.held.size > 0) this.o.log.info({ sessions: describePeers(this.peers.values()) }, `announcing ${[...this.held].join(', ')} over BGP`);
  }

  /** Polls FRR until the signal aborts; applies the configuration whenever bgpd lacks it. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.poll();
      await sleep(this.pollMs, signal);
    }
  }

  /**
   * Lets a service IP out: call before its address goes on lo (servicePrefixLine says why). When
   * FRR is not reachable the entry goes in with the next apply.
   */
  async allow(ip: string): Promise<void> {
    this.services.add(ip);
    if (!this.applied) return;
    try {
      await this.bgpd.configure([servicePrefixLine(ip)]);
    } catch (err) {
      this.o.log.warn({ vip: ip, err: err instanceof Error ? err.message : String(err) }, 'could not add the service IP to FRR\'s prefix list; it is added when FRR answers again');
      this.applied = false;
    }
  }

  /** Takes a service IP back, after its address left lo. */
  async disallow(ip: string): Promise<void> {
    if (!this.services.delete(ip) || !this.applied) return;
    await this.bgpd.run('configure terminal').then(() => this.bgpd.run(servicePrefixLine(ip, true))).then(() => this.bgpd.run('end')).catch(() => undefined);
  }

  private async apply(fresh: boolean): Promise<void> {
    if (this.o.config.bfdd.length > 0) await this.bfdd.configure(this.o.config.bfdd);
    // Service entries first: the redistribute line then finds them (servicePrefixLine).
    await this.bgpd.configure([...[...this.services].map((ip) => servicePrefixLine(ip)), ...(fresh ? this.o.config.bgpdFresh : this.o.config.bgpd)]);
    this.applied = true;
    this.o.log.info({ dir: this.o.dir }, 'FRR configured (router bgp, prefix lists, route map' + (this.o.bfd ? ', BFD profile)' : ')'));
  }

  /** One round: reach bgpd, (re)apply if needed, read the sessions, report changes. */
  async poll(): Promise<void> {
    let summary: unknown;
    let bfd = new Map<string, string>();
    try {
      summary = await this.bgpd.json('show bgp summary json');
      // bgpd answers {} without a BGP instance: it started (or restarted) without vipd's lines.
      const ours = Object.values(summary as Record<string, { as?: number }>).some((af) => af?.as === this.o.asn);
      if (!this.draining && (!this.applied || !ours)) {
        await this.apply(!ours);
        summary = await this.bgpd.json('show bgp summary json');
      }
      if (this.o.bfd) bfd = parseBfdPeers(await this.bfdd.json('show bfd peers json'));
      this.setReachable(true, 'bgpd and bfdd answer');
    } catch (err) {
      this.applied = false;
      this.bgpd.close();
      this.bfdd.close();
      this.setReachable(false, err instanceof Error ? err.message : String(err));
      this.updatePeers(new Map());
      return;
    }
    const peers = parseSummary(summary);
    for (const [address, p] of peers) {
      const b = bfd.get(address);
      if (b) p.bfd = b;
    }
    this.updatePeers(peers);
  }

  private setReachable(ok: boolean, why: string): void {
    if (ok === this.reachable) return;
    const first = this.reachable === undefined;
    this.reachable = ok;
    metrics.bgpFrrUp.set(ok ? 1 : 0);
    if (ok) {
      if (!first) this.o.log.info({ dir: this.o.dir }, 'FRR answers again');
      return;
    }
    this.o.log.warn({ dir: this.o.dir, reason: why }, first ? `waiting for FRR: no answer on ${this.o.dir}/bgpd.vty` : 'FRR stopped answering: nothing is announced');
    this.o.events?.record({ type: 'Warning', reason: 'FrrUnreachable', action: 'Announce', note: `FRR does not answer on ${this.o.dir}: the VIP is not announced over BGP (${why.slice(0, 200)})` });
  }

  private updatePeers(next: Map<string, PeerStatus>): void {
    for (const [address, p] of next) {
      const was = this.peers.get(address);
      metrics.bgpSessionUp.set({ peer: address }, p.established ? 1 : 0);
      if (was === undefined ? p.established : was.established !== p.established) {
        if (p.established) this.o.log.info({ peer: address, bfd: p.bfd }, 'BGP session established');
        else {
          this.o.log.warn({ peer: address, state: p.state }, 'BGP session down');
          this.o.events?.record({ type: 'Warning', reason: 'BgpSessionDown', action: 'Announce', note: `BGP session to ${address} is ${p.state}` });
        }
      }
    }
    for (const address of this.peers.keys()) if (!next.has(address)) metrics.bgpSessionUp.set({ peer: address }, 0);
    this.peers = next;
    for (const ip of this.held) metrics.bgpAnnouncing.set({ vip: ip }, this.heard() ? 1 : 0);
    this.warnIfUnheard();
  }

  /**
   * Resolves when bgpd no longer has a path for any of the addresses and has nothing queued to an
   * established peer (the withdraw is on the wire), or after timeoutMs. Returns whether it was confirmed.
   */
  async withdrawn(timeoutMs: number, ips: readonly string[] = [...this.everHeld]): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        let pending = false;
        for (const ip of ips) {
          const af = familyOf(ip) === 6 ? 'ipv6' : 'ipv4';
          if (hasPaths(await this.bgpd.json(`show bgp ${af} unicast ${hostPrefix(ip)} json`))) pending = true;
        }
        if (!pending) {
          const peers = parseSummary(await this.bgpd.json('show bgp summary json'));
          if (![...peers.values()].some((p) => p.established && p.outq > 0)) return true;
        }
      } catch {
        return false; // FRR is gone: nothing of ours can be announced by it either.
      }
      await sleep(10);
    }
    return false;
  }

  /**
   * Graceful shutdown, while the addresses are still on lo and served: stop redistributing, wait
   * until FRR has sent the withdrawal, then `graceMs` more for the router to reprogram its
   * forwarding (vipd cannot see that). Flows the router already hashed here keep being answered
   * until then; only after this do the holders remove the addresses.
   */
  async drain(timeoutMs: number, graceMs: number): Promise<boolean> {
    if (this.held.size === 0) return true;
    const t0 = Date.now();
    try {
      this.draining = true;
      await this.bgpd.configure(this.o.config.drain);
    } catch (err) {
      this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not withdraw through FRR before shutdown');
      return false;
    }
    const confirmed = await this.withdrawn(timeoutMs);
    if (confirmed) await sleep(graceMs);
    this.o.log.info({ ms: Date.now() - t0, confirmed }, confirmed ? `withdrawn over BGP; waited ${graceMs} ms for the router before removing the addresses` : 'BGP withdrawal not confirmed; removing the addresses anyway');
    return confirmed;
  }

  close(): void {
    this.bgpd.close();
    this.bfdd.close();
  }
}
