/**
 * The dashboard and the alerts (monitoring/) against a running agent: one control-plane node in
 * the lab with its own kube-apiserver, vipd with Services and /metrics on, scraped the way
 * Prometheus would. Every metric a panel or a rule names must be in that /metrics, and the series
 * the per-node panels join on and the "nobody holds the VIP" alert sums must have samples.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, type Cluster } from '../../lab/controlplane.js';
import { describeWithApi } from '../lab/with-api.js';
import { exposedFamilies, monitoringExpressions, unexported } from '../monitoring/promql.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/e2e/monitoring.lab.test.ts: skipped, network namespaces need root');

(isRoot ? describeWithApi : describe.skip)('monitoring/ against a running agent (1 node, real API server)', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 1, id: 'mon', agentEnv: { svc_enable: 'true', prometheus_server: ':2112' } });
  }, 180_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  async function scrape(): Promise<string> {
    const n = cluster.lab.nodes[0]!;
    const r = await cluster.lab.exec(n, [process.execPath, '-e', "fetch('http://127.0.0.1:2112/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))"]);
    return r.code === 0 ? r.stdout : '';
  }

  it('exports every metric the dashboard and the rules name, with samples for the node, holder and health-gate series', async () => {
    const start = performance.now();
    let text = '';
    // Until the agent holds the VIP and its health gate has opened: then every series below has its value.
    while (performance.now() - start < 60_000) {
      text = await scrape();
      if (/^vipd_vip_holding\{vip="198\.18\.0\.100"\} 1$/m.test(text) && /^vipd_local_api_healthy 1$/m.test(text)) break;
      await sleep(250);
    }
    expect(text).toMatch(/^vipd_vip_holding\{vip="198\.18\.0\.100"\} 1$/m);
    expect(text).toMatch(/^vipd_local_api_healthy 1$/m);
    expect(text).toMatch(/^vipd_node_info\{node="n1"\} 1$/m);
    const families = exposedFamilies(text);
    expect(families.get('vipd_takeover_seconds')).toBe('histogram');
    expect(unexported(monitoringExpressions(), families)).toEqual([]);
  });
});
