import { constants, fstatSync, openSync } from 'node:fs';
import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Bytes of log lines held in memory while stderr does not take them. A container's stderr is a
 * pipe the runtime drains (containerd's shim, kubelet's log rotation); when that reader is slow or
 * stopped the pipe fills at 64 KB. A synchronous write would then stop the agent's one thread (on
 * a blocking pipe) or sleep it 100 ms per retry (sonic-boom on EAGAIN): either way heartbeats and
 * renewals miss their deadlines and the VIP moves for no reason. So lines are written
 * asynchronously to a non-blocking descriptor (a full pipe is retried on a timer), and past this
 * many buffered bytes new lines are dropped and counted rather than let memory grow.
 */
export const LOG_BUFFER_BYTES = 1 << 20;

/** How often, at most, the agent says that it dropped lines (one line with the count). */
const DROP_REPORT_MS = 10_000;

let droppedLines = 0;

/**
 * Once the process exits, a pipe that is still full is given up on: pino flushes synchronously on
 * 'exit', and sonic-boom retries EAGAIN every 100 ms for as long as it is told to, which would be
 * forever. Registered at import, before any destination, so it runs before pino's exit flush.
 */
let exiting = false;
process.once('exit', () => {
  exiting = true;
});

/** Log lines dropped since the process started because stderr was not being read. */
export function droppedLogLines(): number {
  return droppedLines;
}

/** sonic-boom's own state: with minLength 0 its flush(cb) calls back at once, written or not. */
interface Destination {
  readonly _len: number;
  readonly _writing: boolean;
  once(event: 'drain', cb: () => void): unknown;
}
const destinations = new Set<Destination>();

/**
 * One JSON line per event on stderr (stdout stays free for command output such as manifests).
 * Field names are stable: `vip`, `node`, `iface`, `reason`, `err`.
 */
export function createLogger(level: string = process.env.VIPD_LOG_LEVEL ?? 'info', bindings: Record<string, unknown> = {}, fd = 2): Logger {
  const dest = pino.destination({ fd: nonBlockingPipe(fd), sync: false, minLength: 0, maxLength: LOG_BUFFER_BYTES, retryEAGAIN: () => !exiting });
  const flushSync = dest.flushSync.bind(dest);
  dest.flushSync = () => {
    try {
      flushSync();
    } catch {
      // The pipe stayed full until the end: what is left is lost, the exit is not.
    }
  };
  let droppedHere = 0;
  let reported = 0;
  let reportTimer: NodeJS.Timeout | undefined;
  const logger = pino({ level, base: { ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  dest.on('drop', () => {
    droppedLines++;
    droppedHere++;
    // Said later, once stderr may be taking lines again; if it still is not, this line is dropped
    // and counted too, and the next report carries the total.
    reportTimer ??= setTimeout(() => {
      reportTimer = undefined;
      const n = droppedHere - reported;
      reported = droppedHere;
      logger.warn({ dropped: n, total: droppedHere }, `dropped ${n} log lines: stderr was not being read (more than ${LOG_BUFFER_BYTES} bytes waiting)`);
    }, DROP_REPORT_MS);
    reportTimer.unref();
  });
  // A closed stderr (EPIPE) must not take the agent, and the VIP, down with it.
  dest.on('error', () => {});
  destinations.add(dest as unknown as Destination);
  return logger;
}

/**
 * A pipe's writes must not block: an asynchronous write to a full blocking pipe parks a libuv
 * worker until someone reads, and an exiting Node process waits for its workers, so the agent could
 * not even exit. Node cannot set O_NONBLOCK on a descriptor, but opening /proc/self/fd/N of a pipe
 * opens the same pipe with our own flags (a new open file description; fd N stays as it was, for
 * anything else writing to it). Files, terminals and sockets are kept as they are: their writes do
 * not wait on a reader, or cannot be reopened this way.
 */
function nonBlockingPipe(fd: number): number {
  try {
    if (!fstatSync(fd).isFIFO()) return fd;
    return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return fd;
  }
}

/**
 * Waits until every logger's buffered lines reached stderr, or `timeoutMs`: an exiting process
 * calls this so its last lines (why it stopped, what it released) are not lost, and a stderr that
 * nobody reads cannot hold the exit up.
 */
export async function flushLogs(timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  const all = Promise.all(
    [...destinations].map((d) => new Promise<void>((resolve) => (d._len > 0 || d._writing ? d.once('drain', resolve) : resolve()))),
  );
  await Promise.race([all, deadline]);
  clearTimeout(timer);
  exiting = true;
}
