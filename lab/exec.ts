/**
 * Running the host tools the lab is made of (ip, nft, tcpdump) and commands inside a network
 * namespace. Lab-only code: never imported by the agent.
 *
 * Commands are argv arrays, never shell strings, so names and addresses need no quoting.
 * `run` never throws for a non-zero exit (it resolves with the code) unless `check` is set;
 * it throws only when the program cannot be started at all.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';

export interface RunResult {
  code: number;
  /** Set when the process was ended by a signal (then `code` is 128 + signal number, as a shell would say). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** SIGKILL after this many ms; the result then has signal 'SIGKILL'. */
  timeoutMs?: number;
  /** Throw a CommandError when the exit code is not 0. */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
}

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const detail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' | ');
    super(`${argv.join(' ')} exited ${result.signal ?? result.code}${detail ? `: ${detail}` : ''}`);
  }
}

export class ToolMissingError extends Error {
  override name = 'ToolMissingError';
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
  ) {
    super(`${tool} not found in PATH, /usr/sbin or /sbin: install it (apt-get install -y ${debianPackage})`);
  }
}

// Debian keeps ip/nft in /usr/sbin, which a non-login PATH (npm scripts, CI) may lack.
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
const toolCache = new Map<string, string>();

/** Absolute path of a host tool, or ToolMissingError naming the Debian package to install. */
export function tool(name: 'ip' | 'nft' | 'tcpdump' | 'bridge' | 'sysctl', debianPackage?: string): string {
  const cached = toolCache.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      toolCache.set(name, p);
      return p;
    } catch {
      // next directory
    }
  }
  const pkg = debianPackage ?? { ip: 'iproute2', bridge: 'iproute2', nft: 'nftables', tcpdump: 'tcpdump', sysctl: 'procps' }[name];
  throw new ToolMissingError(name, pkg);
}

/** Runs argv to completion and collects its output. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('run: empty argv'));
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env };
    if (opts.cwd !== undefined) spawnOpts.cwd = opts.cwd;
    let child: ChildProcess;
    try {
      child = spawn(file, args, spawnOpts);
    } catch (err) {
      reject(err);
      return;
    }
    const out: Buffer[] = [];
    const errb: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => errb.push(d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    const onAbort = (): void => void child.kill('SIGKILL');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const result: RunResult = {
        code: code ?? 128 + signalNumber(signal),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(errb).toString('utf8'),
      };
      if (opts.check && result.code !== 0) reject(new CommandError(argv, result));
      else resolve(result);
    });
    // A child that exits before reading stdin makes the write fail with EPIPE; the exit code tells the story.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs argv and throws a CommandError unless it exits 0. */
export async function runOk(argv: readonly string[], opts: Omit<RunOptions, 'check'> = {}): Promise<RunResult> {
  return run(argv, { ...opts, check: true });
}

/** argv that runs `argv` inside network namespace `ns` (`ip netns exec`, which execs in place). */
export function inNs(ns: string, argv: readonly string[]): string[] {
  return [tool('ip'), 'netns', 'exec', ns, ...argv];
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : (osConstants.signals[signal] ?? 0);
}

/** The process exists (EPERM: it does, but is not ours to signal). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
