/**
 * The UDP driver (src/election/peers/driver.ts) with real sockets and timers on 127.0.0.1: three
 * instances elect exactly one leader; a clean stop hands over; an instance with the wrong key is
 * never acted on (its packets are counted as bad-mac) and never holds. Deadlines below are generous
 * bounds, not measurements.
 */
import { createHmac } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { createLogger } from '../../src/observe/log.js';
import { metrics } from '../../src/observe/metrics.js';
import { PeerElector } from '../../src/election/peers/driver.js';
import type { Verdict } from '../../src/election/types.js';

const KEY = createHmac('sha256', 'loopback').update('cluster').digest();
const WRONG = createHmac('sha256', 'loopback').update('wrong').digest();
const NAMES = ['n1', 'n2', 'n3'];
const log = createLogger('silent');

async function freePorts(n: number): Promise<number[]> {
  const socks = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createSocket>>((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = socks.map((s) => s.address().port);
  for (const s of socks) s.close();
  return ports;
}

interface Running {
  name: string;
  elector: PeerElector;
  abort: AbortController;
  done: Promise<void>;
  verdict: Verdict;
}

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.abort.abort();
    await r.done;
  }
});

async function cluster(keys: Record<string, Buffer> = {}): Promise<Running[]> {
  const ports = await freePorts(3);
  const addresses = Object.fromEntries(NAMES.map((n, i) => [n, { host: '127.0.0.1', port: ports[i]! }]));
  return NAMES.map((name) => {
    const elector = new PeerElector({
      cfg: { self: name, peers: NAMES, heartbeatMs: 50, electionTimeoutMs: 250, lingerMs: 0, skew: 0.01, bootstrap: false },
      addresses,
      key: keys[name] ?? KEY,
      log,
    });
    const r: Running = { name, elector, abort: new AbortController(), done: Promise.resolve(), verdict: { kind: 'standby', reason: 'not started' } };
    elector.onVerdict((v) => {
      r.verdict = v;
    });
    r.done = elector.run(r.abort.signal);
    running.push(r);
    return r;
  });
}

const holding = (rs: Running[]) => rs.filter((r) => r.verdict.kind === 'hold' && r.verdict.until > performance.now());

async function until<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function badMacCount(): Promise<number> {
  const m = await metrics.peerMessages.get();
  return m.values.filter((v) => v.labels.outcome === 'bad-mac').reduce((a, v) => a + v.value, 0);
}

describe('peer elector on loopback UDP', () => {
  test('three instances elect one leader; a clean stop hands the VIP over', async () => {
    const rs = await cluster();
    const first = await until('a leader', () => (holding(rs).length === 1 ? holding(rs)[0] : undefined));
    // Stable: over many heartbeats there is never a second leader, and the followers name it.
    for (let i = 0; i < 30; i++) {
      expect(holding(rs).length).toBeLessThanOrEqual(1);
      await sleep(10);
    }
    for (const r of rs) if (r !== first) expect(r.verdict).toMatchObject({ kind: 'standby', leader: first.name });

    first.abort.abort();
    await first.done;
    expect(first.verdict.kind).toBe('standby');
    const rest = rs.filter((r) => r !== first);
    const next = await until('a new leader', () => (holding(rest).length === 1 ? holding(rest)[0] : undefined));
    expect(next.name).not.toBe(first.name);
  });

  test('an instance with the wrong key is ignored: the other two elect, it never holds', async () => {
    const before = await badMacCount();
    const rs = await cluster({ n3: WRONG });
    const h = await until('a leader', () => (holding(rs).length === 1 ? holding(rs)[0] : undefined));
    expect(h.name).not.toBe('n3');
    await sleep(600);
    expect(holding(rs).map((r) => r.name)).toEqual([h.name]);
    expect(rs.find((r) => r.name === 'n3')!.verdict.kind).toBe('standby');
    expect(await badMacCount()).toBeGreaterThan(before);
  });
});
