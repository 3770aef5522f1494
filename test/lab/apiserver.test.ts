import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  type ApiConstructor,
  type ApiType,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  V1MicroTime,
  type V1Lease,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, sweepOrphanedControlPlanes, type ApiServerHandle, type ControlPlane } from '../../lab/apiserver.js';
import { apiAssets, assetsFolderName, pinnedAssetVersions, projectRoot } from '../../lab/k8s-assets.js';
import { describeWithApi } from './with-api.js';

function client<T extends ApiType>(kubeconfig: string, api: ApiConstructor<T>): T {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc.makeApiClient(api);
}

/** The HTTP status of a failed client-node call (the test fails if the call succeeds). */
async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
  throw new Error('expected the call to be refused');
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(2_000);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function endpointOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

/** Everything a teardown must have ended: process ids and listening endpoints. */
function footprint(cp: ControlPlane): { pids: number[]; endpoints: Array<{ host: string; port: number }> } {
  return {
    pids: [cp.etcd.pid, ...cp.servers.map((s) => s.pid)],
    endpoints: [endpointOf(cp.etcd.url), ...cp.servers.map((s) => endpointOf(s.url))],
  };
}

async function expectNothingLeft(fp: ReturnType<typeof footprint>, dir: string): Promise<void> {
  for (const pid of fp.pids) expect(gone(pid), `pid ${pid} still exists`).toBe(true);
  for (const e of fp.endpoints) expect(await refused(e.host, e.port), `${e.host}:${e.port} still accepts connections`).toBe(true);
  expect(existsSync(dir), `${dir} still exists`).toBe(false);
}

const lease = (name: string, holder: string): V1Lease => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name, namespace: 'kube-system' },
  spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new V1MicroTime() },
});

describeWithApi('control plane: one kube-apiserver + etcd', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ certIps: ['198.18.0.100'], certNames: ['vip.lab.test'] });
  });
  afterAll(async () => {
    await cp?.destroy();
  });

  it('serves the admin with a client certificate in system:masters', async () => {
    const core = client(cp.adminKubeconfig, CoreV1Api);
    const names = (await core.listNamespace()).items.map((n) => n.metadata?.name);
    expect(names).toEqual(expect.arrayContaining(['default', 'kube-system']));
    // The admin may do what the agent may not.
    const secrets = await core.listNamespacedSecret({ namespace: 'kube-system' });
    expect(Array.isArray(secrets.items)).toBe(true);
  });

  it('gives the vipd ServiceAccount exactly what manifests/rbac.yaml grants', async () => {
    const sa = await cp.serviceAccountKubeconfig();
    const core = client(sa, CoreV1Api);
    const coord = client(sa, CoordinationV1Api);
    const discovery = client(sa, DiscoveryV1Api);

    // Granted.
    await core.listServiceForAllNamespaces();
    await core.listNode();
    await core.listNamespacedConfigMap({ namespace: 'kube-system' });
    await discovery.listNamespacedEndpointSlice({ namespace: 'default' });
    await coord.listNamespacedLease({ namespace: 'kube-system' });
    await core.listNamespace(); // MetalLB's namespaceSelectors need Namespace labels

    // Refused with 403 Forbidden.
    expect(await statusOf(core.listNamespacedSecret({ namespace: 'kube-system' }))).toBe(403);
    expect(await statusOf(coord.createNamespacedLease({ namespace: 'default', body: { ...lease('x', 'n1'), metadata: { name: 'x', namespace: 'default' } } }))).toBe(403);
    expect(await statusOf(core.createNamespacedConfigMap({ namespace: 'kube-system', body: { metadata: { name: 'kubevip' } } }))).toBe(403);
    expect(await statusOf(core.listPodForAllNamespaces())).toBe(403);
  });

  it('refuses a stale Lease update with 409 Conflict', async () => {
    const coord = client(await cp.serviceAccountKubeconfig(), CoordinationV1Api);
    const created = await coord.createNamespacedLease({ namespace: 'kube-system', body: lease('vipd-test', 'node-a') });
    const rv1 = created.metadata?.resourceVersion;
    expect(rv1).toBeTruthy();

    const renewed = await coord.replaceNamespacedLease({
      name: 'vipd-test',
      namespace: 'kube-system',
      body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime() } },
    });
    expect(renewed.metadata?.resourceVersion).not.toBe(rv1);

    // A second contender still holding the old version loses: optimistic concurrency is what
    // makes the Lease a lock.
    const stale = { ...created, spec: { ...created.spec, holderIdentity: 'node-b' } };
    expect(await statusOf(coord.replaceNamespacedLease({ name: 'vipd-test', namespace: 'kube-system', body: stale }))).toBe(409);
    const now = await coord.readNamespacedLease({ name: 'vipd-test', namespace: 'kube-system' });
    expect(now.spec?.holderIdentity).toBe('node-a');
  });

  it('serves a certificate that names the VIP and the usual service names', async () => {
    const server = cp.servers[0]!;
    const { host, port } = endpointOf(server.url);
    const { connect } = await import('node:tls');
    const cert = await new Promise<import('node:tls').PeerCertificate>((resolve, reject) => {
      const s = connect({ host, port, ca: cp.caPem, servername: 'kubernetes.default.svc' }, () => {
        resolve(s.getPeerCertificate());
        s.destroy();
      });
      s.once('error', reject);
    });
    for (const want of ['IP Address:198.18.0.100', 'IP Address:127.0.0.1', 'DNS:vip.lab.test', 'DNS:kubernetes.default.svc', 'DNS:localhost']) {
      expect(cert.subjectaltname).toContain(want);
    }
  });

  it('tears down completely: no process, no listener, no files', async () => {
    const fp = footprint(cp);
    await cp.destroy();
    await expectNothingLeft(fp, cp.dir);
  });
});

describeWithApi('control plane: three kube-apiservers sharing one etcd on loopback', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ servers: [{}, {}, {}] });
  }, 300_000);
  afterAll(async () => {
    await cp?.destroy();
  });

  const coordVia = (s: ApiServerHandle): CoordinationV1Api => client(s.adminKubeconfig, CoordinationV1Api);

  it('each server binds and advertises its own address, and all see the same data', async () => {
    expect(cp.servers.map((s) => s.address)).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    const [a, b, c] = cp.servers as [ApiServerHandle, ApiServerHandle, ApiServerHandle];
    await coordVia(a).createNamespacedLease({ namespace: 'kube-system', body: lease('shared', 'node-a') });
    expect((await coordVia(c).readNamespacedLease({ name: 'shared', namespace: 'kube-system' })).spec?.holderIdentity).toBe('node-a');
    expect((await coordVia(b).readNamespacedLease({ name: 'shared', namespace: 'kube-system' })).spec?.holderIdentity).toBe('node-a');

  });

  it('a frozen server answers nothing while the others serve; thawed, it serves again', async () => {
    const [a, b, c] = cp.servers as [ApiServerHandle, ApiServerHandle, ApiServerHandle];
    b.freeze();
    expect(b.state).toBe('frozen');
    await expect(b.ready()).rejects.toThrow(/timeout/);
    await coordVia(a).readNamespacedLease({ name: 'shared', namespace: 'kube-system' });
    await coordVia(c).readNamespacedLease({ name: 'shared', namespace: 'kube-system' });
    b.thaw();
    expect(b.state).toBe('running');
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) ok = await b.ready().catch(() => false);
    expect(ok).toBe(true);
  });

  it('a stopped server closes its port and comes back on restart', async () => {
    const c = cp.servers[2]!;
    const { host, port } = endpointOf(c.url);
    const oldPid = c.pid;
    await c.stop();
    expect(c.state).toBe('stopped');
    expect(gone(oldPid)).toBe(true);
    expect(await refused(host, port)).toBe(true);
    await coordVia(cp.servers[0]!).readNamespacedLease({ name: 'shared', namespace: 'kube-system' });
    await c.start();
    expect(c.state).toBe('running');
    expect(c.pid).not.toBe(oldPid);
    expect((await coordVia(c).readNamespacedLease({ name: 'shared', namespace: 'kube-system' })).spec?.holderIdentity).toBe('node-a');
  });

  it('tears down a frozen server too, leaving nothing behind', async () => {
    cp.servers[1]!.freeze();
    const fp = footprint(cp);
    await cp.destroy();
    await expectNothingLeft(fp, cp.dir);
  });
});

describeWithApi('control plane whose owner was killed', () => {
  // The owner is a separate node running the compiled harness (npm test builds first).
  const dist = join(projectRoot(), 'dist', 'lab', 'apiserver.js');
  it.skipIf(!existsSync(dist))('is swept by the next start: its processes ended, its folder removed', async () => {
    const owner = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import(${JSON.stringify(dist)}); const cp = await m.startControlPlane({ rbacManifest: false }); console.log(JSON.stringify({ pids: [cp.etcd.pid, cp.servers[0].pid], dir: cp.dir }));`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      owner.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      owner.once('exit', (code) => reject(new Error(`owner exited early (${code})`)));
    });
    const { pids, dir } = JSON.parse(line) as { pids: number[]; dir: string };
    owner.kill('SIGKILL'); // no exit hook runs: the processes are orphans now
    await new Promise((r) => owner.once('exit', r));
    for (const pid of pids) expect(gone(pid)).toBe(false);

    sweepOrphanedControlPlanes();
    for (let i = 0; i < 40 && !pids.every(gone); i++) await new Promise((r) => setTimeout(r, 250));
    for (const pid of pids) expect(gone(pid), `orphan ${pid} still there`).toBe(true);
    expect(existsSync(dir)).toBe(false);
  }, 180_000);
});

const sh = (argv: string[]): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), (err, stdout, stderr) => (err ? reject(new Error(`${argv.join(' ')}: ${stderr.trim()}`)) : resolve(stdout)));
  });

describeWithApi('control plane inside a network namespace', () => {
  // Three API servers and etcd on lab addresses in one namespace of our own; the test process
  // cannot reach them, so everything goes through the harness (which runs requests inside).
  describe.skipIf(process.getuid?.() !== 0)('as root', () => {
    const ns = `vipd-${process.pid}-${Math.random().toString(36).slice(2, 8)}-cp`;
    const addrs = ['198.18.0.11', '198.18.0.12', '198.18.0.13'];
    let cp: ControlPlane | undefined;
    const sliceAddresses = async (): Promise<string[]> => {
      const res = await cp!.request('GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes');
      expect(res.status).toBe(200);
      const list = JSON.parse(res.body) as { items: Array<{ endpoints?: Array<{ addresses: string[] }> }> };
      return list.items.flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses)).sort();
    };
    const eventually = async (what: string, check: () => Promise<boolean>): Promise<void> => {
      for (let i = 0; i < 120; i++) {
        if (await check()) return;
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(`not within 60 s: ${what}`);
    };

    beforeAll(async () => {
      await sh(['ip', 'netns', 'add', ns]);
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      // On lo: no dummy module needed, and nothing leaves the namespace.
      for (const a of ['198.18.0.10', ...addrs]) await sh(['ip', '-n', ns, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
      cp = await startControlPlane({
        servers: addrs.map((bindAddress) => ({ netns: ns, bindAddress })),
        etcdNetns: ns,
        etcdAddress: '198.18.0.10',
        certIps: ['198.18.0.100'],
      });
    }, 300_000);
    afterAll(async () => {
      await cp?.destroy();
      await sh(['ip', 'netns', 'del', ns]).catch(() => undefined);
    });

    it('publishes every API server in the `kubernetes` EndpointSlice, and drops a stopped one', async () => {
      expect(cp!.servers.map((s) => s.url)).toEqual(addrs.map((a) => `https://${a}:6443`));
      await eventually('three endpoints', async () => (await sliceAddresses()).length === 3);
      expect(await sliceAddresses()).toEqual(addrs);
      await cp!.servers[2]!.stop();
      await eventually('two endpoints after a stop', async () => (await sliceAddresses()).length === 2);
      expect(await sliceAddresses()).toEqual(addrs.slice(0, 2));
      await cp!.servers[2]!.start();
      await eventually('three endpoints after the restart', async () => (await sliceAddresses()).length === 3);
    });

    it('issues ServiceAccount tokens and freezes and thaws a server', async () => {
      expect((await cp!.serviceAccountToken()).split('.')).toHaveLength(3); // a JWT
      const b = cp!.servers[1]!;
      b.freeze();
      await expect(b.ready()).rejects.toThrow(/timeout/);
      expect((await cp!.request('GET', '/readyz', undefined, cp!.servers[0])).status).toBe(200);
      b.thaw();
      await eventually('ready after thaw', () => b.ready().catch(() => false));
    });

    it('tears down: no process left, nothing listening in the namespace', async () => {
      const pids = [cp!.etcd.pid, ...cp!.servers.map((s) => s.pid)];
      const dir = cp!.dir;
      await cp!.destroy();
      for (const pid of pids) expect(gone(pid), `pid ${pid}`).toBe(true);
      expect((await sh(['ip', 'netns', 'exec', ns, 'ss', '-Htln'])).trim()).toBe('');
      expect(existsSync(dir)).toBe(false);
    });
  });
});

// The asset lookup rules, without building anything.
describe('k8s:assets lookup', () => {
  const script = join(projectRoot(), 'scripts', 'k8s-assets.sh');
  const run = (env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile('bash', [script], { env, timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const lastLine = (s: string): string => s.trimEnd().split('\n').at(-1) ?? '';
  let scratch: string;
  const fakeAssets = async (dir: string): Promise<void> => {
    await mkdir(dir, { recursive: true });
    for (const bin of ['kube-apiserver', 'etcd']) {
      await writeFile(join(dir, bin), '#!/bin/sh\necho fake\n');
      await chmod(join(dir, bin), 0o755);
    }
  };
  // K8S_ASSETS_NO_BUILD: the script fails where it would otherwise start a build.
  const noGo = { PATH: process.env.PATH, HOME: process.env.HOME, K8S_ASSETS_NO_BUILD: '1' };

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'vipd-assets-test-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('uses KUBEBUILDER_ASSETS when it holds both binaries', async () => {
    const kb = join(scratch, 'kb');
    await fakeAssets(kb);
    const r = await run({ ...noGo, KUBEBUILDER_ASSETS: kb, VIPD_K8S_CACHE: join(scratch, 'empty-cache') });
    expect(r.code).toBe(0);
    expect(lastLine(r.stdout)).toBe(kb);
    expect(apiAssets({ KUBEBUILDER_ASSETS: kb }, scratch)).toEqual({ dir: kb });
  });

  it('returns a finished cache folder at once, and never takes an unfinished one', async () => {
    const versions = pinnedAssetVersions();
    expect(versions).toBeDefined();
    const cache = join(scratch, 'cache');
    const folder = join(cache, assetsFolderName(versions!));
    await fakeAssets(folder);

    // Both binaries but no stamp: a build that died before its rename. It needs a build.
    const unfinished = await run({ ...noGo, VIPD_K8S_CACHE: cache });
    expect(unfinished.code).not.toBe(0);
    expect(unfinished.stderr).toMatch(/would build/);

    await writeFile(join(folder, '.complete'), 'test\n');
    const t0 = performance.now();
    const finished = await run({ ...noGo, VIPD_K8S_CACHE: cache, KUBEBUILDER_ASSETS: join(scratch, 'missing') });
    expect(finished.code).toBe(0);
    expect(lastLine(finished.stdout)).toBe(folder);
    expect(performance.now() - t0).toBeLessThan(10_000); // "seconds", with a wide margin
  });

  it('tells how to enable the API suites when nothing is there', () => {
    const r = apiAssets({}, scratch);
    expect(r).toHaveProperty('skip');
    expect('skip' in r && r.skip).toMatch(/npm run k8s:assets.*KUBEBUILDER_ASSETS/);
  });
});
