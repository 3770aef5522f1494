import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/index.js';
import { parseListenAddress } from '../../src/config/settings.js';
import { startObserve } from '../../src/app/agent.js';
import { ListenError, startObserveServer, type ObserveServer, type ObserveServerOptions } from '../../src/observe/http.js';
import { hostPort } from '../../src/net/ip.js';
import { createLogger } from '../../src/observe/log.js';
import { registry as processRegistry, metrics } from '../../src/observe/metrics.js';

const log = createLogger('silent');
const open: ObserveServer[] = [];

async function start(o: Partial<ObserveServerOptions> = {}): Promise<ObserveServer> {
  const s = await startObserveServer({ listen: { host: '127.0.0.1', port: 0 }, registry: processRegistry, ready: () => true, healthy: () => true, log, ...o });
  open.push(s);
  return s;
}

async function get(port: number, path: string, method = 'GET', host = '127.0.0.1'): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`http://${hostPort(host, port)}${path}`, { method });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

describe('parseListenAddress', () => {
  it('reads the prometheus_server forms', () => {
    const parse = (raw: string) => parseListenAddress(raw, 'prometheus_server');
    expect(parse(':2112')).toEqual({ host: undefined, port: 2112 });
    expect(parse('127.0.0.1:2112')).toEqual({ host: '127.0.0.1', port: 2112 });
    expect(parse('[::1]:9100')).toEqual({ host: '::1', port: 9100 });
    expect(() => parse('2112')).toThrow(ConfigError);
  });
});

describe('observe HTTP server (loopback)', () => {
  it('serves the process registry on /metrics in Prometheus text format', async () => {
    metrics.conflicts.inc({ vip: '198.18.0.100' });
    const s = await start();
    const r = await get(s.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toBe(processRegistry.contentType);
    expect(r.body).toMatch(/^vipd_conflicts_total\{vip="198\.18\.0\.100"\} \d+$/m);
    expect(r.body).toContain('# TYPE vipd_vip_holding gauge');
    expect(r.body).toContain('vipd_process_'); // default process metrics, prefixed
  });

  it('serves whatever registry it is given', async () => {
    const reg = new Registry();
    new Counter({ name: 'only_here_total', help: 'x', registers: [reg] }).inc(3);
    const s = await start({ registry: reg });
    const r = await get(s.port, '/metrics');
    expect(r.body).toContain('only_here_total 3');
    expect(r.body).not.toContain('vipd_vip_holding');
  });

  it('/readyz follows ready(), /healthz follows healthy()', async () => {
    let ready = false;
    let healthy = true;
    const s = await start({ ready: () => ready, healthy: () => healthy });
    expect((await get(s.port, '/readyz')).status).toBe(503);
    expect((await get(s.port, '/readyz?verbose')).body).toContain('[-]agent failed: not started');
    ready = true;
    expect(await get(s.port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(s.port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(s.port, '/healthz?verbose')).body).toBe('[+]agent ok\n[+]eventloop ok\nhealthz check passed\n');
    healthy = false;
    expect((await get(s.port, '/healthz')).status).toBe(503);
  });

  it('a check that throws fails the probe instead of the server', async () => {
    const s = await start({
      healthy: () => {
        throw new Error('boom');
      },
    });
    expect((await get(s.port, '/healthz')).status).toBe(503);
    expect((await get(s.port, '/metrics')).status).toBe(200);
  });

  it('/healthz fails for a while after the event loop was blocked, then recovers', async () => {
    const s = await start({ stallMs: 150, stallWindowMs: 600, tickMs: 20 });
    expect((await get(s.port, '/healthz')).status).toBe(200);
    const until = performance.now() + 400;
    while (performance.now() < until) {
      // a synchronous busy loop: no timer, no socket callback runs
    }
    await sleep(60); // let the watchdog's late tick run
    const r = await get(s.port, '/healthz?verbose');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/\[-\]eventloop failed: blocked for \d+ ms/);
    await sleep(800);
    expect((await get(s.port, '/healthz')).status).toBe(200);
  });

  it('HEAD works, other methods and paths are refused', async () => {
    const s = await start();
    expect(await get(s.port, '/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
    expect((await get(s.port, '/metrics', 'POST')).status).toBe(405);
    expect((await get(s.port, '/')).status).toBe(404);
  });

  it('serves /status as JSON built at each request, 404 when the agent gives none, 500 when building fails', async () => {
    let n = 0;
    const s = await start({ status: () => ({ node: 'cp1', n: ++n }) });
    const a = await get(s.port, '/status');
    expect(a).toMatchObject({ status: 200, type: 'application/json' });
    expect(JSON.parse(a.body)).toEqual({ node: 'cp1', n: 1 });
    expect(JSON.parse((await get(s.port, '/status')).body)).toEqual({ node: 'cp1', n: 2 });
    const none = await start();
    expect((await get(none.port, '/status')).status).toBe(404);
    const broken = await start({
      status: () => {
        throw new Error('boom');
      },
    });
    expect((await get(broken.port, '/status')).status).toBe(500);
    expect((await get(broken.port, '/healthz')).status).toBe(200);
  });

  it('listens on IPv6 loopback and on every address with ":port"', async () => {
    const v6 = await start({ listen: { host: '::1', port: 0 } });
    expect((await get(v6.port, '/healthz', 'GET', '::1')).status).toBe(200);
    const any = await start({ listen: { host: undefined, port: 0 } });
    expect((await get(any.port, '/healthz', 'GET', '127.0.0.1')).status).toBe(200);
    expect((await get(any.port, '/healthz', 'GET', '::1')).status).toBe(200);
  });

  it('a port in use is a ConfigError naming prometheus_server', async () => {
    const first = await start();
    const busy = { host: '127.0.0.1', port: first.port };
    expect(await startObserveServer({ listen: busy, registry: processRegistry, ready: () => true, healthy: () => true, log }).catch((e: unknown) => e)).toBeInstanceOf(ListenError);
    // The agent names the setting.
    const err = await startObserve(busy, { ready: () => true, log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).setting).toBe('prometheus_server');
    expect((err as ConfigError).message).toContain('EADDRINUSE');
  });

  it('close() frees the port, even with a keep-alive connection open, and is idempotent', async () => {
    const s = await startObserveServer({ listen: { host: '127.0.0.1', port: 0 }, registry: processRegistry, ready: () => true, healthy: () => true, log });
    await get(s.port, '/metrics'); // fetch keeps the connection alive
    await Promise.all([s.close(), s.close()]);
    expect(await refused(s.port)).toBe(true);
  });
});
