/**
 * Real vipd agents as child processes inside lab namespaces, for the tests, the demo and the
 * benchmarks. Agents run from dist/ (`npm run build`), exactly as the image runs them.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../src/node-flags.js';
import { projectRoot } from './k8s-assets.js';

export { projectRoot };
import type { HostRef, Lab, LabHost } from './netns.js';
import type { StatusReport } from '../src/observe/status.js';

/** A compiled entry point of ours, e.g. distEntry('src/cli.js'). */
export function distEntry(rel: string): string {
  const file = join(projectRoot(), 'dist', rel);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build first`);
  return file;
}

/**
 * The V8 flags the lab's agents run with: the release's (src/node-flags.ts), unless
 * VIPD_LAB_NODE_FLAGS is set (even empty), which replaces them, to measure another choice with
 * the benchmarks (bench/README.md, "Footprint").
 */
export function agentNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.VIPD_LAB_NODE_FLAGS;
  return v === undefined ? [...AGENT_NODE_FLAGS] : v.split(/\s+/).filter(Boolean);
}

/**
 * With VIPD_LAB_AGENT_LOGS=<dir>, every agent's stderr is also appended to <dir>/<node>.log as it
 * comes: an intermittent lab failure keeps the decisions that led to it after the test is gone.
 */
function logCopy(node: string): NodeJS.WritableStream | undefined {
  const dir = process.env.VIPD_LAB_AGENT_LOGS;
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true });
  return createWriteStream(join(dir, `${node}.log`), { flags: 'a' });
}

export interface LogLine {
  level: number;
  time: string;
  msg: string;
  /** Local receive time (performance.now()) for ordering across agents. */
  seenAt: number;
  [field: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface AgentProcess {
  host: LabHost;
  child: ChildProcess;
  readonly logs: LogLine[];
  /** Non-JSON stderr (e.g. a config error line). */
  readonly stderrText: () => string;
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  exited: Promise<Exit>;
  /** SIGTERM, then wait for exit. */
  stop(timeoutMs?: number): Promise<Exit>;
}

export function startAgentProcess(lab: Lab, host: LabHost, env: Record<string, string>, args: readonly string[] = []): AgentProcess {
  const child = lab.spawn(host, [process.execPath, ...agentNodeFlags(), distEntry('src/cli.js'), 'run', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', vip_nodename: host.name, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let plain = '';
  let partial = '';
  const copy = logCopy(host.name);
  child.stderr?.on('data', (chunk: Buffer) => {
    copy?.write(chunk);
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        const parsed = JSON.parse(line) as LogLine;
        parsed.seenAt = performance.now();
        logs.push(parsed);
      } catch {
        plain += line + '\n';
      }
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(() => copy?.end());
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    for (const w of waiters) w();
  });

  const waitForLog = (match: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      let from = 0;
      const check = (): void => {
        for (; from < logs.length; from++) {
          const l = logs[from]!;
          if (match(l)) return done(() => resolve(l));
        }
        if (hasExited) done(() => reject(new Error(`agent on ${host.name} exited before the expected log line; stderr:\n${plain}${logs.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for a log line from ${host.name}; last lines:\n${plain}${logs.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`))), timeoutMs);
      const done = (fn: () => void): void => {
        clearTimeout(timer);
        waiters.delete(check);
        fn();
      };
      waiters.add(check);
      check();
    });

  return {
    host,
    child,
    logs,
    stderrText: () => plain,
    waitForLog,
    exited,
    async stop(timeoutMs = 10_000) {
      if (!hasExited) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}

/** GET /status from the agent in `host`'s namespace, on the lab agents' prometheus_server port (undefined if it does not answer). */
export async function agentStatus(lab: Pick<Lab, 'exec'>, host: HostRef): Promise<StatusReport | undefined> {
  const r = await lab.exec(host, [process.execPath, '-e', "fetch('http://127.0.0.1:2112/status').then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))"]);
  return r.code === 0 ? (JSON.parse(r.stdout) as StatusReport) : undefined;
}
