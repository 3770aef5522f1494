import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LivezProbe, stepHealth } from '../../src/health/livez.js';

describe('stepHealth (fall/rise counting)', () => {
  const th = { failureThreshold: 3, successThreshold: 2 };
  it('closes after 3 consecutive failures and opens after 2 consecutive successes', () => {
    let s = { healthy: true, streak: 0 };
    const seq: Array<[boolean, boolean]> = [];
    for (const ok of [false, false, true, false, false, false, true, false, true, true]) {
      const r = stepHealth(s, ok, th);
      s = r.next;
      seq.push([s.healthy, r.flipped]);
    }
    expect(seq).toEqual([
      [true, false],
      [true, false],
      [true, false], // a success resets the failure streak
      [true, false],
      [true, false],
      [false, true],
      [false, false],
      [false, false], // a failure resets the success streak
      [false, false],
      [true, true],
    ]);
  });
});

describe('LivezProbe against a local HTTP server', () => {
  let server: http.Server | undefined;
  let mode: 'ok' | 'fail' | 'hang' = 'ok';
  const ac = new AbortController();
  afterEach(async () => {
    ac.abort();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  it('starts closed, opens on the first success, closes after N failures or timeouts, reports each change', async () => {
    server = http.createServer((req, res) => {
      if (mode === 'hang') return; // never answers, like a SIGSTOPped server
      res.statusCode = mode === 'ok' ? 200 : 500;
      res.end(mode === 'ok' ? 'ok' : '[-]etcd failed: reason withheld\nlivez check failed');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const probe = new LivezProbe({ url: `http://127.0.0.1:${port}/livez`, intervalMs: 50, timeoutMs: 40, failureThreshold: 3 });
    const changes: Array<{ healthy: boolean; reason: string; at: number }> = [];
    probe.onChange((healthy, reason) => changes.push({ healthy, reason, at: performance.now() }));
    expect(probe.healthy()).toBe(false);
    void probe.run(ac.signal);
    const until = async (c: () => boolean) => {
      const end = performance.now() + 3000;
      while (!c()) {
        if (performance.now() > end) throw new Error('timeout');
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await until(() => probe.healthy());
    mode = 'fail';
    const t0 = performance.now();
    await until(() => !probe.healthy());
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90); // three probes 50 ms apart
    expect(changes.at(-1)?.reason).toMatch(/HTTP 500: .*etcd failed/);
    mode = 'ok';
    await until(() => probe.healthy());
    mode = 'hang';
    await until(() => !probe.healthy());
    expect(changes.at(-1)?.reason).toMatch(/no answer within 40 ms/);
    expect(changes.map((c) => c.healthy)).toEqual([true, false, true, false]);
  });

  it('a refused connection is a failure', async () => {
    const probe = new LivezProbe({ url: 'http://127.0.0.1:1/livez', timeoutMs: 200 });
    const r = await probe.probeOnce();
    expect(r).toMatchObject({ ok: false, detail: 'ECONNREFUSED' });
  });

  it('rejects nonsense settings', () => {
    expect(() => new LivezProbe({ failureThreshold: 0 })).toThrow(/failureThreshold \(0\) must be a positive number/);
  });
});
