import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chartsFor, failoverPoints, FAILOVER_MEASURES, formatMs, logTicks, renderSvg, svgPath, textWidth, wrap, type ResultsBody } from '../../bench/lib/chart.js';
import { writeResults } from '../../bench/lib/results.js';
import { projectRoot } from '../../lab/agents.js';

const takeover = FAILOVER_MEASURES.failover![0]!;
const root = projectRoot();
const readJson = async (rel: string): Promise<ResultsBody> => JSON.parse(await readFile(join(root, rel), 'utf8')) as ResultsBody;

/** The data of a chart, as vega-lite gets it. */
const values = (spec: unknown): unknown[] => (spec as { data: { values: unknown[] } }).data.values;

describe('bench charts (bench/lib/chart.ts)', () => {
  it('writes durations the way README does', () => {
    expect([41, 185.4, 999.4, 2760, 29_600].map(formatMs)).toEqual(['41 ms', '185 ms', '999 ms', '2.76 s', '29.6 s']);
  });

  it('a failover results file: the takeover chart first (README quotes it), then the outage chart', () => {
    const body: ResultsBody = {
      bench: 'failover',
      command: 'npm run bench:failover -- --runs 3',
      started: '2026-12-02T10:00:00.000Z',
      machine: { commit: 'abc1234', loadavg1: 3 },
      rows: [
        { system: 'vipd', scenario: 'crash', runs: 3, p50_ms: 17, max_ms: 28, takeover_p50_ms: 185, takeover_max_ms: 222 },
        { system: 'keepalived-fast', scenario: 'crash', runs: 3, p50_ms: 15, max_ms: 15, takeover_p50_ms: 296, takeover_max_ms: 310 },
        { system: 'vipd', scenario: 'node-down', runs: 0, p50_ms: null, max_ms: null, takeover_p50_ms: null, takeover_max_ms: null },
        { system: 'keepalived-fast', scenario: 'node-down', runs: 3, p50_ms: 330, max_ms: 1370, takeover_p50_ms: null, takeover_max_ms: null },
      ],
    };
    const charts = chartsFor(body);
    expect(charts.map((c) => c.suffix)).toEqual(['', '-outage']);
    expect(values(charts[0]!.spec)).toEqual([
      { system: 'vipd', scenario: 'crash', p50: 185, max: 222, label: '185 ms (max 222 ms)' },
      { system: 'keepalived-fast', scenario: 'crash', p50: 296, max: 310, label: '296 ms (max 310 ms)' },
      { system: 'vipd', scenario: 'node-down', p50: null, max: null, label: 'did not run' },
      { system: 'keepalived-fast', scenario: 'node-down', p50: null, max: null, label: 'no takeover' },
    ]);
    // One run's max is its p50: no tick for it.
    expect(values(charts[1]!.spec)[1]).toEqual({ system: 'keepalived-fast', scenario: 'crash', p50: 15, max: null, label: '15 ms' });
    const spec = charts[0]!.spec as unknown as { title: { subtitle: string[] }; encoding: { y: { sort: string[] }; yOffset: { sort: string[] } } };
    // The order the bench ran them in, and where the numbers come from.
    expect(spec.encoding.y.sort).toEqual(['crash', 'node-down']);
    expect(spec.encoding.yOffset.sort).toEqual(['vipd', 'keepalived-fast']);
    expect(spec.title.subtitle).toEqual(['npm run bench:failover -- --runs 3, commit abc1234, 2026-12-02, load 3']);
  });

  it('services-failover, bgp and cluster rows chart p50_ms / max_ms; a row whose addresses never moved says so', () => {
    const rows = [
      { system: 'vipd', scenario: 'api-down-all+node-down', runs: 1, p50_ms: 329, max_ms: 331 },
      { system: 'kube-vip', scenario: 'api-down-all+node-down', runs: 1, p50_ms: null, max_ms: null, not_moved: 20 },
    ];
    expect(values(chartsFor({ bench: 'services-failover', rows })[0]!.spec).map((p) => (p as { label: string }).label)).toEqual(['329 ms (max 331 ms)', 'nothing moved']);
    expect(chartsFor({ bench: 'bgp', rows })).toHaveLength(1);
    expect(chartsFor({ bench: 'cluster', rows })).toHaveLength(1);
  });

  it('footprint: RSS and CPU per system side by side; benches without such rows get no chart', () => {
    const [c, ...more] = chartsFor({ bench: 'footprint', rows: [{ system: 'vipd', rss_mb: 81, cpu_pct: 5 }, { system: 'keepalived-default', rss_mb: 13, cpu_pct: 0.1 }] });
    expect(more).toEqual([]);
    expect(values(c!.spec)).toEqual([
      { system: 'vipd', rss_mb: 81, cpu_pct: 5 },
      { system: 'keepalived-default', rss_mb: 13, cpu_pct: 0.1 },
    ]);
    expect((c!.spec as unknown as { hconcat: unknown[] }).hconcat).toHaveLength(2);
    expect(chartsFor({ bench: 'services', rows: [{ services: 1000 }] })).toEqual([]);
    expect(chartsFor({ bench: 'failover', rows: [] })).toEqual([]);
  });

  it('log axis ticks at 1-2-5; text measured in Helvetica widths, not 0.8 em a character', () => {
    expect(wrap('npm run bench:failover -- --systems vipd,keepalived-fast --runs 8, commit 3de7485', 40)).toEqual(['npm run bench:failover -- --systems', 'vipd,keepalived-fast --runs 8, commit', '3de7485']);
    expect(logTicks(10, 1000)).toEqual([10, 20, 50, 100, 200, 500, 1000]);
    expect(textWidth('185 ms', 10)).toBeGreaterThan(20);
    expect(textWidth('185 ms', 10)).toBeLessThan(0.8 * 6 * 10);
    expect(svgPath('/r/failover-1.json', '-outage')).toBe('/r/failover-1-outage.svg');
    expect(svgPath('/r/failover-1.json', '', 'docs/img/failover.svg')).toBe('docs/img/failover.svg');
  });

  it("README's chart data is README's failover table, and the committed SVG shows it", async () => {
    const body = await readJson('docs/img/failover.json');
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    // | system | crash | node down | SIGTERM | own API down | partition | cold start | two-holder events |
    const columns = ['crash', 'node-down', 'graceful', 'api-down', 'partition', 'cold-start'];
    const points = failoverPoints(body.rows ?? [], takeover);
    expect(points).toHaveLength(5 * columns.length);
    for (const p of points) {
      const line = readme.split('\n').find((l) => l.startsWith(`| **${p.system}** (`) || l.startsWith(`| ${p.system} (`));
      expect(line, `README row for ${p.system}`).toBeDefined();
      const cell = line!.split('|').map((c) => c.trim().replace(/\*\*/g, ''))[2 + columns.indexOf(p.scenario)];
      expect(cell, `${p.system} ${p.scenario}`).toBe(formatMs(p.p50!));
    }
    expect(chartsFor(body)[0]!.suffix).toBe(''); // the takeover chart, which README shows
    const svg = await readFile(join(root, 'docs/img/failover.svg'), 'utf8');
    for (const p of points) expect(svg).toContain(`>${p.label}<`);
    expect(readme).toContain('docs/img/failover.svg');
  });

  it('renders SVG in Node, without a browser or canvas', async () => {
    const svg = await renderSvg(chartsFor({ bench: 'failover', rows: [{ system: 'vipd', scenario: 'crash', runs: 1, takeover_p50_ms: 185, takeover_max_ms: 222 }] })[0]!.spec);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('185 ms (max 222 ms)');
  });

  it('writeResults puts the charts next to the results JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vipd-chart-'));
    const before = process.env.VIPD_BENCH_RESULTS_DIR;
    process.env.VIPD_BENCH_RESULTS_DIR = dir;
    try {
      const file = await writeResults('failover', { bench: 'failover', rows: [{ system: 'vipd', scenario: 'crash', runs: 1, p50_ms: 17, max_ms: 17, takeover_p50_ms: 185, takeover_max_ms: 185 }] });
      const base = file.slice(dir.length + 1, -'.json'.length);
      expect((await readdir(dir)).sort()).toEqual([`${base}-outage.svg`, `${base}.json`, `${base}.svg`]);
      expect(await readFile(join(dir, `${base}.svg`), 'utf8')).toContain('185 ms');
    } finally {
      if (before === undefined) delete process.env.VIPD_BENCH_RESULTS_DIR;
      else process.env.VIPD_BENCH_RESULTS_DIR = before;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
