/**
 * A stderr that nobody reads (a stuck container log pipe) must not stop the agent: with a
 * synchronous destination the first write to a full blocking pipe never returns, and the VIP's
 * heartbeats stop with it. A real process logs into a real FIFO that is never read.
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const LOG_JS = pathToFileURL(join(import.meta.dirname, '../../dist/src/observe/log.js')).href;
const dir = mkdtempSync(join(tmpdir(), 'vipd-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ~5 MB of lines, far past the pipe's 64 KB and the 1 MiB buffer; then the loop must still run.
const CHILD = `
import { createLogger, droppedLogLines, flushLogs } from ${JSON.stringify(LOG_JS)};
const log = createLogger('info', { node: 'n1' });
let ticks = 0;
const tick = setInterval(() => ticks++, 10);
for (let i = 0; i < 20000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'flood');
setTimeout(async () => {
  clearInterval(tick);
  process.stdout.write(JSON.stringify({ ticks, dropped: droppedLogLines() }) + '\\n');
  await flushLogs(500);
  process.exit(0);
}, 1000);
`;

it('an unread stderr pipe neither blocks the event loop nor the exit; overflow is dropped and counted', async () => {
  const fifo = join(dir, 'stderr');
  execFileSync('mkfifo', [fifo]);
  // Reader first (non-blocking open needs no writer), then a blocking write end for the child.
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, 'w');
  try {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { stdio: ['ignore', 'pipe', writer] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const seen = JSON.parse(out.trim()) as { ticks: number; dropped: number };
    expect(seen.ticks).toBeGreaterThan(0);
    expect(seen.dropped).toBeGreaterThan(0);
    // What did reach the pipe is whole JSON lines, the first one first.
    const buf = Buffer.alloc(65536);
    const n = readSync(reader, buf);
    const first = buf.subarray(0, n).toString().split('\n')[0]!;
    expect(JSON.parse(first)).toMatchObject({ msg: 'flood', i: 0, node: 'n1' });
  } finally {
    closeSync(writer);
    closeSync(reader);
  }
}, 30_000);
