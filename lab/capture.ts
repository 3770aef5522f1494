/**
 * tcpdump runner for the lab: the wire as the switch (or a host) saw it.
 *
 * - tcpdump runs inside a network namespace with -U (write each packet as it comes) and
 *   --immediate-mode (no kernel block batching), so `read()` while running and `stop()` see
 *   frames within milliseconds of them crossing the interface.
 * - startCapture resolves only after tcpdump printed "listening on", i.e. its socket is bound
 *   and filtering; frames sent after that are in the capture.
 * - `-Z root` keeps tcpdump from dropping to a user that could not write the lab's 0700 temp dir.
 * - stop() is idempotent; it waits `settleMs` first so frames still in the kernel ring reach the
 *   file, then SIGINT (SIGKILL after a grace period), then parses the file with pcap.ts, which
 *   tolerates a tail cut mid-record.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { inNs, tool } from './exec.js';
import { parsePcap, type PcapRecord } from './pcap.js';

export interface CaptureOptions {
  /** Network namespace to capture in. */
  ns: string;
  /** Interface inside that namespace (the bridge, a bridge port, or a host's eth0). */
  iface: string;
  /** pcap file to write; its directory must exist. */
  file: string;
  /** tcpdump filter expression, e.g. 'arp or icmp6'. Empty: everything. */
  filter?: string;
  /** How long to wait for tcpdump to start listening (default 10 s). */
  readyTimeoutMs?: number;
}

export interface CaptureStats {
  captured: number | undefined;
  receivedByFilter: number | undefined;
  droppedByKernel: number | undefined;
}

export interface Capture {
  /** The pcap file being written (deleted with the lab's temp dir unless copied). */
  file: string;
  /** tcpdump's pid (the process itself: `ip netns exec` execs in place). */
  pid: number;
  /** Frames captured so far, without stopping (a partly written tail record is skipped). */
  read(): Promise<PcapRecord[]>;
  /** Stops tcpdump and returns every captured frame, in capture order. Idempotent. */
  stop(opts?: { settleMs?: number }): Promise<PcapRecord[]>;
  /** tcpdump's own counters, known after stop(). */
  stats(): CaptureStats | undefined;
}

export class CaptureError extends Error {
  override name = 'CaptureError';
}

const STOP_GRACE_MS = 5000;

export async function startCapture(opts: CaptureOptions): Promise<Capture> {
  const argv = inNs(opts.ns, [
    tool('tcpdump'),
    '-U',
    '--immediate-mode',
    '-n',
    '-Z',
    'root',
    '-i',
    opts.iface,
    '-w',
    opts.file,
    ...(opts.filter ? [opts.filter] : []),
  ]);
  const [file, ...args] = argv as [string, ...string[]];
  // Own process group so a lab's cleanup can signal it as a unit, like every lab process.
  const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr += d;
  });
  const exited = once(child, 'exit').then(() => undefined);

  await waitListening(child, () => stderr, opts.readyTimeoutMs ?? 10_000, opts);

  let stopping: Promise<PcapRecord[]> | undefined;
  let stats: CaptureStats | undefined;
  const readNow = async (): Promise<PcapRecord[]> => {
    try {
      return parsePcap(await readFile(opts.file)).records;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  };
  return {
    file: opts.file,
    pid: child.pid ?? -1,
    read: readNow,
    stats: () => stats,
    stop(stopOpts = {}) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          await sleep(stopOpts.settleMs ?? 50);
          child.kill('SIGINT');
          const t = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
          await exited;
          clearTimeout(t);
        }
        stats = parseStats(stderr);
        return readNow();
      })();
      return stopping;
    },
  };
}

function waitListening(child: ChildProcess, stderr: () => string, timeoutMs: number, opts: CaptureOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      child.kill('SIGKILL');
      reject(new CaptureError(`tcpdump on ${opts.iface} in ${opts.ns} ${why}: ${stderr().trim() || '(no output)'}`));
    };
    const onData = (): void => {
      if (/listening on /.test(stderr())) {
        cleanup();
        resolve();
      }
    };
    const onExit = (): void => fail('exited before listening');
    const onError = (err: Error): void => fail(`could not start (${err.message})`);
    const timer = setTimeout(() => fail(`not listening after ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

function parseStats(stderr: string): CaptureStats {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(stderr);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  };
  return {
    captured: num(/(\d+) packets? captured/),
    receivedByFilter: num(/(\d+) packets? received by filter/),
    droppedByKernel: num(/(\d+) packets? dropped by kernel/),
  };
}
