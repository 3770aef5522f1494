import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startObserveServer, type ObserveServer } from '../../src/observe/http.js';
import { createLogger } from '../../src/observe/log.js';
import { registry } from '../../src/observe/metrics.js';
import { buildStatus } from '../../src/observe/status.js';
import { statusCommand } from '../../src/observe/status-command.js';

const log = createLogger('silent');
const open: ObserveServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

const report = buildStatus({ node: 'cp1', election: 'lease', now: 10_000, vips: [{ ip: '198.18.0.10', state: { kind: 'holding', since: 7000, until: 12_000 } }] });

async function agent(): Promise<number> {
  const s = await startObserveServer({ listen: { host: '127.0.0.1', port: 0 }, registry, ready: () => true, healthy: () => true, status: () => report, log });
  open.push(s);
  return s.port;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await statusCommand(argv, { env, out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('vipd status (against a real listener on loopback)', () => {
  it('prints the text view, or the JSON as the agent sent it with --json', async () => {
    const port = await agent();
    const text = await run(['--address', `127.0.0.1:${port}`]);
    expect(text).toEqual({ code: 0, out: 'node cp1, election lease\n  VIP 198.18.0.10: HOLDING for 3.0 s, grant 2.0 s left\n', err: '' });
    const json = await run([`--address=127.0.0.1:${port}`, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual(report);
  });

  it('takes the default address from the prometheus_server setting, asking loopback for ":port"', async () => {
    const port = await agent();
    expect((await run([], { prometheus_server: `:${port}` })).code).toBe(0);
  });

  it('one line and exit 1 when the agent cannot be reached', async () => {
    const port = await closedPort();
    expect(await run(['--address', `127.0.0.1:${port}`])).toEqual({ code: 1, out: '', err: `vipd: cannot reach the agent at 127.0.0.1:${port}/status: ECONNREFUSED\n` });
  });

  it('bad input is exit 2 and names what is wrong', async () => {
    expect((await run(['--address', 'nope'])).err).toMatch(/^vipd: invalid setting --address="nope": must be \[host\]:port/);
    expect((await run(['--address'])).code).toBe(2);
    expect((await run(['--bogus'])).code).toBe(2);
    expect((await run([], { prometheus_server: '' })).err).toContain('prometheus_server');
  });
});
