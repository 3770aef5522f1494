/**
 * The image build, proven on this machine: no Docker engine runs here, so the test runs the very
 * script the Dockerfile's build stage runs (scripts/build-release.sh) into a temporary folder and
 * then uses the result the way the image does (`node /opt/vipd/dist/src/cli.js`), including, as
 * root, the agent with only NET_ADMIN + NET_RAW and a read-only /proc/sys, like the manifests'
 * container. The Dockerfile and .dockerignore are checked to run that script on those sources.
 *
 * VIPD_RELEASE_DIR=/opt/vipd uses an existing release instead of building one (for example inside
 * the image).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCUMENTED_ARGS } from '../../src/manifest/files.js';
import { strictArpScript } from '../../src/manifest/generate.js';
import { AGENT_NODE_FLAGS } from '../../src/node-flags.js';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const isRoot = process.getuid?.() === 0;
const SOURCES = ['package.json', 'package-lock.json', 'tsconfig.json', 'binding.gyp', 'native', 'src'];

let release = process.env.VIPD_RELEASE_DIR ?? '';
let scratch = '';

beforeAll(async () => {
  if (release) return;
  scratch = await mkdtemp(join(tmpdir(), 'vipd-release-test-'));
  release = join(scratch, 'opt-vipd');
  try {
    await exec('bash', [join(ROOT, 'scripts/build-release.sh'), release], { timeout: 600_000, maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`scripts/build-release.sh failed:\n${(e.stderr ?? String(err)).split('\n').slice(-30).join('\n')}`);
  }
}, 660_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [join(release, 'dist/src/cli.js'), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, cwd: tmpdir() });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('release tree (scripts/build-release.sh)', () => {
  it('holds the compiled CLI, the addon and production dependencies only', () => {
    for (const p of ['package.json', 'dist/src/cli.js', 'dist/src/app/agent.js', 'build/Release/afpacket.node', 'node_modules/@kubernetes/client-node', 'node_modules/netlink', 'node_modules/prom-client', 'node_modules/pino']) {
      expect(existsSync(join(release, p)), p).toBe(true);
    }
    for (const p of ['node_modules/typescript', 'node_modules/vitest', 'node_modules/fast-check', 'node_modules/node-gyp', 'dist/test', 'dist/lab', 'dist/src/lab', 'dist/bench', 'src', 'native', 'scripts']) {
      expect(existsSync(join(release, p)), p).toBe(false);
    }
  });

  it('`vipd version` prints the package version', async () => {
    expect(await cli(['version'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('`vipd lab` says in one line that the lab needs a clone, and exits 2', async () => {
    expect(await cli(['lab'])).toEqual({ code: 2, stdout: '', stderr: 'vipd: the lab is not part of the release; from a clone of the repository run: sudo npm run lab\n' });
  });

  it('a configuration error exits 2 with one line and touches nothing', async () => {
    const r = await cli(['run']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^vipd: invalid setting address: is required[^\n]*\n$/);
    const bad = await cli(['run'], { address: '192.0.2.10', vip_arp: 'false' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('vip_arp');
  });

  it('generates the same manifests as the source tree', async () => {
    for (const kind of ['pod', 'daemonset', 'rbac'] as const) {
      const r = await cli(['manifest', kind, ...DOCUMENTED_ARGS[kind]], { vip_nodename: 'cp1' });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(readFileSync(join(ROOT, 'manifests', `${kind}.yaml`), 'utf8'));
    }
  });
});

describe.skipIf(!isRoot)('release agent with only NET_ADMIN + NET_RAW and read-only /proc/sys (network namespace)', () => {
  const ns = `vipd-${process.pid}-${randomBytes(3).toString('hex')}-img`;
  const VIP = '198.18.0.100';

  beforeAll(async () => {
    await exec('ip', ['netns', 'add', ns]);
    // One veth pair with both ends inside the namespace: frames stay there.
    await exec('ip', ['-n', ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    for (const l of ['lo', 'd0', 'd1']) await exec('ip', ['-n', ns, 'link', 'set', l, 'up']);
    await exec('ip', ['-n', ns, 'addr', 'add', '198.18.0.1/24', 'dev', 'd0']);
    // What the manifests' init container does, privileged, before the agent starts.
    await exec('ip', ['netns', 'exec', ns, 'sh', '-c', strictArpScript('d0')]);
  });

  afterAll(async () => {
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  /** Starts the release agent the way the container runs it: bounding set = `caps`, /proc/sys read-only. */
  function agent(caps: string[]) {
    const inner = 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec setpriv --bounding-set="$0" --inh-caps=-all -- "$@"';
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', inner, ['-all', ...caps.map((c) => `+${c}`)].join(','), process.execPath, join(release, 'dist/src/cli.js'), 'run', `--address=${VIP}`, '--vip_interface=d0', '--prometheus_server='],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    return { child, exited, log: () => log };
  }

  async function vipOnLo(): Promise<boolean> {
    return (await exec('ip', ['-n', ns, '-o', 'addr', 'show', 'dev', 'lo'])).stdout.includes(` ${VIP}/32 `);
  }

  async function until(f: () => Promise<boolean>, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await f()) return true;
      await sleep(50);
    }
    return f();
  }

  it('holds the VIP, and on SIGTERM removes it and exits 0', async () => {
    const a = agent(['net_admin', 'net_raw']);
    try {
      expect(await until(vipOnLo, 10_000)).toBe(true);
      const status = readFileSync(`/proc/${a.child.pid}/status`, 'utf8');
      // Exactly CAP_NET_ADMIN (12) and CAP_NET_RAW (13), as with drop: ALL, add: [NET_ADMIN, NET_RAW].
      expect(status).toMatch(/^CapEff:\s*0000000000003000$/m);
      a.child.kill('SIGTERM');
      const [code] = await a.exited;
      expect(code).toBe(0);
      expect(await vipOnLo()).toBe(false);
    } finally {
      a.child.kill('SIGKILL');
    }
  }, 30_000);

  it('without NET_RAW it refuses to start, names the capability, exits 1 and adds nothing', async () => {
    const a = agent(['net_admin']);
    const [code] = await a.exited;
    expect(code).toBe(1);
    expect(a.log()).toMatch(/vipd needs the capabilities NET_RAW \(/);
    expect(await vipOnLo()).toBe(false);
  }, 30_000);

  it('without NET_ADMIN it refuses to start, names the capability, exits 1 and the VIP never appears', async () => {
    const a = agent(['net_raw']);
    const [code] = await a.exited;
    expect(code).toBe(1);
    expect(a.log()).toMatch(/vipd needs the capabilities NET_ADMIN \(/);
    expect(await vipOnLo()).toBe(false);
  }, 30_000);
});

describe('Dockerfile and .dockerignore', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));

  it('builds with scripts/build-release.sh on Node 20 bookworm and runs the result on the slim image', () => {
    const from = lines.filter((l) => l.startsWith('FROM '));
    expect(from).toEqual(['FROM ${BUILD_BASE} AS build', 'FROM ${RUNTIME_BASE}']);
    // The bases are arguments (the cluster lab names images it made offline), but a plain
    // `docker build` still gets the registry's node 20 bookworm images.
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=20$/m);
    expect(dockerfile).toMatch(/^ARG BUILD_BASE=node:\$\{NODE_VERSION\}-bookworm$/m);
    expect(dockerfile).toMatch(/^ARG RUNTIME_BASE=node:\$\{NODE_VERSION\}-bookworm-slim$/m);
    expect(lines).toContain('RUN bash scripts/build-release.sh /opt/vipd');
    expect(lines).toContain('COPY --from=build /opt/vipd /opt/vipd');
    expect(lines).toContain(`ENTRYPOINT ${JSON.stringify(['node', ...AGENT_NODE_FLAGS, '/opt/vipd/dist/src/cli.js']).replaceAll(',', ', ')}`);
    expect(lines).toContain('CMD ["run"]');
  });

  it('copies every source the script needs into the build stage, and the context allows them', () => {
    const copied = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const s of SOURCES) expect(copied, s).toContain(s);
    expect(copied).toContain('scripts/build-release.sh');
    // The script copies exactly these into its scratch folder.
    const script = readFileSync(join(ROOT, 'scripts/build-release.sh'), 'utf8');
    const cps = [...script.matchAll(/^cp -a ((?:"\$root\/[^"]+" )+)"\$work\/"$/gm)].flatMap((m) => [...m[1]!.matchAll(/\$root\/([^"]+)/g)].map((x) => x[1]));
    expect(cps.sort()).toEqual([...SOURCES].sort());
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    for (const s of [...SOURCES, 'scripts/build-release.sh']) expect(ignore.some((l) => l === `!${s}` || l === `!${s}/`), s).toBe(true);
  });
});
