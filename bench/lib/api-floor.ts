/**
 * `node dist/bench/lib/api-floor.js KUBECONFIG LIVEZ_MS RENEW_MS` (RENEW_MS 0: no Lease):
 * what Node itself costs to make an idle vipd agent's API requests, and nothing else. It probes
 * the node's own API server's /livez every LIVEZ_MS with vipd's probe and, with RENEW_MS > 0, keeps
 * a Lease of its own (kube-system/vipd-api-floor-<host>) renewed every RENEW_MS with vipd's Lease
 * store, both over vipd's API client (one keep-alive TLS connection, as the agent's). No election,
 * peers, holder, metrics server or ARP: bench:footprint's api-floor row is this process on each
 * node, the Lease on the first. On SIGTERM it prints what it did, {"probes","failed","renews"}.
 */
import { hostname } from 'node:os';
import { ApiClient } from '../../src/k8s/client.js';
import { LeaseObjectStore, type LeaseLike } from '../../src/k8s/lease-store.js';
import { livezProbeFor } from '../../src/election/lease/setup.js';
import { microTime } from '../../src/k8s/resources.js';
import { createLogger } from '../../src/observe/log.js';

const [kubeconfigPath, livezArg, renewArg] = process.argv.slice(2);
const livezMs = Number(livezArg);
const renewMs = Number(renewArg);
if (!kubeconfigPath || !(livezMs > 0) || !(renewMs >= 0)) {
  process.stderr.write('usage: api-floor KUBECONFIG LIVEZ_MS RENEW_MS (0: no Lease)\n');
  process.exit(2);
}
const log = createLogger('silent');
const client = await ApiClient.create({ kubeconfigPath, discoverEndpoints: false, log });
const counts = { probes: 0, failed: 0, renews: 0 };
const stop = new AbortController();

// The agent's own probe loop (LivezProbe.run), counted on the way through its thresholds.
const probe = livezProbeFor(client, { intervalMs: livezMs }, log);
const applyResult = probe.apply.bind(probe);
probe.apply = (r) => {
  counts.probes++;
  if (!r.ok) counts.failed++;
  applyResult(r);
};
const probing = probe.run(stop.signal).catch(() => undefined);

if (renewMs > 0) {
  const identity = hostname();
  const store = new LeaseObjectStore({ client, namespace: 'kube-system', name: `vipd-api-floor-${identity}`, op: 'floor' });
  const spec = () => ({ spec: { holderIdentity: identity, leaseDurationSeconds: 15, leaseTransitions: 0, renewTime: microTime(Date.now()) } });
  let lease: LeaseLike | undefined = (await store.get(stop.signal)) ?? (await store.create(spec(), stop.signal));
  const renew = async () => {
    try {
      lease = await store.update(lease!.metadata!.resourceVersion!, spec(), stop.signal, lease);
      counts.renews++;
    } catch {
      lease = (await store.get(stop.signal).catch(() => undefined)) ?? lease;
    }
  };
  setInterval(() => void renew(), renewMs);
}

process.once('SIGTERM', () => {
  stop.abort();
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  void probing.finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
});
