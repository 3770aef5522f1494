/**
 * BGP mode end to end (issue 15): three control-plane nodes, each with its own kube-apiserver,
 * its own FRR and vipd in BGP mode; tor (FRR, ECMP, BFD) in front; the remote client behind tor.
 * Everything is real: FRR's bgpd/bfdd/zebra, the kernel's multipath routes, TCP flows.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bfdPeers, bgpPeers } from '../../lab/bgp.js';
import { NODE_ASN, startBgpCluster, TAG_PORT, type BgpCluster } from '../../lab/bgpcluster.js';
import { frrMissing } from '../../lab/frr.js';
import { apiAssets } from '../../lab/k8s-assets.js';
import { describeRequiring } from '../lab/requires.js';
import { until } from '../lab/until.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/e2e/bgp.lab.test.ts: skipped, network namespaces need root');

function assets(): { ok: true; assets: string } | { ok: false; skip: string } {
  const api = apiAssets();
  if (!('dir' in api)) return { ok: false, skip: api.skip };
  const frr = frrMissing();
  return frr ? { ok: false, skip: frr } : { ok: true, assets: api.dir };
}

const spread = (bc: BgpCluster, ip: string, n: number) => bc.flowsPerNode(ip, n);

describeRequiring(
  'BGP mode: every healthy node announces the VIP through its FRR, tor spreads flows (ECMP) and BFD drops a dead node',
  isRoot ? assets() : { ok: false, skip: 'network namespaces need root' },
  { needs: 'kube-apiserver, etcd and FRR', skipping: 'the BGP suite', warn: () => true, unused: '' },
  () => {
    let bc: BgpCluster;
    const nodeIps = (names: string[], family: 4 | 6) => names.map((name) => bc.cluster.lab.host(name)).map((h) => (family === 4 ? h.ipv4 : h.ipv6)).sort();
    const all = () => bc.cluster.lab.nodes.map((n) => n.name);

    beforeAll(async () => {
      // Services too: their pool is off the nodes' subnet, reachable only through BGP.
      bc = await startBgpCluster({ nodes: 3, ipv6: true, agentEnv: { svc_enable: 'true' } });
      await bc.cluster.cp.apply(`
apiVersion: v1
kind: ConfigMap
metadata: { name: kubevip, namespace: kube-system }
data:
  cidr-global: 198.18.2.0/28
`);
    }, 120_000);
    afterAll(async () => {
      await bc?.destroy();
    });

    /** Every node back: API servers, FRR, vipd, and all next hops on tor. */
    async function restore(): Promise<void> {
      const { cluster } = bc;
      for (const s of cluster.cp.servers) if (s.state !== 'running') await s.start();
      for (const n of cluster.lab.nodes) {
        const a = cluster.agents.get(n.name);
        if (!a || a.child.exitCode !== null || a.child.signalCode !== null) bc.startAgent(n);
      }
      // Both families: the IPv6 session of a node that was just powered on can establish after its IPv4 one.
      await until('every node a next hop again, IPv4 and IPv6', async () => (await bc.nextHops(bc.vips[0]!)).length === 3 && (await bc.nextHops(bc.vips[1]!)).length === 3, 60_000);
    }

    it('vipd configures each node\'s FRR; tor has one next hop per node for the VIP, IPv4 and IPv6', async () => {
      await until('six sessions established on tor', async () => (await bgpPeers(bc.tor)).filter((p) => p.state === 'Established').length === 6, 60_000);
      await until('three IPv4 next hops', async () => (await bc.nextHops(bc.vips[0]!)).join() === nodeIps(all(), 4).join(), 30_000);
      await until('three IPv6 next hops', async () => (await bc.nextHops(bc.vips[1]!)).join() === nodeIps(all(), 6).join(), 30_000);
      // What vipd put into FRR: its AS, and nothing but the VIPs goes out.
      const n1 = bc.frr.get('n1')!;
      const conf = await n1.vtysh('show running-config');
      expect(conf).toContain(`router bgp ${NODE_ASN}`);
      expect(conf).toContain('ip prefix-list VIPD-V4 seq 5 permit 198.18.0.100/32');
      const sent = await n1.json<{ advertisedRoutes?: Record<string, unknown> }>(`show bgp ipv4 unicast neighbors ${bc.cluster.lab.tor!.ipv4} advertised-routes json`);
      expect(Object.keys(sent.advertisedRoutes ?? {})).toEqual(['198.18.0.100/32']);
      const logs = bc.cluster.agents.get('n1')!.logs;
      expect(logs.some((l) => l.msg === 'BGP session established')).toBe(true);
    });

    it('many short TCP flows from the remote client are spread over all three nodes', async () => {
      const v4 = await spread(bc, bc.vips[0]!, 300);
      const v6 = await spread(bc, bc.vips[1]!, 150);
      console.log(JSON.stringify({ flows_per_node: { v4, v6 } }));
      for (const counts of [v4, v6]) {
        expect(counts.failed ?? 0).toBe(0);
        expect(Object.keys(counts).sort()).toEqual(all());
        for (const name of all()) expect(counts[name]!).toBeGreaterThan(10);
      }
    });

    it('a node losing power leaves tor\'s route within BFD time, and new flows all succeed on the others', async () => {
      const { lab } = bc.cluster;
      const n3 = lab.host('n3');
      // BFD must be up on n3's session first: a session whose BFD never came up is only dropped at the hold time.
      await until('BFD up with n3', async () => (await bfdPeers(bc.tor)).some((p) => p.peer === n3.ipv4 && p.status === 'up'), 30_000);
      await lab.linkDown(n3);
      await lab.killHost(n3);
      const t0 = performance.now();
      await until('n3 gone from the next hops', async () => !(await bc.nextHops(bc.vips[0]!)).includes(n3.ipv4), 10_000, 20);
      const ms = performance.now() - t0;
      console.log(JSON.stringify({ scenario: 'node power-off', next_hop_removed_ms: Math.round(ms) }));
      const counts = await spread(bc, bc.vips[0]!, 100);
      expect(counts.failed ?? 0).toBe(0);
      expect(Object.keys(counts).sort()).toEqual(['n1', 'n2']);
      // Power back: cable, FRR, tag server, API server, vipd.
      await lab.linkUp(n3);
      await bc.startNodeFrr(n3);
      bc.startTagServer(n3);
      const server = bc.cluster.cp.servers.find((s) => s.netns === n3.ns)!;
      // killHost took its API server down too; the handle learns it through stop().
      await server.stop().catch(() => undefined);
      await server.start();
      bc.startAgent(n3);
      await restore();
      expect(await bc.nextHops(bc.vips[1]!)).toEqual(nodeIps(all(), 6));
    }, 120_000);

    it('an API server that stops is withdrawn (health gate), and announced again when it is back', async () => {
      const { cluster } = bc;
      const n2 = cluster.lab.host('n2');
      const server = cluster.cp.servers.find((s) => s.netns === n2.ns)!;
      await server.stop();
      await until('n2 withdrawn (v4 and v6)', async () => {
        const [v4, v6] = [await bc.nextHops(bc.vips[0]!), await bc.nextHops(bc.vips[1]!)];
        return !v4.includes(n2.ipv4) && !v6.includes(n2.ipv6) && v4.length === 2;
      }, 15_000, 50);
      expect(cluster.agents.get('n2')!.logs.some((l) => l.msg === 'released VIP')).toBe(true);
      await server.start();
      await restore();
    }, 120_000);

    it('SIGTERM withdraws the VIP before vipd exits', async () => {
      const a = bc.cluster.agents.get('n1')!;
      const n1 = bc.cluster.lab.host('n1');
      a.child.kill('SIGTERM');
      await new Promise<void>((res) => (a.child.exitCode !== null ? res() : a.child.once('exit', () => res())));
      // Withdrawn means tor had it out of its table by the time vipd was gone (FRR's UPDATE is queued
      // to TCP before vipd exits; tor needs a moment to apply it to the kernel).
      await until('n1 withdrawn', async () => !(await bc.nextHops(bc.vips[0]!)).includes(n1.ipv4), 500, 10);
      expect(a.child.exitCode).toBe(0);
      expect(a.logs.some((l) => l.msg === 'BGP withdrawal sent')).toBe(true);
      // Drained first: the routes left tor while n1 still had the VIP, and only then did it go.
      const drained = a.logs.findIndex((l) => String(l.msg).startsWith('withdrawn over BGP'));
      const released = a.logs.findIndex((l) => l.msg === 'released VIP');
      expect(drained).toBeGreaterThanOrEqual(0);
      expect(released).toBeGreaterThan(drained);
      const counts = await spread(bc, bc.vips[0]!, 60);
      expect(counts.failed ?? 0).toBe(0);
      await restore();
    }, 120_000);

    async function req(method: string, path: string, body?: unknown): Promise<unknown> {
      const r = await bc.cluster.cp.request(method, path, body, bc.cluster.cp.servers.find((x) => x.state === 'running'));
      if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
      return r.body ? (JSON.parse(r.body) as unknown) : undefined;
    }
    const createSvc = (name: string, spec: Record<string, unknown> = {}) =>
      req('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { type: 'LoadBalancer', ports: [{ port: TAG_PORT, protocol: 'TCP' }], selector: { app: name }, ...spec } });
    const allocated = (name: string) =>
      until(`${name} allocated`, async () => ((await req('GET', `/api/v1/namespaces/default/services/${name}`)) as { status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } }).status?.loadBalancer?.ingress?.[0]?.ip, 30_000);

    it('a LoadBalancer Service (externalTrafficPolicy Cluster) is announced by every node and its flows spread; deleting it withdraws it', async () => {
      await createSvc('web');
      const ip = await allocated('web');
      expect(ip).toMatch(/^198\.18\.2\./);
      await until('three next hops for the service IP', async () => (await bc.nextHops(ip)).join() === nodeIps(all(), 4).join(), 20_000);
      const counts = await spread(bc, ip, 150);
      expect(counts.failed ?? 0).toBe(0);
      expect(Object.keys(counts).sort()).toEqual(all());
      // Only vipd's addresses go out: the service IP is in the service list, nothing else was added.
      expect(await bc.frr.get('n1')!.vtysh('show running-config')).toContain(`ip prefix-list VIPD-SVC-V4 seq 5 permit ${ip}/32`);
      await req('DELETE', '/api/v1/namespaces/default/services/web');
      await until('the service IP withdrawn', async () => (await bc.nextHops(ip)).length === 0, 20_000);
    });

    it('externalTrafficPolicy Local: only the node with a ready endpoint announces the service IP', async () => {
      await createSvc('local', { externalTrafficPolicy: 'Local' });
      const ip = await allocated('local');
      const n2 = bc.cluster.lab.host('n2');
      await req('POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'local-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'local' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [n2.ipv4], nodeName: n2.name, conditions: { ready: true } }],
        ports: [{ port: TAG_PORT, protocol: 'TCP' }],
      });
      await until('n2 the only next hop', async () => (await bc.nextHops(ip)).join() === n2.ipv4, 20_000);
      const counts = await spread(bc, ip, 30);
      expect(counts).toEqual({ n2: 30 });
      await req('DELETE', '/api/v1/namespaces/default/services/local');
      await until('the service IP withdrawn', async () => (await bc.nextHops(ip)).length === 0, 20_000);
    });

    it('when FRR is down vipd says so and does not count the VIP as announced', async () => {
      const n2 = bc.cluster.lab.host('n2');
      await bc.frr.get('n2')!.stop();
      const a = bc.cluster.agents.get('n2')!;
      await until('vipd noticing', async () => a.logs.some((l) => l.msg === 'FRR stopped answering: nothing is announced'), 10_000);
      // ...and tells the cluster: a Warning Event on its Node, where `kubectl describe node` shows it.
      await until('a FrrUnreachable Event on node n2', async () => {
        const list = (await req('GET', '/apis/events.k8s.io/v1/namespaces/default/events')) as { items: Array<{ type: string; reason: string; note?: string; regarding: { kind: string; name: string } }> };
        return list.items.some((e) => e.type === 'Warning' && e.reason === 'FrrUnreachable' && e.regarding.kind === 'Node' && e.regarding.name === 'n2');
      }, 15_000);
      await bc.startNodeFrr(n2);
      // vipd re-applies its configuration to the fresh FRR.
      await until('n2 a next hop again', async () => (await bc.nextHops(bc.vips[0]!)).includes(n2.ipv4), 30_000);
      expect(a.logs.some((l) => l.msg === 'FRR answers again')).toBe(true);
      await restore();
    }, 120_000);
  },
);
