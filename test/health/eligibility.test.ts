import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EligibilityGate } from '../../src/health/eligibility.js';
import type { HealthGate } from '../../src/health/livez.js';
import { createLogger } from '../../src/observe/log.js';

/** The local API server's health, set by the test. */
class LocalGate implements HealthGate {
  private readonly listeners = new Set<(healthy: boolean, reason: string) => void>();
  constructor(private ok: boolean) {}
  healthy(): boolean {
    return this.ok;
  }
  set(ok: boolean): void {
    this.ok = ok;
    for (const l of this.listeners) l(ok, ok ? 'local up' : 'local down');
  }
  onChange(l: (healthy: boolean, reason: string) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function otherApiServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const s = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    stop: () => new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    }),
  };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('EligibilityGate (peer-mode health gate)', () => {
  it('a node whose API server is down is eligible exactly while no other API server answers, probed afresh at each failure', async () => {
    const other = await otherApiServer();
    const local = new LocalGate(true);
    const client = { localEndpoint: () => 'http://127.0.0.1:1', endpoints: () => ['http://127.0.0.1:1', other.url], httpsOptions: async () => ({}) };
    const gate = new EligibilityGate({ local, client, intervalMs: 60_000, timeoutMs: 500, log: createLogger('silent') });
    const ac = new AbortController();
    const running = gate.run(ac.signal);
    try {
      expect(gate.healthy()).toBe(true);
      // Local down while another answers: not eligible once the others were probed (at once, not after the interval).
      local.set(false);
      await until(() => !gate.healthy());
      local.set(true);
      expect(gate.healthy()).toBe(true);
      // Now every API server is gone. The next local failure must not reuse "another answers".
      await other.stop();
      local.set(false);
      expect(gate.healthy()).toBe(true);
      await new Promise((r) => setTimeout(r, 700)); // the probe of the other (timeout 500 ms) is over
      expect(gate.healthy()).toBe(true);
    } finally {
      ac.abort();
      await running;
    }
  });
});
