/**
 * Pictures of the benchmark numbers: SVG charts drawn by vega-lite from a results file
 * (bench/lib/results.ts writes them next to the JSON; `npm run bench:chart` redraws any stored file).
 *
 * `chartsFor` (results body → vega-lite specs) is pure, so what a chart shows is unit-tested
 * without rendering; `renderSvg` and `writeCharts` do the drawing. Rendering uses vega's
 * renderer 'none' and its SVG string output: no browser, no canvas, no fonts on disk (text widths
 * are estimated, which is fine for labels this short).
 */
import { writeFile } from 'node:fs/promises';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** What a results file holds (bench/lib/results.ts); only the fields the charts read. */
export interface ResultsBody {
  bench?: string;
  command?: string;
  started?: string;
  machine?: { commit?: string | null; loadavg1?: number };
  /** Where the numbers came from when they were not written by a bench run (docs/img/failover.json). */
  source?: string;
  rows?: unknown[];
}

/** Which row fields a failover chart plots, and what they mean (the axis title says it). */
export interface FailoverMeasure {
  p50: string;
  max: string;
  axis: string;
  /** The label of a row without a value (all its runs skipped, or nothing moved). */
  missing: string;
  /** Appended to the results file's base name for the SVG ('' for the bench's main chart). */
  suffix: string;
}

/**
 * The failover benches and their measures. bench:failover's main chart is the takeover (event until
 * another node serves), the number README quotes; its outage chart is second because after a
 * crash the old node often keeps serving, so the outage alone hides the slow takeovers.
 */
export const FAILOVER_MEASURES: Readonly<Record<string, readonly FailoverMeasure[]>> = {
  failover: [
    { p50: 'takeover_p50_ms', max: 'takeover_max_ms', axis: 'takeover: from the event until another node serves (ms, log scale)', missing: 'no takeover', suffix: '' },
    { p50: 'p50_ms', max: 'max_ms', axis: 'client outage: longest gap between served connections (ms, log scale)', missing: 'no run', suffix: '-outage' },
  ],
  'services-failover': [{ p50: 'p50_ms', max: 'max_ms', axis: "from the event until another node answers each of the victim's addresses (ms, log scale)", missing: 'nothing moved', suffix: '' }],
  bgp: [{ p50: 'p50_ms', max: 'max_ms', axis: 'outage until every new flow succeeds (ms, log scale)', missing: 'no run', suffix: '' }],
  cluster: [{ p50: 'p50_ms', max: 'max_ms', axis: 'longest API outage a client sees through the VIP (ms, log scale)', missing: 'no run', suffix: '' }],
};

export interface Chart {
  suffix: string;
  spec: TopLevelSpec;
}

/** "41 ms", "2.76 s", "29.6 s": how README writes durations. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** In order of first appearance, so the chart keeps the order the bench ran (and README lists) them in. */
function firstSeen(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** Where the numbers come from: the command, commit, date and load of the run. */
export function sourceLine(body: ResultsBody): string {
  if (body.source) return body.source;
  const parts = [body.command, body.machine?.commit ? `commit ${body.machine.commit}` : undefined, body.started?.slice(0, 10), body.machine?.loadavg1 !== undefined ? `load ${body.machine.loadavg1}` : undefined];
  return parts.filter((p) => p !== undefined && p !== '').join(', ');
}

/** Lines of at most `width` characters, broken after ", " or a space: vega does not wrap a subtitle, and a long command line would widen the picture. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

const FONT = 'Helvetica, Arial, sans-serif';
const CONFIG = { font: FONT, view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal' as const }, legend: { labelFontSize: 11 } };

export interface FailoverPoint {
  system: string;
  scenario: string;
  p50: number | null;
  max: number | null;
  label: string;
}

/** The rows a failover chart plots: one per system and scenario that ran (skipped rows say so in their label). */
export function failoverPoints(rows: readonly unknown[], m: FailoverMeasure): FailoverPoint[] {
  const out: FailoverPoint[] = [];
  for (const r of rows) {
    if (typeof r !== 'object' || r === null) continue;
    const o = r as Record<string, unknown>;
    const system = str(o.system);
    const scenario = str(o.scenario);
    if (system === null || scenario === null) continue;
    const p50 = num(o[m.p50]);
    const maxRaw = num(o[m.max]);
    // A max equal to the p50 (one run) adds nothing to the picture.
    const max = maxRaw !== null && p50 !== null && maxRaw > p50 ? maxRaw : null;
    const label =
      p50 === null
        ? typeof o.skipped === 'string' || (num(o.runs) ?? 0) === 0
          ? 'did not run'
          : m.missing
        : max === null
          ? formatMs(p50)
          : `${formatMs(p50)} (max ${formatMs(max)})`;
    out.push({ system, scenario, p50, max, label });
  }
  return out;
}

/** 1-2-5 steps from `low` to `high` (powers of ten): enough grid lines to read a log axis, not one per unit. */
export function logTicks(low: number, high: number): number[] {
  const out: number[] = [];
  for (let d = low; d <= high; d *= 10) for (const k of [1, 2, 5]) if (d * k <= high) out.push(d * k);
  return out;
}

/**
 * Failover per scenario (one band each) and system (one bar each, same colour across scenarios):
 * the bar is the p50, the tick the max. A log scale, because the systems differ by factors of ten
 * (41 ms against 3 s) and a linear one would flatten every fast bar to nothing.
 */
export function failoverChart(rows: readonly unknown[], m: FailoverMeasure, title: string, source: string): TopLevelSpec | null {
  // Rows without the measure's field at all (a file transcribed from README has takeovers only) get no chart.
  if (!rows.some((r) => typeof r === 'object' && r !== null && m.p50 in r)) return null;
  const points = failoverPoints(rows, m);
  if (points.length === 0) return null;
  const systems = firstSeen(points.map((p) => p.system));
  const scenarios = firstSeen(points.map((p) => p.scenario));
  const barHeight = 14;
  const y = { field: 'scenario', type: 'nominal' as const, sort: scenarios, title: null, axis: { labelFontWeight: 'bold' as const, labelPadding: 6 } };
  const yOffset = { field: 'system', type: 'nominal' as const, sort: systems };
  const color = { field: 'system', type: 'nominal' as const, sort: systems, title: null, legend: { orient: 'top' as const, columns: Math.min(systems.length, 5) } };
  const positive = points.map((p) => p.max ?? p.p50).filter((v): v is number => v !== null && v > 0);
  const low = positive.length ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 1;
  // Room to the right of the longest bar for its label.
  const high = positive.length ? 10 ** Math.ceil(Math.log10(Math.max(...positive) * 1.5)) : 10;
  const x = { type: 'quantitative' as const, scale: { type: 'log' as const, domain: [low, high] }, title: m.axis, axis: { values: logTicks(low, high), format: '~s', grid: true } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: wrap(source, 95), anchor: 'start', subtitleColor: '#555' },
    width: 560,
    // With yOffset the step is one system's bar, so the chart grows with the rows it has.
    height: { step: barHeight },
    data: { values: points },
    encoding: { y, yOffset, color },
    layer: [
      // A log scale has no zero: the bars start at the axis' left end.
      { transform: [{ filter: 'datum.p50 != null' }], mark: { type: 'bar', height: barHeight - 3 }, encoding: { x: { ...x, field: 'p50' }, x2: { datum: low } } },
      { transform: [{ filter: 'datum.max != null' }], mark: { type: 'rule' }, encoding: { x: { ...x, field: 'p50' }, x2: { field: 'max' }, color: { value: '#333' } } },
      { transform: [{ filter: 'datum.max != null' }], mark: { type: 'tick', orient: 'vertical', thickness: 2, size: barHeight - 3 }, encoding: { x: { ...x, field: 'max' }, color: { value: '#333' } } },
      {
        transform: [{ calculate: 'datum.max != null ? datum.max : datum.p50 != null ? datum.p50 : ' + String(low), as: 'at' }],
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 10, color: '#222' },
        encoding: { x: { ...x, field: 'at' }, text: { field: 'label' }, color: { value: '#222' } },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

export interface FootprintPoint {
  system: string;
  rss_mb: number | null;
  cpu_pct: number | null;
}

/** Idle footprint per system: RSS and CPU of the holder's agent, side by side. */
export function footprintChart(rows: readonly unknown[], source: string): TopLevelSpec | null {
  const points: FootprintPoint[] = [];
  for (const r of rows) {
    if (typeof r !== 'object' || r === null) continue;
    const o = r as Record<string, unknown>;
    const system = str(o.system);
    if (system !== null) points.push({ system, rss_mb: num(o.rss_mb), cpu_pct: num(o.cpu_pct) });
  }
  if (points.length === 0) return null;
  const systems = firstSeen(points.map((p) => p.system));
  // A fifth more than the largest value: room for the largest bar's label inside the picture.
  const top = (field: 'rss_mb' | 'cpu_pct'): number => Math.max(1, ...points.map((p) => p[field] ?? 0)) * 1.2;
  const panel = (field: 'rss_mb' | 'cpu_pct', axis: string, format: string) => ({
    width: 260,
    height: { step: 22 },
    transform: [{ filter: `datum.${field} != null` }],
    encoding: {
      y: { field: 'system', type: 'nominal' as const, sort: systems, title: null },
      x: { field, type: 'quantitative' as const, title: axis, scale: { domain: [0, top(field)], nice: false } },
    },
    layer: [
      { mark: { type: 'bar', height: 16 }, encoding: { color: { field: 'system', type: 'nominal' as const, sort: systems, legend: null } } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 }, encoding: { text: { field, type: 'quantitative' as const, format } } },
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Idle footprint of the holding agent', subtitle: wrap(source, 95), anchor: 'start', subtitleColor: '#555' },
    data: { values: points },
    hconcat: [panel('rss_mb', 'RSS (MB)', '.1f'), panel('cpu_pct', 'CPU (% of one core)', '.1f')],
    config: CONFIG,
  } as TopLevelSpec;
}

const TITLES: Readonly<Record<string, string>> = {
  failover: 'Control-plane VIP failover (p50 bar, max tick)',
  'services-failover': 'LoadBalancer Service addresses failover (p50 bar, max tick)',
  bgp: 'Layer 2 against BGP + ECMP (p50 bar, max tick)',
  cluster: 'vipd as the static pod of three kubeadm nodes (p50 bar, max tick)',
};

/** The charts a results file gets: none for benches whose rows are not per system and scenario. */
export function chartsFor(body: ResultsBody): Chart[] {
  const rows = body.rows ?? [];
  const source = sourceLine(body);
  if (body.bench === 'footprint') {
    const spec = footprintChart(rows, source);
    return spec ? [{ suffix: '', spec }] : [];
  }
  const measures = FAILOVER_MEASURES[body.bench ?? ''];
  if (!measures) return [];
  const out: Chart[] = [];
  for (const m of measures) {
    const spec = failoverChart(rows, m, TITLES[body.bench!]!, source);
    if (spec) out.push({ suffix: m.suffix, spec });
  }
  return out;
}

/**
 * Helvetica's advance widths (its AFM metrics, 1/1000 em) for ASCII 32–126. Without a canvas vega
 * guesses 0.8 em per character, about 1.5 times Helvetica's average, so the SVG came out twice as
 * wide as what it draws and legends spread over empty space. vega lets a caller measure instead
 * (vl-convert does the same); the `canvas` package would measure exactly but needs a native build.
 */
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
  1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
  333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

/**
 * Width in px of `text` at `fontSize`: Helvetica's, plus 10 % (15 % more for bold) so that a wider
 * fallback font (DejaVu Sans where no Helvetica or Arial is installed) still fits the space laid out.
 * Other characters count as a digit.
 */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let units = 0;
  for (const ch of text) units += HELVETICA[(ch.codePointAt(0) ?? 0) - 32] ?? 556;
  return (units / 1000) * fontSize * 1.1 * (bold ? 1.15 : 1);
}

interface TextItem {
  text?: unknown;
  fontSize?: number;
  fontWeight?: string | number;
}
const metrics = (vega as unknown as { textMetrics: { width: (item: TextItem, text?: unknown) => number } }).textMetrics;
metrics.width = (item, text) => {
  const t = String(text ?? item.text ?? '').trim();
  const weight = item.fontWeight;
  return textWidth(t, item.fontSize ?? 11, weight === 'bold' || (typeof weight === 'number' && weight >= 600));
};

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** `results.json` + suffix → `results<suffix>.svg`; `out` (the CLI's) replaces the base name. */
export function svgPath(jsonFile: string, suffix: string, out?: string): string {
  const base = out !== undefined ? out.replace(/\.svg$/, '') : jsonFile.replace(/\.json$/, '');
  return `${base}${suffix}.svg`;
}

/** Renders and writes every chart of a results file; returns the paths written. */
export async function writeCharts(jsonFile: string, body: ResultsBody, out?: string): Promise<string[]> {
  const written: string[] = [];
  for (const c of chartsFor(body)) {
    const file = svgPath(jsonFile, c.suffix, out);
    await writeFile(file, await renderSvg(c.spec));
    written.push(file);
  }
  return written;
}
