/**
 * The agent's real situation: API servers on their own addresses (198.18.0.11-13 on lo inside one
 * network namespace this test creates), publishing themselves in the `kubernetes` EndpointSlice.
 * A vipd Lease elector runs as a separate process in that namespace, configured with ONLY its
 * local API server; it learns the others from the EndpointSlice. Its own API server dies: it keeps
 * the Lease through a learned endpoint, and SIGTERM still releases it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { distEntry } from '../../../lab/agents.js';
import { startControlPlane, type ControlPlane } from '../../../lab/apiserver.js';
import { describeWithApi } from '../../lab/with-api.js';

const sh = (argv: string[]) =>
  new Promise<string>((resolve, reject) => execFile(argv[0]!, argv.slice(1), (err, out, errOut) => (err ? reject(new Error(`${argv.join(' ')}: ${errOut || err.message}`)) : resolve(out))));

const ETCD = '198.18.0.10';
const ADDRS = ['198.18.0.11', '198.18.0.12', '198.18.0.13'];
const LD = 3000;

/** Runs in the namespace: the wired elector, verdicts as JSON lines on stdout, SIGTERM = shutdown. */
const CHILD = `
const { buildLeaseElection, suggestedRequestTimeoutMs } = await import(process.env.SETUP_URL);
const { validateLeaseTiming } = await import(process.env.STATE_URL);
const { ApiClient } = await import(process.env.CLIENT_URL);
const { createLogger } = await import(process.env.LOG_URL);
const e = process.env;
const log = createLogger();
const timing = validateLeaseTiming({ leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 });
const client = await ApiClient.create({
  kubeconfigPath: e.KUBECONFIG_FILE, localEndpoint: e.LOCAL, endpointsCachePath: e.CACHE,
  excludeAddresses: [e.SELF], requestTimeoutMs: suggestedRequestTimeoutMs(timing), log,
});
const setup = buildLeaseElection({ client, identity: e.NODE, namespace: 'kube-system', name: e.LEASE, timing, livez: false, log });
const out = (o) => process.stdout.write(JSON.stringify({ t: Number(process.hrtime.bigint() / 1000n) / 1000, ...o }) + '\\n');
setup.elector.onVerdict((v) => out({ v }));
const ac = new AbortController();
process.on('SIGTERM', () => ac.abort());
const timer = setInterval(() => out({ endpoints: client.endpoints() }), 250);
await Promise.all([setup.run(ac.signal), client.run(ac.signal)]);
client.close();
clearInterval(timer);
out({ done: true });
`;

interface Line {
  t: number;
  v?: { kind: string; until?: number; leader?: string; reason: string };
  endpoints?: string[];
  done?: boolean;
}

describeWithApi('Lease elector in a network namespace with EndpointSlice discovery', (assetsDir) => {
  const isRoot = process.getuid?.() === 0;
  const ns = `vipd-${process.pid}-${randomBytes(3).toString('hex')}-lease`;
  let cp: ControlPlane | undefined;
  let dir = '';
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    if (!isRoot) return;
    await sh(['ip', 'netns', 'add', ns]);
    await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    // On lo: nothing leaves the namespace.
    for (const a of [ETCD, ...ADDRS]) await sh(['ip', '-n', ns, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    cp = await startControlPlane({ assetsDir, servers: ADDRS.map((bindAddress) => ({ netns: ns, bindAddress })), etcdNetns: ns, etcdAddress: ETCD });
    dir = await mkdtemp(join(tmpdir(), 'vipd-lease-netns-'));
  }, 300_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await cp?.destroy();
    if (isRoot) await sh(['ip', 'netns', 'del', ns]).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it.skipIf(!isRoot)('learns the other API servers, survives the death of its own, and still releases on SIGTERM', async () => {
    const c = cp!;
    const [s1, s2] = c.servers;
    // The reconcilers publish every server.
    const slice = async () => {
      const r = await c.request('GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes', undefined, s2);
      return (JSON.parse(r.body) as { items: Array<{ endpoints?: Array<{ addresses: string[] }> }> }).items.flatMap((i) => (i.endpoints ?? []).flatMap((e) => e.addresses)).sort();
    };
    for (let i = 0; (await slice()).length < 3; i++) {
      if (i > 120) throw new Error('EndpointSlice never listed three API servers');
      await new Promise((r) => setTimeout(r, 500));
    }
    const cache = join(dir, 'endpoints.json');
    const lease = 'vip-netns';
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', CHILD], {
      env: {
        ...process.env,
        SETUP_URL: pathToFileURL(distEntry('src/election/lease/setup.js')).href,
        STATE_URL: pathToFileURL(distEntry('src/election/lease/state.js')).href,
        CLIENT_URL: pathToFileURL(distEntry('src/k8s/client.js')).href,
        LOG_URL: pathToFileURL(distEntry('src/observe/log.js')).href,
        NODE: 'n1',
        LEASE: lease,
        KUBECONFIG_FILE: await c.serviceAccountKubeconfig(s1),
        LOCAL: s1!.url,
        SELF: ADDRS[0],
        CACHE: cache,
        VIPD_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines: Line[] = [];
    createInterface(child.stdout!).on('line', (l) => lines.push(JSON.parse(l) as Line));
    const waitLine = async (pred: (l: Line) => boolean, ms: number, what: string) => {
      const end = Date.now() + ms;
      for (;;) {
        const hit = lines.find(pred);
        if (hit) return hit;
        if (Date.now() > end || child.exitCode !== null) throw new Error(`no ${what} within ${ms} ms; child stderr:\n${stderr.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await waitLine((l) => l.v?.kind === 'hold', 20_000, 'hold');
    const expected = ADDRS.slice(1).map((a) => `https://${a}:6443`);
    await waitLine((l) => (l.endpoints ?? []).length === 3, 10_000, 'learned endpoints');
    expect(JSON.parse(await readFile(cache, 'utf8'))).toMatchObject({ endpoints: expected });

    // The node's own API server dies; the agent lives on.
    const before = lines.length;
    await s1!.stop();
    await new Promise((r) => setTimeout(r, LD + 1000));
    const after = lines.slice(before);
    expect(after.filter((l) => l.v?.kind === 'standby')).toEqual([]);
    expect(after.filter((l) => l.v?.kind === 'hold').length).toBeGreaterThan(3);
    const leaseNow = async () =>
      (JSON.parse((await c.request('GET', `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${lease}`, undefined, s2)).body) as { spec: { holderIdentity?: string } }).spec.holderIdentity ?? '';
    expect(await leaseNow()).toBe('n1');

    // SIGTERM: standby, then the release goes through a learned endpoint.
    const tTerm = lines.length;
    child.kill('SIGTERM');
    const done = await waitLine((l) => l.done === true, 10_000, 'clean exit');
    const standby = lines.slice(tTerm).find((l) => l.v?.kind === 'standby');
    expect(standby).toBeDefined();
    expect(standby!.t).toBeLessThanOrEqual(done.t);
    await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
    expect(child.exitCode).toBe(0);
    expect(await leaseNow()).toBe('');
    await s1!.start();
  }, 120_000);
});
