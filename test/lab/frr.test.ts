import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lab/exec.js';
import { bfdPeers, bgpPeers, routesTo, torFrrConfig } from '../../lab/bgp.js';
import { frrMissing, startFrr, type FrrInstance } from '../../lab/frr.js';
import { addRemoteRoutes, createLab, REMOTE4, REMOTE6, type Lab, type LabHost } from '../../lab/netns.js';
import { describeRequiring } from './requires.js';
import { until } from './until.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/lab/frr.test.ts: skipped, network namespaces need root');

async function namespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

async function ping(lab: Lab, from: LabHost, to: string): Promise<boolean> {
  return (await lab.exec(from, ['ping', '-n', '-c', '1', '-W', '1', to])).code === 0;
}

describe.skipIf(!isRoot)('router lab (router: true)', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await createLab({ nodes: 2, router: true, extras: ['etcd'] });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('puts tor on the bridge as the last extra and remote behind it, with default routes via tor', () => {
    expect(lab.extras.map((h) => [h.name, h.ipv4, h.ipv6])).toEqual([
      ['etcd', '198.18.0.3', '2001:db8::3'],
      ['tor', '198.18.0.4', '2001:db8::4'],
    ]);
    expect(lab.tor).toBe(lab.host('tor'));
    expect(lab.remote).toMatchObject({ name: 'remote', role: 'remote', ns: `vipd-${lab.id}-remote`, ipv4: REMOTE4, ipv6: REMOTE6 });
    expect(lab.hosts).not.toContain(lab.remote);
  });

  it('remote reaches the nodes over v4 and v6 through tor (forwarding on, return routes on the nodes)', async () => {
    const remote = lab.remote!;
    for (const n of lab.nodes) {
      expect(await ping(lab, remote, n.ipv4), n.ipv4).toBe(true);
      expect(await ping(lab, remote, n.ipv6), n.ipv6).toBe(true);
    }
    // etcd is not a node: no route back until asked for.
    expect(await ping(lab, remote, lab.host('etcd').ipv4)).toBe(false);
    await addRemoteRoutes(lab, ['etcd']);
    await addRemoteRoutes(lab, ['etcd']); // again: replace, not an error
    expect(await ping(lab, remote, lab.host('etcd').ipv4)).toBe(true);
    const tor = lab.tor!;
    for (const k of ['ipv4/ip_forward', 'ipv6/conf/all/forwarding', 'ipv4/fib_multipath_hash_policy', 'ipv6/fib_multipath_hash_policy']) {
      expect((await lab.exec(tor, ['cat', `/proc/sys/net/${k}`])).stdout.trim(), k).toBe('1');
    }
  });

  it('without a BGP route tor reaches the VIP by ARP on its connected /24', async () => {
    const n2 = lab.nodes[1]!;
    await lab.exec(n2, ['ip', 'addr', 'add', `${lab.vip4}/24`, 'dev', 'eth0'], { check: true });
    try {
      expect(await ping(lab, lab.remote!, lab.vip4)).toBe(true);
      const neigh = JSON.parse((await lab.exec(lab.tor!, ['ip', '-j', 'neigh', 'show', lab.vip4], { check: true })).stdout) as Array<{ lladdr?: string }>;
      expect(neigh[0]?.lladdr).toBe(n2.mac);
    } finally {
      await lab.exec(n2, ['ip', 'addr', 'del', `${lab.vip4}/24`, 'dev', 'eth0']);
    }
  });

  it('linkDown(remote) takes tor\'s eth1 down; remote cannot be partitioned', async () => {
    const remote = lab.remote!;
    await lab.linkDown(remote);
    expect(await ping(lab, remote, lab.nodes[0]!.ipv4)).toBe(false);
    await lab.linkUp(remote);
    await until('remote reaches n1 again', () => ping(lab, remote, lab.nodes[0]!.ipv4), 5000);
    await expect(lab.partition([[remote], ['n1']])).rejects.toThrow(/not on the bridge/);
  });
});

const FRR_SUITE = 'FRR in the lab: eBGP + BFD from two nodes to tor';
function frrSuite(): void {
  let lab: Lab;
  let tor: FrrInstance;
  const nodes: FrrInstance[] = [];
  let names: string[] = [];

  // What vipd's configuration does, by hand: only the VIP leaves the node, one session per family.
  const nodeConfig = (lab: Lab, i: number): string => {
    const t = lab.tor!;
    const n = lab.nodes[i]!;
    const neighbor = (a: string): string => ` neighbor ${a} remote-as 65000\n neighbor ${a} timers connect 1\n neighbor ${a} bfd profile fast`;
    return [
      `ip prefix-list LAB-VIP4 seq 5 permit ${lab.vip4}/32`,
      `ipv6 prefix-list LAB-VIP6 seq 5 permit ${lab.vip6}/128`,
      'route-map LAB-VIP permit 10\n match ip address prefix-list LAB-VIP4\nexit',
      'route-map LAB-VIP permit 20\n match ipv6 address prefix-list LAB-VIP6\nexit',
      'bfd\n profile fast\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n exit\nexit',
      `router bgp ${65001 + i}\n bgp router-id ${n.ipv4}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast`,
      neighbor(t.ipv4),
      neighbor(t.ipv6),
      ` address-family ipv4 unicast\n  redistribute connected route-map LAB-VIP\n  neighbor ${t.ipv4} activate\n exit-address-family`,
      ` address-family ipv6 unicast\n  redistribute connected route-map LAB-VIP\n  neighbor ${t.ipv6} activate\n exit-address-family`,
      'exit',
      '',
    ].join('\n');
  };
  const gateways = async (prefix: string): Promise<string[]> => (await routesTo(tor, prefix)).map((h) => h.gateway ?? `dev ${h.dev}`).sort();
  const logs = (): string => [tor, ...nodes].map((f) => f?.output() ?? '').join('\n');

  beforeAll(async () => {
    lab = await createLab({ nodes: 2, router: true });
    names = [...lab.hosts, lab.remote!].map((h) => h.ns);
    const neighbors = lab.nodes.flatMap((n, i) => [
      { address: n.ipv4, asn: 65001 + i },
      { address: n.ipv6, asn: 65001 + i },
    ]);
    let rest: FrrInstance[];
    [tor, ...rest] = await Promise.all([
      startFrr(lab, 'tor', { config: torFrrConfig({ asn: 65000, routerId: lab.tor!.ipv4, neighbors }) }),
      ...lab.nodes.map((n, i) => startFrr(lab, n, { config: nodeConfig(lab, i) })),
    ]);
    nodes.push(...rest);
  });
  afterAll(async () => {
    await lab?.destroy();
    const left = await namespaces();
    for (const n of names) expect(left).not.toContain(n);
  });

  it('starts zebra, bgpd and bfdd per host with their own sockets, and rejects a bad line', async () => {
    expect(tor.dir).toBe(`${lab.tmpDir}/frr/tor`);
    expect(tor.vtyDir).toBe(tor.dir);
    expect((await tor.vtysh('show daemons')).trim().split(/\s+/).sort()).toEqual(['bfdd', 'bgpd', 'zebra']);
    await expect(tor.apply('router bgp 65000\n no-such-command here\nexit\n')).rejects.toThrow(/rejected/);
  });

  it('establishes the four sessions (v4 and v6 per node) with BFD up', async () => {
    const peers = await until(
      'tor sessions Established',
      async () => {
        const p = await bgpPeers(tor);
        return p.length === 4 && p.every((x) => x.state === 'Established') && p;
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });
    expect(peers.map((p) => [p.family, p.address, p.remoteAs]).sort()).toEqual([
      ['ipv4', '198.18.0.11', 65001],
      ['ipv4', '198.18.0.12', 65002],
      ['ipv6', '2001:db8::11', 65001],
      ['ipv6', '2001:db8::12', 65002],
    ]);
    await until('BFD up on tor', async () => (await bfdPeers(tor)).filter((s) => s.status === 'up').length === 4, 10_000);
  });

  it('the VIP on both nodes\' lo becomes one ECMP route on tor with both nodes as next hops, v4 and v6', async () => {
    for (const n of lab.nodes) {
      await lab.exec(n, ['ip', 'addr', 'add', `${lab.vip4}/32`, 'dev', 'lo'], { check: true });
      await lab.exec(n, ['ip', 'addr', 'add', `${lab.vip6}/128`, 'dev', 'lo'], { check: true });
    }
    const want = async (prefix: string, gws: string[]): Promise<void> => {
      await until(`tor routes ${prefix} via ${gws.join(', ')}`, async () => JSON.stringify(await gateways(prefix)) === JSON.stringify(gws), 10_000).catch(async (err: Error) => {
        throw new Error(`${err.message} (have ${JSON.stringify(await gateways(prefix))})\n${logs()}`);
      });
    };
    await want(lab.vip4, ['198.18.0.11', '198.18.0.12']);
    await want(lab.vip6, ['2001:db8::11', '2001:db8::12']);
    // Only the VIP is announced: the nodes' own /24 and /64 are connected routes too.
    expect((await bgpPeers(tor)).map((p) => p.pfxRcd)).toEqual([1, 1, 1, 1]);
    // L4 hashing: flows from one client that differ only in source port use both nodes.
    const picked = new Set<string>();
    for (let sport = 40000; sport < 40032; sport++) {
      const r = await lab.exec(lab.tor!, ['ip', '-j', 'route', 'get', lab.vip4, 'from', REMOTE4, 'iif', 'eth1', 'ipproto', 'tcp', 'sport', String(sport), 'dport', '6443'], { check: true });
      picked.add((JSON.parse(r.stdout) as Array<{ gateway?: string }>)[0]?.gateway ?? '');
    }
    expect([...picked].sort()).toEqual(['198.18.0.11', '198.18.0.12']);
    expect(await ping(lab, lab.remote!, lab.vip4)).toBe(true);
    expect(await ping(lab, lab.remote!, lab.vip6)).toBe(true);
  });

  it('a pulled cable drops the node from tor\'s route within 1.5 s (BFD), not after the hold time', async () => {
    const t0 = performance.now();
    await lab.linkDown(lab.nodes[0]!);
    await until('n1 gone from the v4 route', async () => JSON.stringify(await gateways(lab.vip4)) === '["198.18.0.12"]', 3000, 20);
    const ms = performance.now() - t0;
    await until('n1 gone from the v6 route', async () => JSON.stringify(await gateways(lab.vip6)) === '["2001:db8::12"]', 3000, 20);
    expect(ms).toBeLessThan(1500);
    const p = await bgpPeers(tor);
    expect(p.filter((x) => x.address.endsWith('::11') || x.address.endsWith('.11')).every((x) => x.state !== 'Established')).toBe(true);
    // A real power-off: the processes die after the cable is already out, so no FIN reaches tor.
    await nodes[0]!.kill();
  });

  it('deleting the VIP from the last node\'s lo withdraws the route', async () => {
    const n2 = lab.nodes[1]!;
    await lab.exec(n2, ['ip', 'addr', 'del', `${lab.vip4}/32`, 'dev', 'lo'], { check: true });
    await lab.exec(n2, ['ip', 'addr', 'del', `${lab.vip6}/128`, 'dev', 'lo'], { check: true });
    await until('v4 route withdrawn', async () => (await gateways(lab.vip4)).length === 0, 3000, 20);
    await until('v6 route withdrawn', async () => (await gateways(lab.vip6)).length === 0, 3000, 20);
    // tor still reaches n2's own address over the connected /24.
    expect(await ping(lab, lab.remote!, n2.ipv4)).toBe(true);
  });

  it('stop() ends the daemons with SIGTERM and tor sees the session close at once', async () => {
    await nodes[1]!.stop();
    await until('n2 sessions down on tor', async () => (await bgpPeers(tor)).every((p) => p.state !== 'Established'), 3000, 20);
  });
}

// Without root nothing in test/lab runs; with root, a missing FRR fails under CI=true (setup.sh installs it).
const missing = isRoot ? frrMissing() : undefined;
if (!isRoot) describe.skip(FRR_SUITE, frrSuite);
else describeRequiring(FRR_SUITE, missing === undefined ? { ok: true, assets: undefined } : { ok: false, skip: missing }, { needs: 'FRR', skipping: 'the FRR lab suite', warn: () => true, unused: undefined }, frrSuite);
