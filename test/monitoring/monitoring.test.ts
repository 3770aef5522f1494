/**
 * monitoring/: the Grafana dashboard and the PrometheusRule (docs/monitoring.md). Their structure,
 * their PromQL (parsed with Prometheus' grammar), and every metric they name being one vipd
 * registers. test/e2e/monitoring.lab.test.ts checks the same names against a running agent's /metrics.
 */
import { describe, expect, it } from 'vitest';
import { registry } from '../../src/observe/metrics.js';
import { allPanels, metricNames, monitoringExpressions, readDashboard, readRules, unexported } from './promql.js';

interface Rule {
  alert?: string;
  record?: string;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

describe('PromQL metric names (Prometheus grammar)', () => {
  it('finds the selected metrics, not functions, aggregations, labels or Grafana variables', () => {
    expect(metricNames('sum by (vip) (vipd_vip_holding) > 1 unless on (vip) count by (vip) (vipd_bgp_announcing{vip=~"$vip"})')).toEqual(['vipd_bgp_announcing', 'vipd_vip_holding']);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(vipd_takeover_seconds_bucket[$__rate_interval])))')).toEqual(['vipd_takeover_seconds_bucket']);
    expect(metricNames('absent(vipd_node_info)')).toEqual(['vipd_node_info']);
  });

  it('refuses an expression Prometheus would refuse', () => {
    expect(() => metricNames('sum by (vip (vipd_vip_holding)')).toThrow(/syntax error/);
    expect(() => metricNames('rate(vipd_api_errors_total[5m]')).toThrow(/syntax error/);
  });

  it('a histogram provides its _bucket, _sum and _count series; a gauge does not', () => {
    const families = new Map([
      ['vipd_takeover_seconds', 'histogram'],
      ['vipd_vip_holding', 'gauge'],
    ]);
    expect(unexported([{ where: 'x', expr: 'vipd_takeover_seconds_bucket + vipd_takeover_seconds_count' }], families)).toEqual([]);
    expect(unexported([{ where: 'x', expr: 'vipd_vip_holding_count + vipd_nope' }], families)).toEqual(['vipd_nope (x)', 'vipd_vip_holding_count (x)']);
  });
});

describe('monitoring/prometheus/vipd-rules.yaml', () => {
  const doc = readRules() as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; labels?: Record<string, unknown> }; spec?: { groups?: unknown } };
  const groups = (doc.spec?.groups ?? []) as Array<{ name?: unknown; interval?: unknown; rules?: Rule[] }>;
  const rules = groups.flatMap((g) => g.rules ?? []);

  it('is a PrometheusRule of the Prometheus Operator (monitoring.coreos.com/v1)', () => {
    expect(doc.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(doc.kind).toBe('PrometheusRule');
    expect(doc.metadata?.name).toBe('vipd');
    expect(typeof doc.metadata?.namespace).toBe('string');
    expect(doc.metadata?.labels?.['app.kubernetes.io/name']).toBe('vipd');
    expect(Array.isArray(doc.spec?.groups)).toBe(true);
    expect(Object.keys(doc.spec ?? {})).toEqual(['groups']);
  });

  it('groups have unique names and rules; every rule is an alert with an expression, a duration, a severity and what to do', () => {
    const names = groups.map((g) => g.name);
    expect(names.every((n) => typeof n === 'string' && n !== '')).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    for (const g of groups) {
      expect(Array.isArray(g.rules) && g.rules.length > 0, `group ${String(g.name)} has rules`).toBe(true);
      expect(Object.keys(g).every((k) => ['name', 'interval', 'rules', 'limit', 'partial_response_strategy'].includes(k)), `group ${String(g.name)} keys`).toBe(true);
    }
    const alerts = rules.map((r) => r.alert);
    expect(new Set(alerts).size).toBe(alerts.length);
    for (const r of rules) {
      const at = `rule ${String(r.alert ?? r.record)}`;
      expect(Object.keys(r).every((k) => ['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(k)), `${at} keys`).toBe(true);
      expect(r.alert, at).toMatch(/^Vipd[A-Z][A-Za-z]+$/);
      expect(typeof r.expr, at).toBe('string');
      expect(() => metricNames(r.expr as string), at).not.toThrow();
      if (r.for !== undefined) expect(r.for, at).toMatch(/^(\d+(ms|s|m|h|d|w|y))+$/);
      expect(['critical', 'warning', 'info'], at).toContain(r.labels?.severity);
      expect(typeof r.annotations?.summary, at).toBe('string');
      expect(typeof r.annotations?.description, at).toBe('string');
      // Templates must close: a broken {{ }} is only found when the alert fires.
      for (const text of Object.values(r.annotations ?? {})) expect((String(text).match(/\{\{/g) ?? []).length, at).toBe((String(text).match(/\}\}/g) ?? []).length);
    }
  });

  it("covers the issue's alerts: no holder, two nodes claiming one VIP, pool exhausted, peer authentication failures, API unreachable", () => {
    const byAlert = new Map(rules.map((r) => [r.alert, String(r.expr)]));
    expect(byAlert.get('VipdVipNoHolder')).toContain('vipd_vip_holding');
    expect(byAlert.get('VipdVipMultipleHolders')).toContain('vipd_vip_holding');
    expect(byAlert.get('VipdVipConflict')).toContain('vipd_conflicts_total');
    expect(byAlert.get('VipdPoolExhausted')).toContain('reason="exhausted"');
    expect(byAlert.get('VipdPeerAuthenticationFailures')).toContain('bad-mac');
    expect(byAlert.get('VipdApiUnreachable')).toContain('vipd_local_api_healthy');
  });
});

describe('monitoring/grafana/vipd-dashboard.json', () => {
  const d = readDashboard();
  const panels = allPanels(d);

  it('is a Grafana dashboard with a data source variable, unique panel ids and a query on every panel', () => {
    expect(d.uid).toBe('vipd');
    expect(typeof d.title).toBe('string');
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.templating?.list?.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    const ids = panels.map((p) => (p as { id?: number }).id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      if (p.type === 'row') continue;
      expect(p.targets?.length, `panel ${p.title ?? '?'}`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(() => metricNames(t.expr ?? ''), `panel ${p.title ?? '?'}`).not.toThrow();
      expect((p as { datasource?: { uid?: string } }).datasource?.uid).toBe('${datasource}');
    }
  });

  it("shows what the issue asks for: holder per node, transitions with reasons, takeover time, peer messages, conflicts, Services, pools, API errors", () => {
    const uses = (metric: string) => panels.filter((p) => (p.targets ?? []).some((t) => t.expr !== undefined && metricNames(t.expr).includes(metric))).map((p) => p.title);
    expect(uses('vipd_vip_holding')).toContain('VIP holder per node');
    expect(uses('vipd_vip_transitions_total')).toContain('Transitions by reason');
    expect(uses('vipd_takeover_seconds_bucket').length).toBeGreaterThan(0);
    expect(uses('vipd_peer_messages_total')).toContain('Peer messages by outcome');
    expect(uses('vipd_conflicts_total').length).toBeGreaterThan(0);
    expect(uses('vipd_services_assigned')).toEqual(uses('vipd_services_pending'));
    expect(uses('vipd_pool_addresses')).toContain('Pool usage');
    expect(uses('vipd_api_errors_total')).toContain('API errors by operation');
  });
});

describe('every metric the dashboard and the rules name', () => {
  it("is one vipd's registry has (the running agent's /metrics: test/e2e/monitoring.lab.test.ts)", async () => {
    const families = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
    const used = monitoringExpressions();
    expect(used.length).toBeGreaterThan(20);
    expect(unexported(used, families)).toEqual([]);
  });
});
