/**
 * BGP on the kubeadm cluster lab (issue 15): vipd's BGP static pod, FRR sidecar included, exactly
 * as `vipd manifest pod --bgp_enable=true` writes it, under the nodes' real kubelets, with a
 * top-of-rack router in front of them.
 *
 * - tor: a namespace on the hub's bridge (198.18.60.254) running the host's FRR (zebra, bgpd,
 *   bfdd) with ECMP, eBGP to each node (tor AS 65000, nodes 65001) and BFD.
 * - Each node gets a second static pod, `vipd-bgp`, next to the L2 one: another address
 *   (198.18.61.100, off the nodes' subnet, reachable only through tor) announced through the
 *   pod's own FRR sidecar, the image cluster-assets.sh builds from Debian's FRR 8.4.4 and tags as
 *   the manifest's default. Its metrics listen on :2113 (the L2 pod has :2112).
 *
 * Everything is recorded in the cluster's state file before it is made, so `down()` removes it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { nextHopsOf, torFrrConfig } from './bgp.js';
import { ClusterError, HUB_NS, nodePath, recordNetns, recordPid, stateRoot, TOR_NS, waitFor, type Cluster, type ClusterNode } from './cluster.js';
import { run, runOk, tool } from './exec.js';
import { applyFrrConfig, frrDaemonArgv, VTYSH } from './frr.js';
import { projectRoot } from './k8s-assets.js';

export const BGP_VIP = '198.18.61.100';
export const TOR_IP = '198.18.60.254';
export const TOR_ASN = 65000;
export const NODE_ASN = 65001;
const TOR_MAC = '02:00:c6:12:3c:fe';
const BGP_METRICS = ':2113';
const MANIFEST = 'vipd-bgp.yaml';

export interface Tor {
  vtysh(...commands: string[]): Promise<string>;
  /** tor's kernel next hops for `prefix` (gateways), sorted. */
  nextHops(prefix: string): Promise<string[]>;
}

/** Makes tor and starts its FRR, peering with every node of the cluster. */
export async function startTor(c: Cluster): Promise<Tor> {
  recordNetns(TOR_NS);
  await runOk([tool('ip'), 'netns', 'add', TOR_NS]);
  const inTor = (argv: string[]): string[] => [tool('ip'), 'netns', 'exec', TOR_NS, ...argv];
  await runOk(inTor(['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv4.fib_multipath_hash_policy=1']));
  await runOk([tool('ip'), '-n', HUB_NS, 'link', 'add', 'tor', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', TOR_NS, 'address', TOR_MAC]);
  await runOk([tool('ip'), '-n', HUB_NS, 'link', 'set', 'tor', 'master', 'br0', 'up']);
  for (const cmd of [['link', 'set', 'lo', 'up'], ['address', 'add', `${TOR_IP}/24`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up']]) await runOk([tool('ip'), '-n', TOR_NS, ...cmd]);

  const dir = join(stateRoot(), 'tor-frr');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'frr'], { encoding: 'utf8' }).trim());
  await chown(dir, id('-u'), id('-g'));
  for (const d of ['zebra', 'bgpd', 'bfdd'] as const) {
    const cmd = inTor(frrDaemonArgv(d, dir, `file:${join(dir, `${d}.log`)}`));
    const child = spawn(cmd[0]!, cmd.slice(1), { detached: true, stdio: 'ignore' });
    child.unref();
    if (child.pid === undefined) throw new ClusterError(`${d} did not start in ${TOR_NS}`);
    recordPid(child.pid);
    // zebra first: the others connect to its zserv socket.
    await waitFor(`tor's ${d} answering`, 15_000, async () => existsSync(join(dir, `${d}.vty`)));
  }
  const vtysh = async (...commands: string[]): Promise<string> => {
    const r = await run([VTYSH, '--vty_socket', dir, ...commands.flatMap((x) => ['-c', x])], { timeoutMs: 15_000 });
    if (r.code !== 0) throw new ClusterError(`vtysh on tor (${commands.join('; ')}): ${(r.stdout + r.stderr).trim()}`);
    return r.stdout;
  };
  await applyFrrConfig(dir, torFrrConfig({ asn: TOR_ASN, routerId: TOR_IP, neighbors: c.info.nodes.map((n) => ({ address: n.ip, asn: NODE_ASN })) }), 'tor');
  return {
    vtysh,
    async nextHops(prefix) {
      const out = await runOk([tool('ip'), '-n', TOR_NS, '-4', '-j', 'route', 'show', prefix]);
      return nextHopsOf(out.stdout).flatMap((h) => (h.gateway !== undefined ? [h.gateway] : [])).sort();
    },
  };
}

/** `vipd manifest pod` for the BGP pod of `n`, renamed so that it sits next to the L2 pod. */
export async function bgpManifest(c: Cluster, n: ClusterNode): Promise<string> {
  const frr = c.assets.frr;
  if (!frr) throw new ClusterError('no FRR image in the cluster assets: run `npm run --silent cluster:assets`');
  const r = await runOk([
    process.execPath,
    join(projectRoot(), 'dist/src/cli.js'),
    'manifest',
    'pod',
    `--address=${BGP_VIP}`,
    '--vip_interface=eth0',
    '--cp_enable=true',
    '--bgp_enable=true',
    `--bgp_as=${NODE_ASN}`,
    `--bgp_peers=${TOR_IP}:${TOR_ASN}`,
    `--prometheus_server=${BGP_METRICS}`,
    `--image=${c.assets.vipdImage}`,
    `--frr-image=${frr.image}`,
    `--frr-vty-gid=${frr.vtyGid}`,
  ]);
  // A second static pod on the node: its own name (the mirror pod is vipd-bgp-<node>).
  const y = r.stdout.replace(/^metadata:\n {2}name: vipd\n/m, 'metadata:\n  name: vipd-bgp\n');
  if (y === r.stdout) throw new ClusterError(`vipd manifest pod for ${n.name}: no "metadata.name: vipd" to rename`);
  return y;
}

const manifestPath = (n: ClusterNode): string => join(nodePath(n, '/etc/kubernetes'), 'manifests', MANIFEST);

export async function addBgpPod(c: Cluster, n: ClusterNode): Promise<void> {
  await writeFile(manifestPath(n), await bgpManifest(c, n));
}

/** What an operator's removal of the manifest does: the kubelet stops the pod (SIGTERM: vipd drains first). */
export async function removeBgpPod(n: ClusterNode): Promise<void> {
  await rm(manifestPath(n), { force: true });
}
