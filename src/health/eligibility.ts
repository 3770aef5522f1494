/**
 * Peer-mode eligibility: may this node hold the control-plane VIP?
 *
 * Yes while its own API server answers /livez (docs/design.md, rule 5), and also while NO API server of the
 * control plane answers: then moving the VIP cannot reach a working API anyway, and the VIP is what
 * the first `kubeadm init` and every recovery need (kubelet and kubeadm talk to the VIP). So a node
 * with a dead API server gives the VIP up exactly when another node could serve it.
 */
import type { ApiClient } from '../k8s/client.js';
import type { Logger } from '../observe/log.js';
import { sleep, withSignal } from '../util/signals.js';
import { LivezProbe, type HealthGate } from './livez.js';

export interface EligibilityOptions {
  local: HealthGate;
  /** Where the other API servers are: the agent's client (its learned endpoints). */
  client: Pick<ApiClient, 'localEndpoint' | 'endpoints' | 'httpsOptions'>;
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
}

export class EligibilityGate implements HealthGate {
  private othersHealthy = false;
  private last: boolean;
  private readonly listeners = new Set<(healthy: boolean, reason: string) => void>();

  private wake: (() => void) | undefined;

  constructor(private readonly o: EligibilityOptions) {
    this.last = this.healthy();
    o.local.onChange((localHealthy, reason) => {
      // What the others said is known only while we probe them (the local one down). Kept across
      // a recovery, a stale "another answers" would close the gate at the next local failure
      // before anyone probed: when every API server goes away one after another, the VIP moved
      // away and back (A→B→A) although nobody could serve. Forget it; the next failure probes afresh.
      if (localHealthy) this.othersHealthy = false;
      this.update(reason);
      this.wake?.(); // probe the others now, not at the next interval
    });
  }

  private async pause(signal: AbortSignal): Promise<void> {
    const woken = new AbortController();
    this.wake = () => woken.abort();
    await withSignal([signal, woken.signal], undefined, (s) => sleep(this.o.intervalMs, s));
    this.wake = undefined;
  }

  healthy(): boolean {
    return this.o.local.healthy() || !this.othersHealthy;
  }

  onChange(listener: (healthy: boolean, reason: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private update(reason: string): void {
    const now = this.healthy();
    if (now === this.last) return;
    this.last = now;
    this.o.log.info({ eligible: now, localHealthy: this.o.local.healthy(), othersHealthy: this.othersHealthy, reason }, now ? 'eligible to hold the VIP' : 'not eligible to hold the VIP');
    for (const l of [...this.listeners]) l(now, reason);
  }

  /**
   * Probes the other known API servers' /livez while the signal is live, but only while the local
   * one is unhealthy: a healthy node is eligible whatever the others say, and the probes are API
   * load on every control-plane node.
   */
  async run(signal: AbortSignal): Promise<void> {
    const probes = new Map<string, LivezProbe>();
    while (!signal.aborted) {
      if (this.o.local.healthy()) {
        await this.pause(signal);
        continue;
      }
      const local = this.o.client.localEndpoint();
      const others = this.o.client.endpoints().filter((e) => e !== local);
      for (const e of others) {
        if (!probes.has(e)) {
          probes.set(e, new LivezProbe({ url: `${e}/livez`, timeoutMs: this.o.timeoutMs, requestOptions: () => this.o.client.httpsOptions(e), log: this.o.log }));
        }
      }
      const results = await Promise.all(others.map((e) => probes.get(e)!.probeOnce(signal).catch(() => ({ ok: false as const }))));
      if (signal.aborted) break;
      const any = results.some((r) => r.ok);
      if (any !== this.othersHealthy) {
        this.othersHealthy = any;
        this.update(any ? 'another API server answers /livez' : 'no other API server answers /livez');
      }
      await this.pause(signal);
    }
  }
}
