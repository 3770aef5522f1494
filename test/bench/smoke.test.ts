/**
 * One tiny failover run through the real benchmark command: keepalived-default, crash, 1 run, in
 * a lab of its own. Checks the row's shape and that a results file was written; the numbers are
 * the benchmark's business, not this test's (no timed assertions).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { distEntry } from '../../lab/agents.js';
import { describeWithApi } from '../lab/with-api.js';

const root = process.getuid?.() === 0;
const keepalived = existsSync('/usr/sbin/keepalived');

function runBench(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [distEntry('bench/failover.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!root || !keepalived)('bench:failover smoke', () => {
  describeWithApi('one keepalived-default crash run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-bench-smoke-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('prints one row with the agreed fields and writes the results file', { timeout: 120_000 }, async () => {
      const r = await runBench(['--systems', 'keepalived-default', '--scenarios', 'crash', '--runs', '1'], { ...process.env, VIPD_BENCH_RESULTS_DIR: dir });
      expect(r.code, r.stderr.slice(-3000)).toBe(0);
      const rows = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      expect(row).toMatchObject({ system: 'keepalived-default', scenario: 'crash' });
      expect(row.runs).toBe(1);
      for (const k of ['p50_ms', 'p95_ms', 'max_ms']) expect(typeof row[k] === 'number' || row[k] === null, k).toBe(true);
      expect(Number.isInteger(row.two_holder_events)).toBe(true);
      expect(typeof row.config).toBe('string');
      const files = readdirSync(dir).filter((f) => /^failover-.*\.json$/.test(f));
      expect(files).toHaveLength(1);
      const saved = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as { rows: unknown[]; machine: { cpus: number }; runs: unknown[] };
      expect(saved.rows).toEqual(rows);
      expect(saved.machine.cpus).toBeGreaterThan(0);
      expect(saved.runs).toHaveLength(1);
    });
  });
});
