/**
 * An FRR instance (zebra, bgpd, bfdd) inside one lab host's namespace, for BGP tests: the router
 * (lab/bgp.ts) and the nodes whose FRR vipd drives.
 *
 * - Every path is the instance's own (`<lab.tmpDir>/frr/<name>`: pid files, zserv.api, the vty
 *   sockets, the bfdd control socket), so instances in different namespaces never meet, and
 *   nothing of /etc/frr or /var/run/frr is used. vipd is given `vtyDir` to find bgpd.vty.
 * - The daemons stay in the foreground (no -d), started through lab.spawn, so lab.destroy() kills
 *   them and lab.output() keeps their log (`--log stdout`) for failure messages.
 * - FRR refuses to run as root ("not part of vty group"): the daemons drop to user frr, which
 *   then needs to traverse the lab's temp dir (mkdtemp makes it 0700).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, ToolMissingError } from './exec.js';
import type { HostRef, Lab, LabHost } from './netns.js';

export const FRR_DIR = '/usr/lib/frr';
export const VTYSH = '/usr/bin/vtysh';
const DAEMONS = ['zebra', 'bgpd', 'bfdd'] as const;
export type FrrDaemonName = (typeof DAEMONS)[number];

export interface FrrInstance {
  readonly lab: Lab;
  readonly host: LabHost;
  readonly name: string;
  /** The instance's directory: pid files, zserv.api, `<daemon>.vty`. */
  readonly dir: string;
  /** Where vipd finds bgpd.vty and bfdd.vty (the same as dir). */
  readonly vtyDir: string;
  /** Integrated-syntax configuration (frr.conf lines; vtysh sends each to its daemon); throws on the first rejected line. */
  apply(config: string): Promise<void>;
  /** `vtysh -c` for each command, in one session; the output text. Throws on an unknown or failed command. */
  vtysh(...commands: string[]): Promise<string>;
  json<T = unknown>(command: string): Promise<T>;
  /** The daemons' logs so far (last 64 KiB each). */
  output(): string;
  /** SIGTERM (bgpd sends a Cease, zebra removes its routes), SIGKILL after `graceMs`; resolves when all exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, nothing said to peers, zebra's routes stay in the kernel: with lab.linkDown first, a power-off. */
  kill(): Promise<void>;
}

export interface FrrOptions {
  /** Applied once the daemons answer. */
  config?: string;
  /** Directory name under frr/ (default the host's name). */
  name?: string;
  /** Default 10 s. */
  readyTimeoutMs?: number;
}

/** Why FRR cannot run here, or undefined when it can. */
export function frrMissing(): string | undefined {
  for (const p of [...DAEMONS.map((d) => join(FRR_DIR, d)), VTYSH]) if (!existsSync(p)) return `${p} not found: install FRR (apt-get install -y frr, scripts/setup.sh does)`;
  try {
    execFileSync('id', ['frr'], { stdio: 'ignore' });
  } catch {
    return 'user frr does not exist: install FRR (apt-get install -y frr, scripts/setup.sh does)';
  }
  return undefined;
}

/**
 * One FRR daemon of an instance whose every path is in `dir`, in the foreground, dropping to user
 * frr, without vty TCP ports; bgpd listens on 179 (the router and the lab's nodes peer either way).
 */
export function frrDaemonArgv(d: FrrDaemonName, dir: string, log: string): string[] {
  const a = [join(FRR_DIR, d), '-u', 'frr', '-g', 'frr', '-i', join(dir, `${d}.pid`), '--vty_socket', dir, '-z', join(dir, 'zserv.api'), '-f', '/dev/null', '-P', '0', '--log', log];
  if (d === 'bgpd') a.push('-p', '179');
  if (d === 'bfdd') a.push('--bfdctl', join(dir, 'bfdd.sock'));
  return a;
}

/**
 * Applies integrated-syntax configuration to the instance whose vty sockets are in `dir`.
 * One `configure terminal` session (-c), not `vtysh -f`: -f marks the text as a startup
 * configuration and bgpd then holds every session for ~4 s after it ("config-pending hold").
 * vtysh climbs to the parent node on its own; it stops at the first rejected line.
 */
export async function applyFrrConfig(dir: string, config: string, who: string): Promise<void> {
  const lines = config.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('!'));
  const r = await run([VTYSH, '--vty_socket', dir, '-c', ['configure terminal', ...lines].join('\n')], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`FRR on ${who} rejected its configuration (exit ${r.signal ?? r.code}): ${(r.stdout + r.stderr).trim()}`);
}

export async function startFrr(lab: Lab, hostRef: HostRef, opts: FrrOptions = {}): Promise<FrrInstance> {
  const missing = frrMissing();
  if (missing) {
    const err = new ToolMissingError(join(FRR_DIR, 'bgpd'), 'frr');
    err.message = missing;
    throw err;
  }
  const host = lab.host(hostRef);
  const name = opts.name ?? host.name;
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) throw new Error(`FRR instance name ${JSON.stringify(name)} must match [a-z0-9][a-z0-9-]{0,31}`);
  const root = join(lab.tmpDir, 'frr');
  const dir = join(root, name);
  await chmod(lab.tmpDir, 0o711);
  await mkdir(root, { recursive: true, mode: 0o711 });
  // A restart in the same directory must not find the last run's sockets and call them ready.
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o755 });
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'frr'], { encoding: 'utf8' }).trim());
  await chown(dir, id('-u'), id('-g'));

  const argv = (d: FrrDaemonName): string[] => frrDaemonArgv(d, dir, 'stdout');
  const children = new Map<FrrDaemonName, ChildProcess>();
  const output = (): string => [...children].map(([d, c]) => `--- ${d} (${host.name}) ---\n${lab.output(c).trimEnd()}`).join('\n');
  const exited = (c: ChildProcess): Promise<void> =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((resolve) => c.once('exit', () => resolve()));
  const signalAll = (signal: NodeJS.Signals): void => {
    for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  const vtysh = async (...commands: string[]): Promise<string> => {
    const r = await run([VTYSH, '--vty_socket', dir, ...commands.flatMap((c) => ['-c', c])], { timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`vtysh on ${host.name} (${commands.join('; ')}) exited ${r.signal ?? r.code}: ${(r.stderr + r.stdout).trim()}`);
    return r.stdout;
  };

  const inst: FrrInstance = {
    lab,
    host,
    name,
    dir,
    vtyDir: dir,
    apply: (config) => applyFrrConfig(dir, config, host.name),
    vtysh,
    async json<T>(command: string): Promise<T> {
      const text = await vtysh(command);
      return JSON.parse(text.trim() || 'null') as T;
    },
    output,
    async stop(graceMs = 5000) {
      signalAll('SIGTERM');
      const all = Promise.all([...children.values()].map(exited));
      const t = setTimeout(() => signalAll('SIGKILL'), graceMs);
      await all;
      clearTimeout(t);
    },
    async kill() {
      signalAll('SIGKILL');
      await Promise.all([...children.values()].map(exited));
    },
  };

  try {
    // bgpd and bfdd connect to zserv.api once and retry slowly: start them after zebra answers.
    const spawnDaemon = (d: FrrDaemonName): void => void children.set(d, lab.spawn(host, argv(d)));
    spawnDaemon('zebra');
    await waitReady(['zebra']);
    spawnDaemon('bgpd');
    spawnDaemon('bfdd');
    await waitReady(DAEMONS);
    await inst.apply('log timestamp precision 3');
    if (opts.config) await inst.apply(opts.config);
  } catch (err) {
    await inst.kill();
    throw new Error(`FRR on ${host.name}: ${(err as Error).message}\n${output()}`);
  }
  return inst;

  async function waitReady(daemons: readonly FrrDaemonName[]): Promise<void> {
    const deadline = performance.now() + (opts.readyTimeoutMs ?? 10_000);
    let last = '';
    for (;;) {
      for (const [d, c] of children) if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${d} exited (${c.signalCode ?? c.exitCode}) before answering`);
      if (daemons.every((d) => existsSync(join(dir, `${d}.vty`)))) {
        // vtysh connects to every socket it finds; `show daemons` names the ones that answered.
        const r = await run([VTYSH, '--vty_socket', dir, '-c', 'show daemons'], { timeoutMs: 5000 });
        last = (r.stdout + r.stderr).trim();
        const up = new Set(r.stdout.trim().split(/\s+/));
        if (r.code === 0 && daemons.every((d) => up.has(d))) return;
      }
      if (performance.now() > deadline) throw new Error(`${daemons.join(', ')} not answering on ${dir} after ${opts.readyTimeoutMs ?? 10_000} ms${last ? ` (vtysh: ${last})` : ''}`);
      await sleep(20);
    }
  }
}
