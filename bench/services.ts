/**
 * `npm run bench:services -- [--services 1000] [--steady-seconds 60]`
 *
 * LoadBalancer Services at scale against a real kube-apiserver + etcd (loopback, no lab network
 * needed): three services controllers (nodes n1, n2, n3; n1 allocates, all three plan what they
 * announce), their own ServiceAccount credentials (manifests/rbac.yaml), N Services created as
 * fast as a client can (16 in parallel over kept-alive connections). Measured:
 * - seconds_to_assigned: first create → every Service has an address in status (API truth,
 *   polled every 250 ms);
 * - seconds_to_announced: first create → the union of the three nodes' desired sets covers
 *   every assigned address (the handoff delay before a first claim, 2 s by default, included);
 * - api_writes_per_min_steady: writes by the controllers' ServiceAccount over the next
 *   --steady-seconds once everything settled, counted in the API server's audit log.
 *
 * The agent does not run the services controller yet (svc_enable is being wired into it), so the
 * controllers run in this process, driven as the agent would (setMembers, setAllocator); the
 * row's note says so. The control-plane Lease and any membership heartbeats are the agent's and
 * not included here; bench:footprint counts the agent's own requests.
 */
import { setMaxListeners } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../src/k8s/client.js';
import { startControlPlane, type ControlPlane } from '../lab/apiserver.js';
import { createLogger } from '../src/observe/log.js';
import { ServicesController } from '../src/services/controller.js';
import { parseServicesArgs } from './lib/args.js';
import { AUDIT_POLICY, countRequests, parseAuditLog, perMinute } from './lib/audit.js';
import { rawApi } from './lib/rawapi.js';
import { emitRow, machine, progress, writeResults } from './lib/results.js';
import { benchArgs, runMain } from './lib/main.js';

const NODES = ['n1', 'n2', 'n3'];
const NAMESPACE = 'bench';
const POOL = '198.18.128.0/20';
const SA_USER = 'system:serviceaccount:kube-system:vipd';
const CREATE_PARALLEL = 16;

export interface ServicesRow {
  services: number;
  seconds_to_assigned: number | null;
  seconds_to_announced: number | null;
  api_writes_per_min_steady: number;
  seconds_to_create: number;
  /** All requests (reads and watches included) by the controllers at steady state. */
  api_requests_per_min_steady: number;
  /** Writes by the controllers from the first create until all were announced (status patches, Events). */
  api_writes_to_settle: number;
  steady_seconds: number;
  note?: string;
}

interface SvcList {
  items: Array<{ metadata: { name: string }; status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } }>;
}

const secs = (ms: number): number => Math.round(ms / 100) / 10;

async function main(): Promise<number> {
  const args = benchArgs('bench:services', 'usage: npm run bench:services -- [--services 1000] [--steady-seconds 60]', () => parseServicesArgs(process.argv.slice(2)), { root: false });
  if (args === null) return 2;
  const started = new Date().toISOString();
  const mach = machine();
  const t0 = performance.now();
  const dir = await mkdtemp(join(tmpdir(), `vipd-bench-svc-${process.pid}-`));
  const auditLog = join(dir, 'audit.log');
  await writeFile(join(dir, 'policy.yaml'), AUDIT_POLICY);
  const log = createLogger(process.env.VIPD_BENCH_LOG ?? 'silent');
  let cp: ControlPlane | undefined;
  const clients: ApiClient[] = [];
  const closers: Array<() => void> = [];
  const stop = new AbortController();
  // Three controllers × their reflectors all listen on this one signal.
  setMaxListeners(64, stop.signal);
  const running: Array<Promise<void>> = [];
  let row: ServicesRow | undefined;
  process.once('SIGINT', () => {
    stop.abort();
    void (cp?.destroy() ?? Promise.resolve()).finally(() => process.exit(130));
  });
  try {
    progress('starting etcd and a kube-apiserver …');
    cp = await startControlPlane({
      servers: [{}],
      apiServerArgs: [`--audit-policy-file=${join(dir, 'policy.yaml')}`, `--audit-log-path=${auditLog}`, '--audit-log-maxsize=0'],
    });
    const c = cp;
    const ns = await c.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    if (ns.status >= 300) throw new Error(`create namespace: HTTP ${ns.status}: ${ns.body.slice(0, 300)}`);
    await c.apply(`apiVersion: v1\nkind: ConfigMap\nmetadata: { name: kubevip, namespace: kube-system }\ndata:\n  cidr-global: ${POOL}\n`);

    // Three nodes' controllers, each with its own client, as three agents would have.
    const kubeconfig = await c.serviceAccountKubeconfig();
    const firstSeen = new Map<string, number>();
    const controllers: ServicesController[] = [];
    for (const node of NODES) {
      const client = await ApiClient.create({ kubeconfigPath: kubeconfig, localEndpoint: c.servers[0]!.url, discoverEndpoints: false, log });
      clients.push(client);
      const ctl = new ServicesController({ client, nodeName: node, log });
      ctl.onDesired((ips) => {
        const now = performance.now();
        for (const ip of ips) if (!firstSeen.has(ip)) firstSeen.set(ip, now);
      });
      ctl.setMembers(NODES);
      ctl.setAllocator(node === NODES[0]);
      controllers.push(ctl);
      running.push(ctl.run(stop.signal).catch(() => undefined));
    }
    const syncDeadline = Date.now() + 60_000;
    while (!controllers.every((x) => x.synced())) {
      if (Date.now() > syncDeadline) throw new Error('controllers did not sync within 60 s');
      await sleep(100);
    }
    // The creating client keeps its connections (a new TLS handshake per create would make the
    // client, not the controllers, the bottleneck).
    const admin = rawApi(c.adminKubeconfig, CREATE_PARALLEL + 1);
    closers.push(() => admin.close());
    const req = async (method: string, path: string, body?: unknown): Promise<string> => {
      const r = await admin.request(method, path, body);
      if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
      return r.body;
    };
    progress(`creating ${args.services} Services (${CREATE_PARALLEL} in parallel) …`);

    // --- create
    const wallStart = Date.now();
    const start = performance.now();
    let next = 0;
    const create = async (): Promise<void> => {
      while (next < args.services) {
        const i = next++;
        await req('POST', `/api/v1/namespaces/${NAMESPACE}/services`, {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: `svc-${String(i).padStart(5, '0')}`, namespace: NAMESPACE },
          spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: `a${i}` } },
        });
      }
    };
    // Assignment is polled while creating: it may finish moments after the last create.
    let assignedAt: number | null = null;
    let assignedIps: string[] = [];
    const poll = (async () => {
      const deadline = start + 600_000;
      while (performance.now() < deadline && !stop.signal.aborted) {
        const list = JSON.parse(await req('GET', `/api/v1/namespaces/${NAMESPACE}/services`)) as SvcList;
        const ips = list.items.flatMap((s) => (s.status?.loadBalancer?.ingress ?? []).map((x) => x.ip).filter((x): x is string => !!x).slice(0, 1));
        if (list.items.length === args.services && ips.length === args.services) {
          assignedAt = performance.now();
          assignedIps = ips;
          return;
        }
        await sleep(250);
      }
    })();
    await Promise.all(Array.from({ length: CREATE_PARALLEL }, create));
    const createdAt = performance.now();
    progress(`created in ${secs(createdAt - start)} s; waiting for addresses …`);
    await poll;
    if (assignedAt === null) throw new Error('not every Service got an address within 10 min');
    progress(`all assigned after ${secs(assignedAt - start)} s; waiting until the nodes' plans cover them …`);

    let announcedAt: number | null = null;
    const annDeadline = performance.now() + 120_000;
    while (performance.now() < annDeadline) {
      if (assignedIps.every((ip) => firstSeen.has(ip))) {
        const union = new Set(controllers.flatMap((x) => x.desired()));
        if (assignedIps.every((ip) => union.has(ip))) {
          announcedAt = Math.max(...assignedIps.map((ip) => firstSeen.get(ip)!));
          break;
        }
      }
      await sleep(100);
    }
    const settleAt = performance.now();
    const unique = new Set(assignedIps).size;

    // --- steady state
    await sleep(5_000);
    progress(`steady state: counting API requests for ${args.steadySeconds} s …`);
    const steadyFrom = Date.now();
    await sleep(args.steadySeconds * 1000);
    const steadyTo = Date.now();
    const events = parseAuditLog(await readFile(auditLog, 'utf8'));
    const byVipd = (e: { user: string }): boolean => e.user === SA_USER;
    const steady = countRequests(events, steadyFrom, steadyTo, byVipd);
    const settling = countRequests(events, wallStart, wallStart + (settleAt - start), byVipd);
    const notes = [
      'svc_enable not wired into the agent yet: 3 ServicesControllers run in the bench process (n1 allocates), default handoff delay 2 s',
      unique !== args.services ? `only ${unique} distinct addresses for ${args.services} Services` : undefined,
      announcedAt === null ? 'the nodes never covered every address within 120 s' : undefined,
    ].filter(Boolean);
    row = {
      services: args.services,
      seconds_to_assigned: secs(assignedAt - start),
      seconds_to_announced: announcedAt === null ? null : secs(Math.max(announcedAt, assignedAt) - start),
      api_writes_per_min_steady: perMinute(steady.writes, steadyTo - steadyFrom),
      seconds_to_create: secs(createdAt - start),
      api_requests_per_min_steady: perMinute(steady.total, steadyTo - steadyFrom),
      api_writes_to_settle: settling.writes,
      steady_seconds: args.steadySeconds,
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
    emitRow(row);
  } finally {
    stop.abort();
    await Promise.allSettled(running);
    for (const cl of clients) cl.close();
    for (const close of closers) close();
    await cp?.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  const file = await writeResults('services', {
    bench: 'services',
    command: ['npm run bench:services', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    started,
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: mach,
    loadavg1End: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    args,
    rows: row ? [row] : [],
  });
  progress(`done; results in ${file}`);
  return 0;
}

runMain('bench:services', main);
