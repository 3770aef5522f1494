/**
 * The control plane of lab/controlplane.ts behind a router: tor runs FRR (ECMP, BFD), every node
 * runs its own FRR next to vipd in BGP mode, and the remote client reaches the VIP only through
 * tor. Used by the BGP end-to-end tests and `npm run bench:bgp`.
 *
 * AS plan (private numbers only): tor 65000, every node 65001 (eBGP to tor; the nodes share one
 * AS, so tor's copy of a node's route never comes back to another node: AS-path loop check).
 * Each node's FRR starts empty: vipd configures it over the vty sockets, as in production.
 */
import type { AgentProcess } from './agents.js';
import { distEntry } from './agents.js';
import { routesTo, torFrrConfig } from './bgp.js';
import { startCluster, type Cluster, type ClusterOptions } from './controlplane.js';
import { startFrr, type FrrInstance } from './frr.js';
import type { LabHost } from './netns.js';

export const TOR_ASN = 65000;
export const NODE_ASN = 65001;
export const TAG_PORT = 7000;

export interface BgpClusterOptions extends Pick<ClusterOptions, 'nodes' | 'ipv6' | 'id' | 'serviceCidr' | 'peers'> {
  /** BFD on tor and in vipd (default true). */
  bfd?: boolean;
  /** tor's BGP timers; default FRR's (keepalive 60 s, hold 180 s). */
  torTimers?: { keepaliveS: number; holdS: number };
  /** Extra environment for every vipd. */
  agentEnv?: Record<string, string>;
  /** Start vipd on every node at once (default true). */
  startAgents?: boolean;
}

export interface BgpCluster {
  cluster: Cluster;
  tor: FrrInstance;
  /** Each node's FRR, by node name; replaced when restarted. */
  frr: Map<string, FrrInstance>;
  /** The VIPs vipd announces: IPv4, and IPv6 when the lab has it. */
  vips: string[];
  bgpEnv(node: LabHost, extra?: Record<string, string>): Record<string, string>;
  startAgent(node: LabHost, extra?: Record<string, string>): AgentProcess;
  /** Starts (again) a node's FRR, empty: vipd configures it. */
  startNodeFrr(node: LabHost): Promise<FrrInstance>;
  /** A tag server on TAG_PORT on a node (answers with the node's name, on the VIP too). */
  startTagServer(node: LabHost): void;
  /** tor's kernel next hops (gateway addresses) for a VIP's host prefix, sorted. */
  nextHops(vip: string): Promise<string[]>;
  /**
   * `count` short TCP connections from remote to ip:TAG_PORT, one after another, each from a new
   * source port (so tor hashes each afresh): the answers per node, and 'failed'.
   */
  flowsPerNode(ip: string, count: number): Promise<Record<string, number>>;
  destroy(): Promise<void>;
}

export async function startBgpCluster(opts: BgpClusterOptions = {}): Promise<BgpCluster> {
  const bfd = opts.bfd ?? true;
  const cluster = await startCluster({ ...opts, router: true, startAgents: false });
  const { lab } = cluster;
  const frr = new Map<string, FrrInstance>();
  try {
    const tor = lab.tor!;
    const neighbors = lab.nodes.flatMap((n) => [{ address: n.ipv4, asn: NODE_ASN }, ...(lab.ipv6Enabled ? [{ address: n.ipv6, asn: NODE_ASN }] : [])]);
    const torFrr = await startFrr(lab, tor, { config: torFrrConfig({ asn: TOR_ASN, routerId: tor.ipv4, neighbors, bfd: bfd ? { intervalMs: 100, multiplier: 3 } : false, ...(opts.torTimers ? { timers: opts.torTimers } : {}) }) });
    const vips = [lab.vip4, ...(lab.ipv6Enabled ? [lab.vip6] : [])];
    const bc: BgpCluster = {
      cluster,
      tor: torFrr,
      frr,
      vips,
      bgpEnv(node, extra = {}) {
        const f = frr.get(node.name);
        if (!f) throw new Error(`no FRR on ${node.name}`);
        return cluster.agentEnv(node, {
          address: vips.join(','),
          vip_interface: 'eth0',
          bgp_enable: 'true',
          bgp_as: String(NODE_ASN),
          bgp_peers: [`${tor.ipv4}:${TOR_ASN}`, ...(lab.ipv6Enabled ? [`[${tor.ipv6}]:${TOR_ASN}`] : [])].join(','),
          bgp_frr_socket_dir: f.vtyDir,
          bgp_bfd: String(bfd),
          ...opts.agentEnv,
          ...extra,
        });
      },
      startAgent(node, extra = {}) {
        return cluster.startAgent(node, bc.bgpEnv(node, extra));
      },
      async startNodeFrr(node) {
        const f = await startFrr(lab, node);
        frr.set(node.name, f);
        return f;
      },
      startTagServer(node) {
        lab.spawn(node, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', node.name, '--port', String(TAG_PORT)]);
      },
      async nextHops(vip) {
        const prefix = vip.includes(':') ? `${vip}/128` : `${vip}/32`;
        return (await routesTo(torFrr, prefix)).map((h) => h.gateway ?? '').filter(Boolean).sort();
      },
      async flowsPerNode(ip, count) {
        // One short process in remote's namespace makes all the connections.
        const script = `
          const net = require('node:net');
          const counts = {};
          const one = () => new Promise((res) => {
            const s = net.connect({ host: ${JSON.stringify(ip)}, port: ${TAG_PORT}, timeout: 1000 });
            let tag = '';
            s.on('data', (d) => (tag += d));
            s.on('close', () => { const k = tag.trim() || 'failed'; counts[k] = (counts[k] || 0) + 1; res(); });
            s.on('error', () => {});
            s.on('timeout', () => s.destroy());
          });
          (async () => { for (let i = 0; i < ${count}; i++) await one(); console.log(JSON.stringify(counts)); })();`;
        const r = await lab.exec(lab.remote!, [process.execPath, '-e', script]);
        return JSON.parse(r.stdout.trim()) as Record<string, number>;
      },
      async destroy() {
        await cluster.destroy();
      },
    };
    for (const n of lab.nodes) {
      await bc.startNodeFrr(n);
      bc.startTagServer(n);
    }
    if (opts.startAgents !== false) for (const n of lab.nodes) bc.startAgent(n);
    return bc;
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}
