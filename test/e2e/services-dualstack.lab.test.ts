/**
 * Issue 14, IPv6 and dual-stack: three control-plane nodes on an IPv4 + IPv6 lab (2001:db8::/32
 * only), peer voting, svc_enable. The control-plane VIP is held in both families; a
 * RequireDualStack Service gets one address of each family; the agent announces the IPv6 ones
 * with unsolicited NAs and answers the prober's NS; the client reaches both over TCP; kill -9 of
 * the holder moves both, and nothing answers twice on the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { distEntry } from '../../lab/agents.js';
import { startCluster, type Cluster } from '../../lab/controlplane.js';
import type { LabHost } from '../../lab/netns.js';
import { watchWire } from '../../lab/wirewatch.js';
import { describeWithApi } from '../lab/with-api.js';
import { inPrefix, ipFromBytes } from '../../src/net/ip.js';
import { until as untilShared } from '../lab/until.js';
import { wallNow } from '../../lab/wallclock.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/e2e/services-dualstack.lab.test.ts: skipped, network namespaces need root');

const PORT = 8080;

/** An unsolicited neighbour advertisement in an Ethernet frame: its target and sender MAC, or null. */
function unsolicitedNa(frame: Buffer): { target: string; mac: string } | null {
  if (frame.length < 14 + 40 + 24 || frame.readUInt16BE(12) !== 0x86dd || frame[14 + 6] !== 58) return null;
  const icmp = frame.subarray(14 + 40);
  if (icmp[0] !== 136) return null;
  const solicited = (icmp[4]! & 0x40) !== 0;
  const override = (icmp[4]! & 0x20) !== 0;
  if (solicited || !override) return null;
  const mac = [...frame.subarray(6, 12)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  return { target: ipFromBytes(icmp.subarray(8, 24)), mac };
}

(isRoot ? describeWithApi : describe.skip)('dual-stack: the VIP and LoadBalancer Services in IPv4 and IPv6 (3 nodes, peers)', () => {
  let cluster: Cluster;

  async function req(method: string, path: string, body?: unknown): Promise<unknown> {
    const via = cluster.cp.servers.find((s) => s.state === 'running');
    const r = await cluster.cp.request(method, path, body, via);
    if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
    return r.body ? (JSON.parse(r.body) as unknown) : undefined;
  }

  const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, stepMs = 100): Promise<T> => untilShared(what, fn, timeoutMs, stepMs);

  const live = () => cluster.lab.nodes.filter((n) => {
    const a = cluster.agents.get(n.name);
    return a !== undefined && a.child.exitCode === null && a.child.signalCode === null;
  });

  /** The nodes with a running agent that have `ip` on lo. */
  async function holdersOf(ip: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of live()) {
      const text = (await cluster.lab.exec(n, ['ip', '-o', 'addr', 'show', 'dev', 'lo'])).stdout;
      if (text.split('\n').some((l) => l.includes(` ${ip}/`))) out.push(n.name);
    }
    return out;
  }

  const oneHolder = (ip: string) => until(`${ip} on exactly one node`, async () => {
    const h = await holdersOf(ip);
    return h.length === 1 ? h[0] : undefined;
  });

  async function tagVia(ip: string, port = PORT): Promise<string | null> {
    const script = `const s=require('net').connect({host:'${ip}',port:${port},timeout:1500});let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(d.trim()||'connected');process.exit(0)});s.on('connect',()=>{if(${port}!==${PORT})process.stdout.write('connected'),process.exit(0)});s.on('error',()=>process.exit(1));s.on('timeout',()=>process.exit(1))`;
    const r = await cluster.lab.exec('client', [process.execPath, '-e', script], { timeoutMs: 5000 });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 3, ipv6: true, peers: true, startAgents: false, serviceCidr: '198.19.240.0/20,2001:db8:ffff:ffff::/112' });
    await cluster.cp.apply(`
apiVersion: v1
kind: ConfigMap
metadata: { name: kubevip, namespace: kube-system }
data:
  cidr-global: 198.18.0.128/26,2001:db8:0:0:1::/120
`);
    for (const n of cluster.lab.nodes) {
      cluster.lab.spawn(n, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', n.name, '--port', String(PORT), '--host', '::']);
      cluster.startAgent(n, { svc_enable: 'true', address: `${cluster.lab.vip4},${cluster.lab.vip6}` });
    }
    await Promise.all(cluster.lab.nodes.map((n) => cluster.agents.get(n.name)!.waitForLog((l) => l.msg === 'services started', 30_000)));
  }, 240_000);

  afterAll(async () => {
    await cluster?.destroy();
  }, 60_000);

  it('the control-plane VIP is held in both families by one node, and the API port answers on the IPv6 VIP', async () => {
    const h4 = await oneHolder(cluster.lab.vip4);
    const h6 = await oneHolder(cluster.lab.vip6);
    expect(h6).toBe(h4);
    expect(await until('TCP to [VIP6]:6443', () => tagVia(cluster.lab.vip6, 6443).then((t) => t ?? undefined))).toBe('connected');
  });

  it('a RequireDualStack Service gets one address per family; the client reaches both; the IPv6 one is announced with unsolicited NAs and its NS answered by the holder alone; kill -9 moves both', async () => {
    await req('POST', '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'dual', namespace: 'default' },
      spec: { type: 'LoadBalancer', ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], ports: [{ port: PORT, protocol: 'TCP' }], selector: { app: 'dual' } },
    });
    const ips = await until('two addresses', async () => {
      const s = (await req('GET', '/api/v1/namespaces/default/services/dual')) as { status?: { loadBalancer?: { ingress?: Array<{ ip: string }> } } };
      const list = s.status?.loadBalancer?.ingress?.map((i) => i.ip) ?? [];
      return list.length === 2 ? list : undefined;
    });
    const [v4, v6] = ips as [string, string];
    expect(v4).toMatch(/^198\.18\.0\./);
    expect(inPrefix(v6, '2001:db8:0:0:1::', 120)).toBe(true);
    const holder4 = await oneHolder(v4);
    const holder6 = await oneHolder(v6);
    expect(await until('TCP to the IPv4 address', () => tagVia(v4).then((t) => t ?? undefined))).toBe(holder4);
    expect(await until('TCP to the IPv6 address', () => tagVia(v6).then((t) => t ?? undefined))).toBe(holder6);

    const capture = await cluster.lab.capture({ filter: 'icmp6' });
    const wire = await watchWire(cluster.lab, [v4, v6], 50);
    await sleep(800);
    const victim = holder6;
    const victimMac = cluster.lab.host(victim).mac;
    const killedAt = wallNow();
    cluster.agents.get(victim)!.child.kill('SIGKILL');
    await cluster.agents.get(victim)!.exited;
    const movedTo = await until('the IPv6 address answered from another node', async () => {
      const a = wire.prober.records(v6).flatMap((r) => r.answers).find((x) => x.at > killedAt && x.mac !== victimMac);
      return a ? { mac: a.mac, ms: Math.round(a.at - killedAt) } : undefined;
    }, 10_000, 20);
    const newHolder = cluster.lab.nodes.find((n: LabHost) => n.mac === movedTo.mac)!.name;
    console.log(`[services-dualstack] kill -9 ${victim}: ${v6} answered (NS → NA) by ${newHolder} after ${movedTo.ms} ms`);
    expect(movedTo.ms).toBeLessThan(2000);
    if (holder4 === victim) {
      const ms4 = await until('the IPv4 address answered from another node', async () => {
        const a = wire.prober.records(v4).flatMap((r) => r.answers).find((x) => x.at > killedAt && x.mac !== victimMac);
        return a ? Math.round(a.at - killedAt) : undefined;
      }, 10_000, 20);
      console.log(`[services-dualstack] kill -9 ${victim}: ${v4} answered by another node after ${ms4} ms`);
      expect(ms4).toBeLessThan(2000);
    }
    expect(await until('TCP to the IPv6 address after the move', () => tagVia(v6).then((t) => (t === newHolder ? t : undefined)))).toBe(newHolder);
    await sleep(500);
    const frames = await capture.stop();
    const nas = frames.map((f) => unsolicitedNa(f.frame)).filter((x): x is NonNullable<typeof x> => x !== null && x.target === v6);
    expect(nas.some((n) => n.mac === movedTo.mac), `an unsolicited NA for ${v6} from ${newHolder}`).toBe(true);
    const { events } = await wire.stop();
    expect(events, 'two holders on the wire').toEqual([]);
    cluster.startAgent(cluster.lab.host(victim), { svc_enable: 'true', address: `${cluster.lab.vip4},${cluster.lab.vip6}` });
  }, 90_000);
});
