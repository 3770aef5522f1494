/**
 * What the monitoring files (monitoring/) ask Prometheus for: every PromQL expression in the
 * Grafana dashboard and the PrometheusRule, parsed with Prometheus' own PromQL grammar (the one
 * its web UI uses), and the metric names they select. Shared by the static test
 * (test/monitoring/monitoring.test.ts) and the one that scrapes a running agent
 * (test/e2e/monitoring.lab.test.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { load as loadYaml } from 'js-yaml';
import { projectRoot } from '../../lab/agents.js';

export const DASHBOARD = 'monitoring/grafana/vipd-dashboard.json';
export const RULES = 'monitoring/prometheus/vipd-rules.yaml';

/** Grafana's interval variables stand for a duration, which is all the grammar needs to see. Label values like "$vip" are strings already. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');
}

/** The metric names an expression selects; throws with the position of the first syntax error. */
export function metricNames(expr: string): string[] {
  const text = withoutGrafanaVariables(expr);
  const tree = parser.parse(text);
  const names = new Set<string>();
  let error: number | undefined;
  tree.iterate({
    enter(n) {
      if (n.type.isError && error === undefined) error = n.from;
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.add(text.slice(n.from, n.to));
    },
  });
  if (error !== undefined) throw new Error(`PromQL syntax error at ${error}: ${text.slice(0, error)} >>>${text.slice(error)}`);
  return [...names].sort();
}

export interface Expression {
  /** "dashboard: <panel title>", "rule: <alert>", ... */
  where: string;
  expr: string;
}

interface Target {
  expr?: string;
}
interface Panel {
  title?: string;
  type?: string;
  targets?: Target[];
  panels?: Panel[];
}
export interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Array<{ name?: string; type?: string; query?: unknown; definition?: string }> };
  annotations?: { list?: Array<{ name?: string; expr?: string }> };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(join(projectRoot(), DASHBOARD), 'utf8')) as Dashboard;
}

export function readRules(): unknown {
  return loadYaml(readFileSync(join(projectRoot(), RULES), 'utf8'));
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard (targets, annotations, `label_values(metric, label)` variables) and of the rules. */
export function monitoringExpressions(): Expression[] {
  const out: Expression[] = [];
  const d = readDashboard();
  for (const p of allPanels(d)) for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ where: `dashboard: ${p.title ?? '?'}`, expr: t.expr });
  for (const a of d.annotations?.list ?? []) if (a.expr !== undefined) out.push({ where: `dashboard annotation: ${a.name ?? '?'}`, expr: a.expr });
  for (const v of d.templating?.list ?? []) {
    const m = v.type === 'query' ? /^label_values\((.+),\s*\w+\)$/.exec(v.definition ?? '') : null;
    if (m) out.push({ where: `dashboard variable: ${v.name ?? '?'}`, expr: m[1]! });
  }
  const rules = readRules() as { spec?: { groups?: Array<{ rules?: Array<{ alert?: string; record?: string; expr?: string }> }> } };
  for (const g of rules.spec?.groups ?? []) for (const r of g.rules ?? []) if (r.expr !== undefined) out.push({ where: `rule: ${r.alert ?? r.record ?? '?'}`, expr: r.expr });
  return out;
}

/** Metric families an exposition (/metrics) declares, by `# TYPE name type`: listed even before a labelled metric has a sample. */
export function exposedFamilies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Names (with where they are used) that none of `families` provides; a histogram also provides its _bucket, _sum and _count series. */
export function unexported(used: readonly Expression[], families: ReadonlyMap<string, string>): string[] {
  const provides = (name: string): boolean => {
    if (families.has(name)) return true;
    const m = /^(.+)_(bucket|sum|count)$/.exec(name);
    return m !== null && ['histogram', 'summary'].includes(families.get(m[1]!) ?? '') && (m[2] !== 'bucket' || families.get(m[1]!) === 'histogram');
  };
  const missing: string[] = [];
  for (const e of used) for (const n of metricNames(e.expr)) if (!provides(n)) missing.push(`${n} (${e.where})`);
  return missing;
}
