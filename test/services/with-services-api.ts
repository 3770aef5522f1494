/**
 * The fixture the services API suites share: one kube-apiserver + etcd per suite, an ApiClient
 * with the vipd ServiceAccount (manifests/rbac.yaml) as its only credentials, admin helpers to
 * make and read Services and their Events, and a teardown that stops every runner the suite
 * started before the client and the control plane go, so no watch outlives the API it talks to.
 *
 * Call it at the top of a describeWithApi body: it registers its own beforeAll/afterAll, and
 * vitest runs afterAll hooks in reverse, so a suite's own hooks see a live API on both ends.
 */
import { afterAll, beforeAll } from 'vitest';
import { ApiClient } from '../../src/k8s/client.js';
import { startControlPlane, type ControlPlane } from '../../lab/apiserver.js';
import { createLogger, type Logger } from '../../src/observe/log.js';
import { until as untilShared } from '../lab/until.js';

export const log = createLogger(process.env.VIPD_TEST_LOG ?? 'silent');

export interface Svc {
  metadata: { name: string; namespace: string; resourceVersion: string; uid: string; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: {
    loadBalancer?: { ingress?: Array<{ ip?: string; ipMode?: string }> };
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  };
}

export interface SvcEvent {
  type: string;
  reason: string;
  note: string;
  regarding: { name: string; kind: string };
  reportingController: string;
}

export interface ServicesApiOptions {
  assetsDir: string;
  /** ClusterIP range; the lab's default (198.19.240.0/20) otherwise. */
  serviceCidr?: string;
  /** Created as admin before the client exists; an object gives the Namespace labels. */
  namespaces?: Array<string | { name: string; labels: Record<string, string> }>;
  /** Defaults of `until`. */
  untilMs?: number;
  stepMs?: number;
}

export interface Runner {
  run(signal: AbortSignal): Promise<void>;
}

export interface Started {
  stop: AbortController;
  done: Promise<void>;
}

export interface ServicesApi {
  /** Set once the fixture's beforeAll has run. */
  readonly cp: ControlPlane;
  readonly client: ApiClient;
  readonly log: Logger;
  /** An admin request; HTTP >= 300 throws with the status and the start of the body. */
  req(method: string, path: string, body?: unknown): Promise<unknown>;
  getSvc(ns: string, name: string): Promise<Svc>;
  /** A TCP/80 LoadBalancer Service selecting app=<name>; `spec` overrides any of that. */
  createSvc(ns: string, name: string, spec?: Record<string, unknown>, annotations?: Record<string, string>): Promise<Svc>;
  ingress(s: Svc): Array<string | undefined>;
  /** The vipd.io/Allocated condition. */
  cond(s: Svc): NonNullable<NonNullable<Svc['status']>['conditions']>[number] | undefined;
  until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs?: number, stepMs?: number): Promise<T>;
  /** Writes the address pools: the kube-system/kubevip ConfigMap with this data (kube-vip-cloud-provider's keys). */
  applyPools(data: Record<string, string>): Promise<void>;
  /** Waits until the Service's stored state satisfies `pred` and returns it. */
  statusIs(ns: string, name: string, pred: (s: Svc) => boolean): Promise<Svc>;
  /** events.k8s.io Events about the Service ns/name. */
  events(ns: string, name: string): Promise<SvcEvent[]>;
  /** Runs `x` until its own stop or the teardown, whichever comes first. */
  start(x: Runner): Started;
}

export function useServicesApi(opts: ServicesApiOptions): ServicesApi {
  let cp: ControlPlane | undefined;
  let client: ApiClient | undefined;
  const started: Started[] = [];
  const untilMs = opts.untilMs ?? 15_000;
  const stepMs = opts.stepMs ?? 100;

  const req = async (method: string, path: string, body?: unknown) => {
    const r = await cp!.request(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
    return r.body ? (JSON.parse(r.body) as unknown) : undefined;
  };
  const getSvc = (ns: string, name: string) => req('GET', `/api/v1/namespaces/${ns}/services/${name}`) as Promise<Svc>;
  const until = <T,>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = untilMs, step = stepMs) => untilShared(what, fn, timeoutMs, step);

  beforeAll(async () => {
    cp = await startControlPlane({ assetsDir: opts.assetsDir, servers: [{}], ...(opts.serviceCidr ? { serviceCidr: opts.serviceCidr } : {}), apiServerArgs: ['--endpoint-reconciler-type=none'] });
    for (const ns of opts.namespaces ?? []) {
      const { name, labels } = typeof ns === 'string' ? { name: ns, labels: undefined } : ns;
      await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });
    }
    client = await ApiClient.create({ kubeconfigPath: await cp.serviceAccountKubeconfig(), localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
  }, 240_000);

  afterAll(async () => {
    for (const s of started) s.stop.abort();
    await Promise.allSettled(started.map((s) => s.done));
    client?.close();
    await cp?.destroy();
  }, 60_000);

  return {
    get cp() {
      return cp!;
    },
    get client() {
      return client!;
    },
    log,
    req,
    getSvc,
    createSvc: (ns, name, spec = {}, annotations) =>
      req('POST', `/api/v1/namespaces/${ns}/services`, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
        spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, ...spec },
      }) as Promise<Svc>,
    ingress: (s) => (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip),
    cond: (s) => s.status?.conditions?.find((c) => c.type === 'vipd.io/Allocated'),
    until,
    applyPools: (data) => cp!.apply(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kubevip', namespace: 'kube-system' }, data })),
    statusIs: (ns, name, pred) =>
      until(`${ns}/${name} status`, async () => {
        const s = await getSvc(ns, name);
        return pred(s) ? s : undefined;
      }),
    events: async (ns, name) => {
      const list = (await req('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`)) as { items: SvcEvent[] };
      return list.items.filter((e) => e.regarding.kind === 'Service' && e.regarding.name === name);
    },
    start: (x) => {
      const stop = new AbortController();
      const s = { stop, done: x.run(stop.signal) };
      started.push(s);
      return s;
    },
  };
}
