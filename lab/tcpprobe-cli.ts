/**
 * `node dist/lab/tcpprobe-cli.js --target 198.18.0.100 --port 8080 [--interval 10] [--timeout MS]
 *   [--duration MS] [--records] [--stream]`, run in the client namespace.
 *
 * Probes until --duration passes or SIGINT/SIGTERM arrives, then prints the JSON summary
 * (summarizeProbe; with --records also every record) as one line on stdout and exits 0.
 * --stream prints each record as a JSON line as it completes, then `{"summary":…}` last.
 * A line `probing …` on stderr says probing has started. Bad arguments: exit 2.
 */
import { parseArgs } from 'node:util';
import { defaultTimeoutMs, runProbe, summarizeProbe, type ProbeRecord } from './tcpprobe.js';

const USAGE = 'usage: tcpprobe-cli --target ADDR --port PORT [--interval MS] [--timeout MS] [--duration MS] [--records] [--stream]';

async function main(): Promise<number> {
  let values: { target?: string; port?: string; interval?: string; timeout?: string; duration?: string; records?: boolean; stream?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        target: { type: 'string' },
        port: { type: 'string' },
        interval: { type: 'string', default: '10' },
        timeout: { type: 'string' },
        duration: { type: 'string' },
        records: { type: 'boolean', default: false },
        stream: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`tcpprobe: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const port = Number(values.port);
  const intervalMs = Number(values.interval);
  const timeoutMs = values.timeout === undefined ? defaultTimeoutMs(intervalMs) : Number(values.timeout);
  const durationMs = values.duration === undefined ? undefined : Number(values.duration);
  const bad =
    !values.target ? '--target is required'
    : !Number.isInteger(port) || port < 1 || port > 65535 ? '--port must be 1..65535'
    : !(intervalMs >= 1) ? '--interval must be ≥ 1 ms'
    : !(timeoutMs >= 1) ? '--timeout must be ≥ 1 ms'
    : durationMs !== undefined && !(durationMs > 0) ? '--duration must be > 0 ms'
    : undefined;
  if (bad !== undefined || !values.target) {
    process.stderr.write(`tcpprobe: ${bad}\n${USAGE}\n`);
    return 2;
  }
  const target = values.target;

  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  const timer = durationMs === undefined ? undefined : setTimeout(() => ac.abort(), durationMs);
  const stream = values.stream === true;
  process.stderr.write(`probing ${target}:${port} every ${intervalMs} ms (timeout ${timeoutMs} ms)\n`);
  const records: ProbeRecord[] = await runProbe({
    host: target,
    port,
    intervalMs,
    timeoutMs,
    signal: ac.signal,
    ...(stream ? { onRecord: (r: ProbeRecord) => void process.stdout.write(JSON.stringify(r) + '\n') } : {}),
  });
  if (timer) clearTimeout(timer);
  const summary = summarizeProbe(records, { target: `${target}:${port}`, intervalMs, timeoutMs });
  const out = values.records ? { ...summary, records } : summary;
  process.stdout.write(JSON.stringify(stream ? { summary: out } : out) + '\n');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tcpprobe: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
