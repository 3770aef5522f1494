/**
 * A control plane in the lab, as kubeadm lays it out: N node namespaces, each with its own
 * kube-apiserver on :6443 (bound to every address, so it serves the VIP when the node holds it),
 * one etcd in its own namespace, and vipd on every node with a kubeconfig whose server is the VIP
 * itself (like kubeadm's admin.conf) and the ServiceAccount credentials users will grant.
 * Used by the end-to-end tests, the demo (`npm run lab`) and the benchmarks.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startAgentProcess, type AgentProcess } from './agents.js';
import { startControlPlane, type ControlPlane } from './apiserver.js';
import { createLab, type Lab, type LabHost } from './netns.js';

export interface ClusterOptions {
  nodes?: number;
  ipv6?: boolean;
  /** Extra environment for every agent (timings, peers, ...). */
  agentEnv?: Record<string, string>;
  /** Peer voting on (vip_peers on every node, a fresh shared key): vipd's default configuration. */
  peers?: boolean;
  /** Start the agents at once (default true). */
  startAgents?: boolean;
  id?: string;
  /**
   * Worker hosts (names like 'w1') on the same bridge, with no API server: `startWorkerAgent` runs
   * vipd there as a DaemonSet would on a worker (Services only, not one of vip_peers).
   */
  workers?: string[];
  /** kube-apiserver's --service-cluster-ip-range (a comma pair for dual-stack Services). */
  serviceCidr?: string;
  /** A router (tor) on the bridge and a remote client behind it (createLab's `router`). */
  router?: boolean;
}

export interface Cluster {
  lab: Lab;
  cp: ControlPlane;
  vip: string;
  /** vip_peers + vip_peer_key_file when the cluster has peers, else empty. */
  peersEnv: Record<string, string>;
  /** Agents by node name; replaced when restarted. */
  agents: Map<string, AgentProcess>;
  /** kubeconfig (ServiceAccount token) whose server is https://VIP:6443, for each node. */
  kubeconfigs: Map<string, string>;
  agentEnv(node: LabHost, extra?: Record<string, string>): Record<string, string>;
  startAgent(node: LabHost, extra?: Record<string, string>): AgentProcess;
  /** vipd on a worker host: svc_enable, no VIP, no cp_enable, vip_peers naming the nodes only. */
  startWorkerAgent(name: string, extra?: Record<string, string>): AgentProcess;
  /** The node names whose vipd logged `holding VIP` last (and not `released VIP` since). */
  holders(): string[];
  destroy(): Promise<void>;
}

/** Lab timings: short enough to watch, with the same ratios as the 15/10/2 s defaults. */
export const LAB_LEASE_ENV = {
  vip_leaseduration: '3',
  vip_renewdeadline: '2',
  vip_retryperiod: '0.5',
  vip_health_interval_ms: '300',
  vip_health_failures: '2',
};

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const lab = await createLab({ nodes: opts.nodes ?? 3, ipv6: opts.ipv6 ?? false, extras: ['etcd', ...(opts.workers ?? [])], ...(opts.id ? { id: opts.id } : {}), ...(opts.router ? { router: true } : {}) });
  let cp: ControlPlane | undefined;
  const agents = new Map<string, AgentProcess>();
  try {
    const etcdHost = lab.host('etcd');
    cp = await startControlPlane({
      etcdNetns: etcdHost.ns,
      etcdAddress: etcdHost.ipv4,
      servers: lab.nodes.map((n) => ({ netns: n.ns, bindAddress: n.ipv4, port: 6443, extraArgs: ['--bind-address=0.0.0.0'] })),
      certIps: [lab.vip4, ...lab.nodes.map((n) => n.ipv4)],
      ...(opts.serviceCidr ? { serviceCidr: opts.serviceCidr } : {}),
    });
    const token = await cp.serviceAccountToken();
    const kubeconfigs = new Map<string, string>();
    const stateRoot = join(lab.tmpDir, 'state');
    for (const n of [...lab.nodes, ...(opts.workers ?? []).map((w) => lab.host(w))]) {
      kubeconfigs.set(n.name, await cp.kubeconfigFor(`https://${lab.vip4}:6443`, { token }));
      await mkdir(join(stateRoot, n.name), { recursive: true });
    }
    const peersEnv: Record<string, string> = {};
    if (opts.peers) {
      peersEnv.vip_peers = lab.nodes.map((n) => `${n.name}=${n.ipv4}:7946`).join(',');
      peersEnv.vip_peer_key_file = await labFile(lab, 'peer.key', randomBytes(32).toString('base64'));
    }
    const cluster: Cluster = {
      lab,
      cp,
      vip: lab.vip4,
      peersEnv,
      agents,
      kubeconfigs,
      agentEnv(node, extra = {}) {
        return {
          address: lab.vip4,
          vip_leaderelection: 'true',
          cp_enable: 'true',
          k8s_config_file: kubeconfigs.get(node.name)!,
          vip_state_dir: join(stateRoot, node.name),
          prometheus_server: '',
          ...LAB_LEASE_ENV,
          ...peersEnv,
          ...opts.agentEnv,
          ...extra,
        };
      },
      startAgent(node, extra = {}) {
        const a = startAgentProcess(lab, node, cluster.agentEnv(node, extra));
        agents.set(node.name, a);
        return a;
      },
      startWorkerAgent(name, extra = {}) {
        const host = lab.host(name);
        const a = startAgentProcess(lab, host, cluster.agentEnv(host, { address: '', cp_enable: 'false', vip_leaderelection: 'false', vip_interface: 'eth0', svc_enable: 'true', ...extra }));
        agents.set(name, a);
        return a;
      },
      holders() {
        const out: string[] = [];
        for (const [name, a] of agents) {
          const last = [...a.logs].reverse().find((l) => l.msg === 'holding VIP' || l.msg === 'released VIP');
          if (last?.msg === 'holding VIP' && a.child.exitCode === null && a.child.signalCode === null) out.push(name);
        }
        return out;
      },
      async destroy() {
        await Promise.allSettled([...agents.values()].map((a) => a.stop(3000)));
        await cp?.destroy();
        await lab.destroy();
      },
    };
    if (opts.startAgents !== false) for (const n of lab.nodes) cluster.startAgent(n);
    return cluster;
  } catch (err) {
    await Promise.allSettled([...agents.values()].map((a) => a.stop(1000)));
    await cp?.destroy();
    await lab.destroy();
    throw err;
  }
}

/** Writes a file into the lab's temp dir (for kubeconfigs a test swaps). */
export async function labFile(lab: Lab, name: string, text: string): Promise<string> {
  const file = join(lab.tmpDir, name);
  await writeFile(file, text);
  return file;
}
