/**
 * A real kubeadm cluster in the lab: three control-plane nodes, each its own network namespace
 * (one bridge in a hub namespace) and its own mount namespace (its own /etc/kubernetes,
 * /var/lib/{kubelet,etcd,containerd,vipd}, /run/containerd, ...), its own containerd and kubelet
 * built from Go modules (scripts/cluster-assets.sh), and vipd's image as the static pod that
 * carries `kubeadm init --control-plane-endpoint VIP:6443`, as docs/quickstart-kubeadm.md says.
 *
 * `npm run cluster -- up|down` (lab/cluster-cli.ts) and test/e2e/cluster.lab.test.ts use it.
 *
 * Invariants:
 * - One cluster per machine: the names are fixed (`vipd-cl-*`, so other labs' sweeps, which match
 *   `vipd-<pid>-`, never touch it) and a lock file serialises up/down.
 * - Everything up() makes is written to the state file BEFORE it is made, so down() can undo a
 *   half-finished up() (or a killed one): namespaces, the mount-namespace files, cgroups, the host
 *   mount points it had to create, and the pids it started. down() kills by namespace and cgroup,
 *   never by process name, and removes only what the state file lists (or what carries our prefix).
 * - Per-node files live under .cache/cluster/lab/ (ignored); down() removes that folder too.
 * - Node processes run under `nsenter --net --mount`, not `ip netns exec`, which remounts /sys
 *   and hides the cgroup mounts the kubelet needs.
 * - Addresses: 198.18.60.0/24 only, no default route in any namespace; the service and pod
 *   ranges (198.19.60.0/24, 198.19.64.0/22) stay inside 198.18.0.0/15 as well.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pidExists, run, runOk, tool, type RunResult } from './exec.js';
import { startCapture } from './capture.js';
import { projectRoot } from './k8s-assets.js';
import type { WatchedLab } from './wirewatch.js';
import type { ProbeSummary } from './tcpprobe.js';

export const PREFIX = 'vipd-cl-';
export const HUB_NS = `${PREFIX}hub`;
export const CLIENT_NS = `${PREFIX}client`;
/** The BGP router in front of the nodes (lab/cluster-bgp.ts), made only by the BGP scenario. */
export const TOR_NS = `${PREFIX}tor`;
export const VIP = '198.18.60.100';
export const CLIENT_IP = '198.18.60.2';
const PREFIX_LEN = 24;
const BRIDGE = 'br0';
const RUN_DIR = `/run/${PREFIX}lab`;
const NS_DIR = `${RUN_DIR}/ns`;
const SERVICE_SUBNET = '198.19.60.0/24';
const POD_SUBNET = '198.19.64.0/22';
const PEER_PORT = 7946;
/** Paths kubeadm, the kubelet and containerd hard-code (only etcd's dataDir and the cert dir can move), so each node gets its own through its mount namespace. */
const PER_NODE_PATHS = [
  '/etc/kubernetes',
  '/etc/vipd',
  '/var/lib/kubelet',
  '/var/lib/etcd',
  '/var/lib/containerd',
  '/var/lib/vipd',
  '/run/containerd',
  '/var/log/pods',
  '/var/log/containers',
  '/usr/libexec/kubernetes',
];

export interface ClusterNode {
  /** Kubernetes node name (also the vip_peers name). */
  name: string;
  netns: string;
  /** The node's port on the hub's bridge: pull it (link down) to cut the node off. */
  veth_on_hub: string;
  ip: string;
  mac: string;
}

export interface ClusterInfo {
  vip: string;
  client_netns: string;
  hub_netns: string;
  nodes: ClusterNode[];
  admin_kubeconfig: string;
}

export interface ClusterAssets {
  dir: string;
  bin: string;
  images: string[];
  vipdImage: string;
  vipdArchive: string;
  /** The BGP sidecar's image (scripts/cluster-assets.sh build_frr_image), absent from older caches. */
  frr?: { archive: string; image: string; vtyGid: number };
}

/** What up() made; down() undoes exactly this. */
interface State {
  netns: string[];
  mountNs: string[];
  cgroups: string[];
  createdDirs: string[];
  pids: number[];
  runDir: boolean;
}

export class ClusterError extends Error {
  override name = 'ClusterError';
}

export const CLUSTER_ASSETS_HINT = 'run `npm run --silent cluster:assets` (a one-time build into .cache/cluster, about 8 min cold)';

export function stateRoot(root: string = projectRoot()): string {
  return join(root, '.cache', 'cluster', 'lab');
}

/**
 * The finished assets for the current sources, or why not. Asks the build script itself (with
 * building forbidden), so the folder and the image hash have one definition.
 */
export function clusterAssets(root: string = projectRoot()): ClusterAssets | { skip: string } {
  let vipdDir: string;
  try {
    const out = execFileSync('bash', [join(root, 'scripts/cluster-assets.sh'), '--vipd-dir'], {
      encoding: 'utf8',
      env: { ...process.env, CLUSTER_ASSETS_NO_BUILD: '1', K8S_ASSETS_NO_BUILD: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    vipdDir = out.trim().split('\n').pop() ?? '';
  } catch (err) {
    const why = String((err as { stderr?: unknown }).stderr ?? (err as Error).message).trim().split('\n').pop() ?? '';
    return { skip: `no cluster assets for these sources (${why}): ${CLUSTER_ASSETS_HINT}` };
  }
  const dir = dirname(dirname(vipdDir));
  const images = join(dir, 'images');
  return {
    dir,
    bin: join(dir, 'bin'),
    images: readdirSync(images).filter((f) => f.endsWith('.tar')).sort().map((f) => join(images, f)),
    vipdImage: readFileSync(join(vipdDir, 'tag'), 'utf8').trim(),
    vipdArchive: join(vipdDir, 'vipd.tar'),
    ...(existsSync(join(dir, 'frr', '.complete'))
      ? { frr: { archive: join(dir, 'frr', 'frr.tar'), image: readFileSync(join(dir, 'frr', 'tag'), 'utf8').trim(), vtyGid: Number(readFileSync(join(dir, 'frr', 'vty-gid'), 'utf8').trim()) } }
      : {}),
  };
}

export function requireClusterAssets(): ClusterAssets {
  const a = clusterAssets();
  if ('skip' in a) throw new ClusterError(a.skip);
  return a;
}

/** Node k (1-based): name vipd-cl-nK, 198.18.60.1K, MAC 02:00:c6:12:3c:1K. */
export function clusterNodes(count = 3): ClusterNode[] {
  return Array.from({ length: count }, (_, i) => {
    const k = i + 1;
    return { name: `${PREFIX}n${k}`, netns: `${PREFIX}n${k}`, veth_on_hub: `n${k}`, ip: `198.18.60.${10 + k}`, mac: `02:00:c6:12:3c:${10 + k}` };
  });
}

export interface UpOptions {
  nodes?: number;
  log?: (line: string) => void;
}

export interface UpTimings {
  netMs: number;
  containerdMs: number;
  initMs: number;
  joinMs: number[];
  handoverMs: number;
  totalMs: number;
}

export interface Cluster {
  info: ClusterInfo;
  assets: ClusterAssets;
  timings: UpTimings;
  /** From init's output: what a (re-)join of a control-plane node needs. */
  join: JoinSecrets;
}

// --- paths -----------------------------------------------------------------------------------

const nodeDir = (n: ClusterNode): string => join(stateRoot(), n.veth_on_hub);
/** Where a per-node path's contents live on the host (outside the node's mount namespace). */
export const nodePath = (n: ClusterNode, p: string): string => join(nodeDir(n), 'root', p.replace(/^\//, '').replaceAll('/', '_'));
const mountNsFile = (n: ClusterNode): string => join(NS_DIR, n.veth_on_hub);
const stateFile = (): string => join(stateRoot(), 'state.json');
const CGROUP_ROOT = '/sys/fs/cgroup';

/** argv that runs argv inside a node: its network and mount namespaces, the cluster tools first in PATH. */
export function inNode(n: ClusterNode, argv: readonly string[], assets: ClusterAssets, env: Record<string, string> = {}): string[] {
  const path = [join(stateRoot(), 'fakebin'), assets.bin, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
  return [
    'nsenter',
    `--mount=${mountNsFile(n)}`,
    `--net=/run/netns/${n.netns}`,
    'env',
    `PATH=${path}`,
    `VIPD_CL_NODE_DIR=${nodeDir(n)}`,
    `VIPD_CL_BIN=${assets.bin}`,
    'CONTAINER_RUNTIME_ENDPOINT=unix:///run/containerd/containerd.sock',
    'KUBECONFIG=/etc/kubernetes/admin.conf',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...argv,
  ];
}

export function nodeExec(n: ClusterNode, argv: readonly string[], assets: ClusterAssets, opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  return run(inNode(n, argv, assets, opts.env), { timeoutMs: opts.timeoutMs ?? 60_000 });
}

// --- state -----------------------------------------------------------------------------------

function emptyState(): State {
  return { netns: [], mountNs: [], cgroups: [], createdDirs: [], pids: [], runDir: false };
}

function loadState(): State | undefined {
  try {
    return { ...emptyState(), ...(JSON.parse(readFileSync(stateFile(), 'utf8')) as Partial<State>) };
  } catch {
    return undefined;
  }
}

function saveState(s: State): void {
  writeFileSync(stateFile(), JSON.stringify(s, null, 2) + '\n');
}

/** For additions to a running cluster (lab/cluster-bgp.ts): recorded before they are made, as up() does. */
export function recordNetns(ns: string): void {
  const s = loadState();
  if (!s) throw new ClusterError('no cluster is up');
  if (!s.netns.includes(ns)) record(s, 'netns', ns);
}

export function recordPid(pid: number): void {
  const s = loadState();
  if (!s) throw new ClusterError('no cluster is up');
  record(s, 'pids', pid);
}

/** Records before doing: a crash between the two leaves a name down() will try (and find gone). */
function record<K extends keyof State>(s: State, key: K, value: State[K] extends Array<infer T> ? T : never): void {
  (s[key] as unknown[]).push(value);
  saveState(s);
}

function withLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(join(projectRoot(), '.cache', 'cluster'), { recursive: true });
  const lock = join(projectRoot(), '.cache', 'cluster', '.lab-lock');
  let fd: number;
  try {
    fd = openSync(lock, 'wx');
  } catch {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pidExists(pid)) throw new ClusterError(`another cluster up/down (pid ${pid}) holds ${lock}`);
    rmSync(lock, { force: true });
    fd = openSync(lock, 'wx');
  }
  writeFileSync(fd, String(process.pid));
  closeSync(fd);
  return fn().finally(() => rmSync(lock, { force: true }));
}

// --- up --------------------------------------------------------------------------------------

export function up(opts: UpOptions = {}): Promise<Cluster> {
  return withLock(() => upLocked(opts));
}

async function upLocked(opts: UpOptions): Promise<Cluster> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[cluster] ${l}\n`));
  if (process.getuid?.() !== 0) throw new ClusterError('the cluster lab needs root');
  const assets = requireClusterAssets();
  if (existsSync(stateFile())) throw new ClusterError(`a cluster is already up (${stateFile()}): npm run cluster -- down`);
  const nodes = clusterNodes(opts.nodes ?? 3);
  const t0 = Date.now();
  await rm(stateRoot(), { recursive: true, force: true });
  await mkdir(stateRoot(), { recursive: true });
  const s = emptyState();
  saveState(s);
  try {
    const tNet = Date.now();
    await makeNetwork(s, nodes);
    await makeNodes(s, nodes);
    const netMs = Date.now() - tNet;
    const tCtr = Date.now();
    await writeFiles(assets);
    await Promise.all(nodes.map((n) => startContainerd(s, n, assets)));
    const containerdMs = Date.now() - tCtr;
    log(`network + ${nodes.length} nodes in ${netMs} ms, containerd + images in ${containerdMs} ms`);

    const key = randomBytes(32).toString('hex') + '\n';
    for (const n of nodes) {
      const f = join(nodePath(n, '/etc/vipd'), 'peer.key');
      await writeFile(f, key, { mode: 0o600 });
    }
    const first = nodes[0]!;
    // Step 3 of the quick start: vipd-first.yaml in place, then `kubeadm init`.
    await writeFile(join(nodePath(first, '/etc/kubernetes'), 'manifests', 'vipd.yaml'), await vipdManifest(nodes, assets, true));
    await writeKubeadmConfig(first, nodes, 'init');
    const tInit = Date.now();
    const init = await nodeExec(first, ['kubeadm', 'init', '--config', join(nodeDir(first), 'kubeadm.yaml'), '--upload-certs'], assets, { timeoutMs: 240_000 });
    await writeFile(join(nodeDir(first), 'init.log'), init.stdout + init.stderr);
    if (init.code !== 0) throw new ClusterError(`kubeadm init on ${first.name} exited ${init.code}: ${tail(init)}`);
    const initMs = Date.now() - tInit;
    log(`kubeadm init on ${first.name}: ${initMs} ms`);
    const join_ = parseJoin(init.stdout);

    // Step 4: join through the VIP, then the node's vipd.yaml.
    const joinMs: number[] = [];
    for (const n of nodes.slice(1)) {
      joinMs.push(await joinNode(n, nodes, assets, join_));
      log(`kubeadm join --control-plane on ${n.name} through ${VIP}: ${joinMs.at(-1)} ms`);
    }

    // Step 5: the first node's pod without super-admin.conf and the bootstrap.
    const tH = Date.now();
    if (nodes.length > 1) {
      await waitFor(`vipd running on every node`, 120_000, async () => {
        for (const n of nodes) if (!(await vipdRunning(n, assets))) return false;
        return true;
      });
      // The first agent's log (bootstrap, credentials) goes with its pod; keep it for docs/cluster-lab.md.
      const id = (await vipdContainer(first, assets))?.id;
      if (id) {
        const l = await nodeExec(first, ['crictl', 'logs', id], assets);
        await writeFile(join(nodeDir(first), 'vipd-first.log'), l.stdout + l.stderr);
      }
      await writeFile(join(nodePath(first, '/etc/kubernetes'), 'manifests', 'vipd.yaml'), await vipdManifest(nodes, assets, false));
    }
    const admin = join(stateRoot(), 'admin.conf');
    await copyFile(join(nodePath(first, '/etc/kubernetes'), 'admin.conf'), admin);
    await chmod(admin, 0o600);
    await waitFor('the API through the VIP from the client, one holder', 120_000, async () => {
      const h = await vipHolders(nodes);
      if (h.length !== 1) return false;
      const r = await run([tool('ip'), 'netns', 'exec', CLIENT_NS, join(assets.bin, 'kubectl'), '--kubeconfig', admin, '--request-timeout=2s', 'get', '--raw', '/readyz'], { timeoutMs: 5000 });
      return r.code === 0 && r.stdout.trim() === 'ok';
    });
    const handoverMs = Date.now() - tH;
    const timings: UpTimings = { netMs, containerdMs, initMs, joinMs, handoverMs, totalMs: Date.now() - t0 };
    log(`up in ${timings.totalMs} ms; holder ${(await vipHolders(nodes)).join(',')}`);
    await writeFile(join(stateRoot(), 'timings.json'), JSON.stringify(timings) + '\n');
    return { info: { vip: VIP, client_netns: CLIENT_NS, hub_netns: HUB_NS, nodes, admin_kubeconfig: admin }, assets, timings, join: join_ };
  } catch (err) {
    log(`up failed: ${(err as Error).message}; logs in ${stateRoot()} (kept until down)`);
    throw err;
  }
}

/** `kubeadm join --control-plane` through the VIP, then the node's vipd.yaml (quick start step 4). Returns the join's ms. */
async function joinNode(n: ClusterNode, nodes: ClusterNode[], assets: ClusterAssets, sec: JoinSecrets): Promise<number> {
  await writeKubeadmConfig(n, nodes, 'join', sec);
  const t = Date.now();
  const r = await nodeExec(n, ['kubeadm', 'join', '--config', join(nodeDir(n), 'kubeadm.yaml')], assets, { timeoutMs: 300_000 });
  await writeFile(join(nodeDir(n), 'join.log'), r.stdout + r.stderr, { flag: 'a' });
  if (r.code !== 0) throw new ClusterError(`kubeadm join on ${n.name} exited ${r.code}: ${tail(r)}`);
  const ms = Date.now() - t;
  await writeFile(join(nodePath(n, '/etc/kubernetes'), 'manifests', 'vipd.yaml'), await vipdManifest(nodes, assets, false));
  return ms;
}

/** A node of a running cluster joins (again, after `kubeadm reset`). */
export function rejoin(c: Cluster, n: ClusterNode): Promise<number> {
  return joinNode(n, c.info.nodes, c.assets, c.join);
}

/** `kubeadm reset -f` on a node, as an operator removing it would run it. */
export async function kubeadmReset(c: Cluster, n: ClusterNode): Promise<RunResult> {
  const r = await nodeExec(n, ['kubeadm', 'reset', '-f'], c.assets, { timeoutMs: 120_000 });
  await writeFile(join(nodeDir(n), 'reset.log'), r.stdout + r.stderr, { flag: 'a' });
  return r;
}

function tail(r: RunResult): string {
  return (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-8).join(' | ');
}

async function ipBatch(ns: string | undefined, cmds: string[]): Promise<void> {
  await runOk([tool('ip'), ...(ns ? ['-n', ns] : []), '-batch', '-'], { input: cmds.join('\n') + '\n' });
}

async function sysctl(ns: string, values: Record<string, string>): Promise<void> {
  const script = Object.entries(values)
    .map(([k, v]) => `echo ${v} > /proc/sys/${k.replaceAll('.', '/')}`)
    .join(' && ');
  await runOk(['nsenter', `--net=/run/netns/${ns}`, 'sh', '-ec', script]);
}

async function makeNetwork(s: State, nodes: ClusterNode[]): Promise<void> {
  for (const ns of [HUB_NS, CLIENT_NS, ...nodes.map((n) => n.netns)]) {
    record(s, 'netns', ns);
    await runOk([tool('ip'), 'netns', 'add', ns]);
  }
  await sysctl(HUB_NS, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
  const hosts = [{ port: 'client', ns: CLIENT_NS, ip: CLIENT_IP, mac: '02:00:c6:12:3c:02' }, ...nodes.map((n) => ({ port: n.veth_on_hub, ns: n.netns, ip: n.ip, mac: n.mac }))];
  for (const h of hosts) {
    // No IPv6 in this lab: it keeps the wire quiet (no RS/MLD/DAD) for the two-holder watch.
    await sysctl(h.ns, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1', ...(h.ns === CLIENT_NS ? { 'net.ipv4.conf.all.arp_accept': '1', 'net.ipv4.conf.default.arp_accept': '1' } : { 'net.ipv4.ip_forward': '1' }) });
  }
  const sw = [`link add ${BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0`, `link set ${BRIDGE} up`, 'link set lo up'];
  for (const h of hosts) sw.push(`link add ${h.port} type veth peer name eth0 netns ${h.ns} address ${h.mac}`, `link set ${h.port} master ${BRIDGE} up`);
  await ipBatch(HUB_NS, sw);
  for (const h of hosts) await ipBatch(h.ns, ['link set lo up', `address add ${h.ip}/${PREFIX_LEN} dev eth0`, 'link set eth0 up']);
}

async function makeNodes(s: State, nodes: ClusterNode[]): Promise<void> {
  // The mount-namespace files need a private mount to live on (a bind of a file in a shared
  // mount would propagate, and the kernel refuses it there).
  await mkdir(NS_DIR, { recursive: true });
  s.runDir = true;
  saveState(s);
  if ((await run(['mountpoint', '-q', NS_DIR])).code !== 0) {
    await runOk(['mount', '--bind', NS_DIR, NS_DIR]);
    await runOk(['mount', '--make-private', NS_DIR]);
  }
  // Mount points on the host: kubeadm's fixed paths may not exist here; only ours get removed.
  for (const p of PER_NODE_PATHS) {
    if (existsSync(p)) continue;
    record(s, 'createdDirs', p);
    await mkdir(p, { recursive: true });
  }
  const hierarchies = await cgroupHierarchies();
  for (const n of nodes) {
    for (const h of hierarchies) {
      const cg = join(h, n.name);
      record(s, 'cgroups', cg);
      await mkdir(cg, { recursive: true });
    }
    // A v1 cpuset starts empty, and nothing can join an empty one.
    if (hierarchies.includes(join(CGROUP_ROOT, 'cpuset'))) {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) await writeFile(join(CGROUP_ROOT, 'cpuset', n.name, f), await readFile(join(CGROUP_ROOT, 'cpuset', f), 'utf8'));
    }
    const f = mountNsFile(n);
    record(s, 'mountNs', f);
    await writeFile(f, '');
    await runOk(['unshare', `--mount=${f}`, '--propagation', 'private', 'true']);
    for (const p of PER_NODE_PATHS) {
      const src = nodePath(n, p);
      await mkdir(src, { recursive: true });
      await runOk(['nsenter', `--mount=${f}`, 'mount', '--bind', src, p]);
    }
    await mkdir(join(nodePath(n, '/etc/kubernetes'), 'manifests'), { recursive: true });
    await mkdir(join(nodeDir(n), 'patches'), { recursive: true });
  }
}

/** Every cgroup hierarchy the kubelet will use: the v1 controllers and, on a hybrid host, unified. */
async function cgroupHierarchies(): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(CGROUP_ROOT, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(join(CGROUP_ROOT, e.name)); // symlinks (cpu -> cpu,cpuacct) are the same hierarchy
  }
  return out;
}

async function writeFiles(assets: ClusterAssets): Promise<void> {
  const fakebin = join(stateRoot(), 'fakebin');
  await mkdir(fakebin, { recursive: true });
  await writeFile(join(fakebin, 'systemctl'), SYSTEMCTL, { mode: 0o755 });
  await mkdir(join(stateRoot(), 'cni'), { recursive: true });
  await writeFile(join(stateRoot(), 'containerd.toml'), containerdConfig(assets));
}

/**
 * A stand-in for systemd's systemctl (this machine has none), first in PATH for kubeadm only.
 * kubeadm's kubelet-start, kubelet-finalize and reset phases call it; it starts the kubelet the way
 * kubeadm's 10-kubeadm.conf unit does, minus systemd's restart loop, so those phases run unmodified
 * (join's TLS bootstrap included). A real host has systemd and the kubelet package's unit instead.
 */
const SYSTEMCTL = `#!/bin/sh
D=\${VIPD_CL_NODE_DIR:?}; pidf=$D/kubelet.pid
running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
stop() {
  running || return 0; p=$(cat "$pidf"); kill "$p"
  i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done
  kill -9 "$p" 2>/dev/null; rm -f "$pidf"
}
start() {
  running && return 0
  KUBELET_KUBEADM_ARGS=; [ -f /var/lib/kubelet/kubeadm-flags.env ] && . /var/lib/kubelet/kubeadm-flags.env
  setsid "\${VIPD_CL_BIN:?}/kubelet" --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf \\
    --config=/var/lib/kubelet/config.yaml $KUBELET_KUBEADM_ARGS >> "$D/kubelet.log" 2>&1 < /dev/null &
  echo $! > "$pidf"
}
echo "$(date +%T.%N) systemctl $*" >> "$D/systemctl.log"
case "$1 \${2:-}" in
  "status kubelet"*) running ;;
  "is-enabled kubelet"*) echo enabled ;;
  "is-active kubelet"*) if running; then echo active; else echo inactive; exit 3; fi ;;
  "daemon-reload "*|"enable kubelet"*) ;;
  "start kubelet"*) start ;;
  "stop kubelet"*) stop ;;
  "restart kubelet"*) stop; start ;;
  *) echo "stand-in systemctl: unsupported: $*" >&2; exit 1 ;;
esac
`;

function containerdConfig(assets: ClusterAssets): string {
  // Standard paths (bind-mounted per node), so kubeadm's and crictl's defaults find the socket.
  return `version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.nri.v1.nri"]
  # its socket is a fixed host path (/var/run/nri), shared by every node otherwise
  disable = true
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "registry.k8s.io/pause:3.10.2"
[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE here: the negative oom_score_adj the kubelet asks for is EACCES in runc.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "/run/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["${join(assets.dir, 'cni-none')}"]
    conf_dir = "${join(stateRoot(), 'cni')}"
`;
}

async function startContainerd(s: State, n: ClusterNode, assets: ClusterAssets, importImages = true): Promise<void> {
  const logFd = openSync(join(nodeDir(n), 'containerd.log'), 'a');
  // containerd must find ITS shim (assets.bin first in PATH).
  const argv = inNode(n, [join(assets.bin, 'containerd'), '--config', join(stateRoot(), 'containerd.toml')], assets);
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  if (child.pid === undefined) throw new ClusterError(`containerd on ${n.name} did not start`);
  record(s, 'pids', child.pid);
  // Answering, not only the socket file: after a power-off the old one is still there (no tmpfs /run).
  await waitFor(`containerd answering on ${n.name}`, 30_000, async () => (await nodeExec(n, [join(assets.bin, 'ctr'), 'version'], assets, { timeoutMs: 5000 })).code === 0);
  for (const img of importImages ? [...assets.images, assets.vipdArchive, ...(assets.frr ? [assets.frr.archive] : [])] : []) {
    const r = await nodeExec(n, [join(assets.bin, 'ctr'), '-n', 'k8s.io', 'images', 'import', img], assets, { timeoutMs: 180_000 });
    if (r.code !== 0) {
      const r2 = await nodeExec(n, [join(assets.bin, 'ctr'), '-n', 'k8s.io', 'images', 'import', img], assets, { timeoutMs: 180_000 });
      if (r2.code !== 0) throw new ClusterError(`ctr import ${img} on ${n.name}: ${tail(r2)}`);
    }
  }
}

/** Rewrites a node's vipd.yaml for another image tag, as an upgrade does (the kubelet replaces the pod). */
export async function setVipdImage(c: Cluster, n: ClusterNode, image: string): Promise<void> {
  await writeFile(join(nodePath(n, '/etc/kubernetes'), 'manifests', 'vipd.yaml'), await vipdManifest(c.info.nodes, c.assets, false, image));
}

async function vipdManifest(nodes: ClusterNode[], assets: ClusterAssets, first: boolean, image = assets.vipdImage): Promise<string> {
  const settings = [
    `--address=${VIP}`,
    '--vip_interface=eth0',
    '--cp_enable=true',
    '--vip_leaderelection=true',
    `--vip_peers=${nodes.map((n) => `${n.name}=${n.ip}:${PEER_PORT}`).join(',')}`,
    '--vip_peer_key_file=/etc/vipd/peer.key',
    // Three control planes share this machine's two cores: in the minutes after up every agent's
    // event loop stalled up to 470 ms (vipd_process_nodejs_eventloop_lag_max_seconds), past the
    // default E of 200 ms, and the holder lost its majority in steady state (docs/cluster-lab.md).
    '--vip_peer_election_timeout_ms=1000',
    `--vip_nodename=${nodes[0]!.name}`,
    `--image=${image}`,
  ];
  if (first) settings.push('--vip_peer_bootstrap=true', '--super-admin');
  const r = await runOk([process.execPath, join(projectRoot(), 'dist/src/cli.js'), 'manifest', 'pod', ...settings]);
  return r.stdout;
}

export interface JoinSecrets {
  token: string;
  caHash: string;
  certKey: string;
}

function parseJoin(initOut: string): JoinSecrets {
  const token = /--token ([a-z0-9]{6}\.[a-z0-9]{16})/.exec(initOut)?.[1];
  const caHash = /(sha256:[0-9a-f]{64})/.exec(initOut)?.[1];
  const certKey = /--certificate-key ([0-9a-f]{64})/.exec(initOut)?.[1];
  if (!token || !caHash || !certKey) throw new ClusterError('kubeadm init printed no join command with token, CA hash and certificate key');
  return { token, caHash, certKey };
}

async function writeKubeadmConfig(n: ClusterNode, nodes: ClusterNode[], mode: 'init' | 'join', sec?: JoinSecrets): Promise<void> {
  const d = nodeDir(n);
  // The KubeletConfiguration is cluster-wide (join downloads it), but two cgroupfs kubelets on one
  // host must not share /kubepods: each node gets its own cgroupRoot through a patch.
  await writeFile(join(d, 'patches', 'kubeletconfiguration+merge.yaml'), `cgroupRoot: /${n.name}\n`);
  const nodeReg = `nodeRegistration:
  name: ${n.name}
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  kubeletExtraArgs:
  - {name: node-ip, value: ${n.ip}}
  # cgroup v1 host: the kubelet is told failCgroupV1: false below; preflight needs the same word
  ignorePreflightErrors: [SystemVerification]`;
  let y: string;
  if (mode === 'init') {
    y = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: ${n.ip}, bindPort: 6443}
${nodeReg}
skipPhases: [addon/coredns, addon/kube-proxy]
patches: {directory: ${join(d, 'patches')}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: ${k8sVersion()}
clusterName: vipd-cl
controlPlaneEndpoint: "${VIP}:6443"
networking: {serviceSubnet: ${SERVICE_SUBNET}, podSubnet: ${POD_SUBNET}, dnsDomain: cluster.local}
# no CNI and no images for them: the control plane is all hostNetwork static pods
dns: {disabled: true}
proxy: {disabled: true}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
enforceNodeAllocatable: []
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`;
  } else {
    if (!sec) throw new ClusterError('join needs the secrets from init');
    y = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
${nodeReg}
discovery:
  bootstrapToken: {apiServerEndpoint: "${VIP}:6443", token: "${sec.token}", caCertHashes: ["${sec.caHash}"]}
controlPlane:
  localAPIEndpoint: {advertiseAddress: ${n.ip}, bindPort: 6443}
  certificateKey: "${sec.certKey}"
patches: {directory: ${join(d, 'patches')}}
`;
  }
  void nodes;
  await writeFile(join(d, 'kubeadm.yaml'), y);
}

function k8sVersion(): string {
  const m = /^require k8s\.io\/kubernetes (v[\d.]+)$/m.exec(readFileSync(join(projectRoot(), 'scripts/k8s-assets/kube-apiserver/go.mod'), 'utf8'));
  if (!m?.[1]) throw new ClusterError('cannot read the Kubernetes version from scripts/k8s-assets/kube-apiserver/go.mod');
  return m[1];
}

// --- looking at the cluster ------------------------------------------------------------------

/** Nodes whose lo carries the VIP (vip_responder=agent puts it there while holding). */
export async function vipHolders(nodes: ClusterNode[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    const r = await run([tool('ip'), '-n', n.netns, '-o', 'addr', 'show', 'dev', 'lo']);
    if (r.code === 0 && r.stdout.includes(` ${VIP}/`)) out.push(n.name);
  }
  return out;
}

/** crictl's view of the vipd container on a node: running container id, or undefined. */
export async function vipdContainer(n: ClusterNode, assets: ClusterAssets): Promise<{ id: string; attempt: number } | undefined> {
  const r = await nodeExec(n, ['crictl', 'ps', '--name', '^vipd$', '--state', 'running', '-o', 'json'], assets, { timeoutMs: 10_000 });
  if (r.code !== 0) return undefined;
  const j = JSON.parse(r.stdout || '{}') as { containers?: Array<{ id: string; metadata?: { attempt?: number } }> };
  const c = j.containers?.[0];
  return c ? { id: c.id, attempt: c.metadata?.attempt ?? 0 } : undefined;
}

async function vipdRunning(n: ClusterNode, assets: ClusterAssets): Promise<boolean> {
  return (await vipdContainer(n, assets)) !== undefined;
}

export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, everyMs = 250): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new ClusterError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// --- power-off and down ----------------------------------------------------------------------

async function netnsPids(ns: string): Promise<number[]> {
  const r = await run([tool('ip'), 'netns', 'pids', ns]);
  return r.code === 0 ? r.stdout.split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number) : [];
}

async function cgroupPids(cgroup: string): Promise<number[]> {
  const out: number[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(join(d, e.name));
    try {
      for (const l of (await readFile(join(d, 'cgroup.procs'), 'utf8')).split('\n')) if (/^\d+$/.test(l)) out.push(Number(l));
    } catch {
      // gone meanwhile
    }
  };
  await walk(cgroup);
  return out;
}

/** Pids whose mount namespace is the one bound at file. */
async function mountNsPids(file: string): Promise<number[]> {
  let ino: number;
  try {
    ino = (await stat(file)).ino;
    if ((await run(['mountpoint', '-q', file])).code !== 0) return [];
    ino = Number((await runOk(['stat', '-L', '-c', '%i', file])).stdout.trim());
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if ((await stat(`/proc/${d}/ns/mnt`)).ino === ino) out.push(Number(d));
    } catch {
      // exited
    }
  }
  return out;
}

/** SIGKILL everything of a node: its netns, its mount namespace and its cgroups, until nothing is left. */
export async function killNode(n: ClusterNode, timeoutMs = 10_000): Promise<number[]> {
  const hier = await cgroupHierarchies();
  const all = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = new Set<number>([...(await netnsPids(n.netns)), ...(await mountNsPids(mountNsFile(n)))]);
    for (const h of hier) for (const p of await cgroupPids(join(h, n.name))) pids.add(p);
    pids.delete(process.pid);
    if (pids.size === 0) return [...all];
    for (const p of pids) {
      all.add(p);
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (Date.now() > deadline) throw new ClusterError(`${n.name}: processes ${[...pids].join(',')} survive SIGKILL`);
    await sleep(50);
  }
}

/** A power cut: the node's cable is pulled and every process of it dies at once. */
export async function powerOff(n: ClusterNode): Promise<void> {
  await runOk([tool('ip'), '-n', HUB_NS, 'link', 'set', n.veth_on_hub, 'down']);
  await killNode(n);
}

/** Power back on after powerOff(): cable in, containerd and the kubelet start again from the node's disk. */
export async function powerOn(c: Cluster, n: ClusterNode): Promise<void> {
  await runOk([tool('ip'), '-n', HUB_NS, 'link', 'set', n.veth_on_hub, 'up']);
  const s = loadState() ?? emptyState();
  await startContainerd(s, n, c.assets, false);
  // A reboot: the kubelet's pid file is stale, and the stand-in starts it like systemd would.
  await rm(join(nodeDir(n), 'kubelet.pid'), { force: true });
  const r = await nodeExec(n, ['systemctl', 'start', 'kubelet'], c.assets);
  if (r.code !== 0) throw new ClusterError(`starting the kubelet on ${n.name}: ${tail(r)}`);
}

export function down(opts: { log?: (l: string) => void } = {}): Promise<string[]> {
  return withLock(() => downLocked(opts.log ?? ((l: string) => process.stderr.write(`[cluster] ${l}\n`))));
}

async function downLocked(log: (l: string) => void): Promise<string[]> {
  const s = loadState() ?? emptyState();
  // Also what carries our prefix, in case the state file is gone (a crash before it was written).
  const r = await run([tool('ip'), 'netns', 'list']);
  for (const l of r.stdout.split('\n')) {
    const name = l.trim().split(/\s+/)[0] ?? '';
    if (name.startsWith(PREFIX) && !s.netns.includes(name)) s.netns.push(name);
  }
  const problems: string[] = [];
  const nodes = clusterNodes(9).filter((n) => s.netns.includes(n.netns) || existsSync(mountNsFile(n)));
  for (const n of nodes) {
    try {
      await killNode(n);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  for (const pid of s.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const ns of [CLIENT_NS, HUB_NS, TOR_NS]) for (const p of await netnsPids(ns)) if (p !== process.pid) process.kill(p, 'SIGKILL');
  await sleep(200);
  for (const f of new Set([...s.mountNs, ...nodes.map(mountNsFile)])) {
    await run(['umount', f]);
    await rm(f, { force: true });
  }
  if (s.runDir || existsSync(RUN_DIR)) {
    await run(['umount', NS_DIR]);
    await rm(RUN_DIR, { recursive: true, force: true });
  }
  const hier = await cgroupHierarchies();
  const cgs = new Set(s.cgroups);
  for (const h of hier) for (const n of nodes) cgs.add(join(h, n.name));
  for (const cg of cgs) {
    if (!cg.startsWith(`${CGROUP_ROOT}/`) || !cg.split('/').pop()!.startsWith(PREFIX)) continue;
    await rmCgroupTree(cg).catch((err: Error) => problems.push(`cgroup ${cg}: ${err.message}`));
  }
  for (const ns of s.netns) {
    const d = await run([tool('ip'), 'netns', 'del', ns]);
    if (d.code !== 0 && !/No such file/.test(d.stderr)) problems.push(`ip netns del ${ns}: ${d.stderr.trim()}`);
  }
  for (const p of [...s.createdDirs].reverse()) await rmdir(p).catch(() => undefined);
  // Logs of the last run stay in the ignored cache for a look afterwards; the node trees go.
  const root = stateRoot();
  if (existsSync(root)) {
    const last = join(root, '..', 'lab-last-logs');
    await rm(last, { recursive: true, force: true });
    await mkdir(last, { recursive: true });
    for (const n of clusterNodes(9)) {
      const d = join(root, n.veth_on_hub);
      if (!existsSync(d)) continue;
      for (const f of await readdir(d)) if (f.endsWith('.log') || f === 'kubeadm.yaml') await copyFile(join(d, f), join(last, `${n.veth_on_hub}-${f}`)).catch(() => undefined);
      // vipd's own logs (every container of every vipd pod the kubelet still keeps), for the decisions.
      const pods = nodePath(n, '/var/log/pods');
      for (const pod of await readdir(pods).catch(() => [] as string[])) {
        if (!pod.startsWith('kube-system_vipd-')) continue;
        for (const f of await readdir(join(pods, pod, 'vipd')).catch(() => [] as string[])) {
          await copyFile(join(pods, pod, 'vipd', f), join(last, `${n.veth_on_hub}-vipd-${pod.split('_').pop()}-${f}`)).catch(() => undefined);
        }
      }
    }
    // Bind-mount sources only: nothing is mounted on them any more (the namespaces are gone).
    await rm(root, { recursive: true, force: true }).catch((err: Error) => problems.push(`rm ${root}: ${err.message}`));
  }
  const left = await leftovers();
  if (left.length > 0) problems.push(...left);
  if (problems.length > 0) log(`down: ${problems.join('; ')}`);
  else log('down: nothing left');
  return problems;
}

async function rmCgroupTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await rmCgroupTree(join(dir, e.name));
  for (let i = 0; ; i++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i > 40) throw err;
      await sleep(50);
    }
  }
}

/** What of ours is still on the machine (empty when down() did its job). */
export async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  const r = await run([tool('ip'), 'netns', 'list']);
  for (const l of r.stdout.split('\n')) if (l.startsWith(PREFIX)) out.push(`netns ${l.split(/\s+/)[0]}`);
  for (const h of await cgroupHierarchies()) {
    for (const e of await readdir(h).catch(() => [] as string[])) if (e.startsWith(PREFIX)) out.push(`cgroup ${join(h, e)}`);
  }
  for (const l of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) if (l.includes(PREFIX)) out.push(`mount ${l.split(' ')[4]}`);
  if (existsSync(RUN_DIR)) out.push(`dir ${RUN_DIR}`);
  return out;
}

// --- the wire --------------------------------------------------------------------------------

let captureSeq = 0;

/** The cluster as lab/wirewatch.ts sees a lab: the client namespace and captures on the hub's bridge. */
export function watchedLab(): WatchedLab {
  return {
    ipv6Enabled: false,
    client: { ns: CLIENT_NS, ipv4: CLIENT_IP, ipv6: '' },
    async capture(opts = {}) {
      const dir = join(stateRoot(), 'captures');
      await mkdir(dir, { recursive: true });
      return startCapture({ ns: HUB_NS, iface: opts.iface ?? BRIDGE, file: join(dir, `capture-${process.pid}-${++captureSeq}.pcap`), ...(opts.filter !== undefined ? { filter: opts.filter } : {}) });
    },
  };
}

/** The kubectl-like client (lab/apiprobe-cli.ts) in the client namespace: a GET every 50 ms through the VIP until stop(). */
export function startApiProbe(kubeconfig: string): { ready: Promise<void>; stop(): Promise<ProbeSummary> } {
  const cli = join(projectRoot(), 'dist/lab/apiprobe-cli.js');
  const child = spawn('ip', ['netns', 'exec', CLIENT_NS, process.execPath, cli, '--kubeconfig', kubeconfig, '--interval', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('probing ')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`apiprobe exited ${code}: ${err}`)));
  });
  return {
    ready,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('close', r));
      return JSON.parse(out.trim().split('\n').pop() ?? '{}') as ProbeSummary;
    },
  };
}
