#!/usr/bin/env node
/**
 * ip netns exec <client-ns> node dist/lab/prober-cli.js --iface eth0 --vip 198.18.0.100 \
 *   [--vip 2001:db8::100] [--interval 10] [--duration 5000] [--src4 IP] [--src6 IP] [--netns NAME] \
 *   [--output jsonl|summary] [--span-gap 4000]
 *
 * stdout: JSON lines. `jsonl` (default): one {"type":"request",...} per request once the next one
 * supersedes it, {"type":"claim",...} for every other claim heard, then one {"type":"summary",...}
 * per VIP. `summary`: only the summary lines. Ends after --duration ms or on SIGTERM/SIGINT, exit 0.
 * stderr: one "prober: started ..." line once the first requests are out; errors (exit 2 for usage).
 */
import { parseArgs } from 'node:util';
import { Prober, type ProberLine } from './prober.js';

function usage(msg: string): never {
  process.stderr.write(`prober: ${msg}\nusage: prober-cli --iface IF --vip IP [--vip IP] [--interval MS] [--duration MS] [--src4 IP] [--src6 IP] [--netns NS] [--output jsonl|summary] [--span-gap MS]\n`);
  process.exit(2);
}

function num(name: string, v: string | undefined, dflt: number | undefined): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) usage(`--${name} must be a positive number of ms, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        iface: { type: 'string' },
        vip: { type: 'string', multiple: true },
        interval: { type: 'string' },
        duration: { type: 'string' },
        src4: { type: 'string' },
        src6: { type: 'string' },
        netns: { type: 'string' },
        output: { type: 'string' },
        'span-gap': { type: 'string' },
      },
      strict: true,
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  if (!values.iface) usage('--iface is required');
  if (!values.vip?.length) usage('--vip is required');
  const output = values.output ?? 'jsonl';
  if (output !== 'jsonl' && output !== 'summary') usage(`--output must be jsonl or summary, got ${JSON.stringify(output)}`);
  const intervalMs = num('interval', values.interval, 10)!;
  const durationMs = num('duration', values.duration, undefined);
  const spanGapMs = num('span-gap', values['span-gap'], 4000)!;

  let prober: Prober;
  try {
    prober = await Prober.open({
      ifname: values.iface,
      vips: values.vip,
      intervalMs,
      ...(values.src4 ? { srcIp4: values.src4 } : {}),
      ...(values.src6 ? { srcIp6: values.src6 } : {}),
      ...(values.netns ? { netns: values.netns } : {}),
    });
  } catch (e) {
    process.stderr.write(`prober: ${(e as Error).message}\n`);
    process.exit(1);
  }

  const lines: string[] = [];
  const flush = (): void => {
    if (lines.length) process.stdout.write(lines.splice(0).join(''));
  };
  const onLine = output === 'jsonl' ? (l: ProberLine): void => void lines.push(`${JSON.stringify(l)}\n`) : undefined;
  // Batch stdout writes: at 10 ms per request a write per line would cost more than the probing.
  const flusher = setInterval(flush, 200);
  prober.start(onLine);
  process.stderr.write(`prober: started on ${values.iface} mac ${prober.mac} sources ${JSON.stringify(prober.sources())} every ${intervalMs} ms\n`);

  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    clearInterval(flusher);
    prober.stop();
    for (const s of prober.summary(spanGapMs)) lines.push(`${JSON.stringify(s)}\n`);
    prober.close();
    process.stdout.write(lines.splice(0).join(''), () => process.exit(0));
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
  if (durationMs !== undefined) setTimeout(finish, durationMs);
}

void main();
