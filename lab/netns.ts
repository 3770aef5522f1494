/**
 * The lab: N node namespaces, a client namespace (and optional extra hosts, e.g. etcd) plugged
 * into one Linux bridge that lives in its own "switch" namespace.
 *
 * Invariants and assumptions:
 * - Nothing is created in the host's root namespace: veths are created in the switch namespace
 *   with their peer born directly in the host namespace. Labs are therefore fully isolated from
 *   each other and reuse the same addresses and interface names.
 * - Addresses only from 198.18.0.0/24 and 2001:db8::/64, and behind the router 198.18.1.0/24 and
 *   2001:db8:1::/64 (see docs/lab.md for the plan).
 * - Every namespace is named `vipd-<pid>-<tag>-<host>`; `removeStaleLabs` deletes those whose
 *   creating pid is gone (or was reused after the namespace was made), with their processes.
 * - destroy() kills every process in the lab namespaces (not only the ones spawned through the
 *   lab), deletes the namespaces (which deletes the veths and the bridge) and the temp dir.
 *   A process that exits normally without calling destroy() still cleans up in an 'exit' hook;
 *   a SIGKILLed one is cleaned by the next createLab()/removeStaleLabs().
 * - Partitions are nftables rules in the bridge family of the switch namespace: frames are dropped
 *   between bridge ports, links stay up, so each host sees silence, not a link event.
 * - `router: true` adds a 'tor' host on the bridge and a 'remote' namespace behind it on its own
 *   veth (198.18.1.0/24, 2001:db8:1::/64), so a client reaches the VIP through a router, as over
 *   BGP. remote is not on the bridge: it is not in `hosts` and cannot be in a partition.
 */
import { spawn as spawnChild, execFileSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { inNs, pidExists, run, runOk, tool, type RunOptions, type RunResult } from './exec.js';
import { startCapture, type Capture } from './capture.js';

export type { Capture } from './capture.js';
export type { RunResult } from './exec.js';

export const LAB_SUBNET4 = '198.18.0.0/24';
export const LAB_SUBNET6 = '2001:db8::/64';
export const LAB_PREFIX4 = 24;
export const LAB_PREFIX6 = 64;
/** Conventional VIPs of the lab; nothing in the lab configures them. */
export const VIP4 = '198.18.0.100';
export const VIP6 = '2001:db8::100';
export const CLIENT4 = '198.18.0.2';
export const CLIENT6 = '2001:db8::2';
/** The network behind tor (`router: true`): tor's eth1 is .1 / ::1, remote's eth0 .2 / ::2. */
export const REMOTE_SUBNET4 = '198.18.1.0/24';
export const REMOTE_SUBNET6 = '2001:db8:1::/64';
export const TOR_LINK4 = '198.18.1.1';
export const TOR_LINK6 = '2001:db8:1::1';
export const REMOTE4 = '198.18.1.2';
export const REMOTE6 = '2001:db8:1::2';
/** Node i (1-based) gets host number 10+i; its v4 last octet, v6 last group and MAC last byte all read the same. */
export const MAX_NODES = 89;
export const MAX_EXTRAS = 7;
/** Name of the bridge inside the switch namespace. */
export const BRIDGE = 'br0';
const NS_PREFIX = 'vipd-';
const TMP_PREFIX = 'vipd-lab-';
const NFT_TABLE = 'vipd_lab';

export type HostRole = 'node' | 'client' | 'extra' | 'remote';

export interface LabHost {
  /** 'n1'…'nN', 'client', an extra host's name, or 'remote'. */
  name: string;
  role: HostRole;
  /** Network namespace name. */
  ns: string;
  ifname: 'eth0';
  mac: string;
  ipv4: string;
  /** Configured only when the lab has IPv6 (lab.ipv6Enabled); the planned address otherwise. */
  ipv6: string;
  /** Bridge-side veth in the switch namespace (pull it with linkDown); for remote, tor's eth1. */
  port: string;
}

/** A host, its name ('n1', 'client'), 'sw' for the switch namespace, or a namespace name of this lab. */
export type HostRef = LabHost | string;

export interface LabOptions {
  /** Number of node namespaces, 1…89. */
  nodes: number;
  /** Configure IPv6 addresses (default true). When false IPv6 is disabled on the lab interfaces. */
  ipv6?: boolean;
  /** A short tag ([a-z0-9], ≤ 12) for the namespace names; random when absent. The pid is always prepended. */
  id?: string;
  /** Extra hosts on the same bridge (e.g. ['etcd']), addresses 198.18.0.3… / 2001:db8::3…. */
  extras?: string[];
  /**
   * A router: 'tor', the last extra, forwarding (multipath hashed on L4), and 'remote' behind it
   * with default routes via tor. The nodes get routes to the remote network via tor.
   */
  router?: boolean;
}

export interface SpawnOpts {
  /** Default ['ignore', 'pipe', 'pipe']; piped output is always drained (see lab.output()). */
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface CaptureOpts {
  /** tcpdump filter expression; default everything. */
  filter?: string;
  /** Interface: default the bridge (in the switch ns), or eth0 when `host` is given. */
  iface?: string;
  /** Capture inside this host's namespace instead of on the switch. */
  host?: HostRef;
}

export interface Lab {
  /** `<pid>-<tag>`; namespace names are `vipd-<id>-<host>`. */
  readonly id: string;
  readonly switchNs: string;
  readonly bridge: string;
  readonly nodes: LabHost[];
  readonly client: LabHost;
  readonly extras: LabHost[];
  /** nodes, then client, then extras: the hosts on the bridge. */
  readonly hosts: LabHost[];
  /** With `router: true`: the router (also in extras) and the host behind it (not in hosts). */
  readonly tor?: LabHost;
  readonly remote?: LabHost;
  readonly vip4: string;
  readonly vip6: string;
  readonly ipv6Enabled: boolean;
  /** Per-lab temp dir (captures); removed by destroy(). */
  readonly tmpDir: string;
  host(ref: HostRef): LabHost;
  /** Runs argv in the host's namespace (`ip netns exec`) and collects the output. */
  exec(host: HostRef, argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts argv in the host's namespace in its own process group; killed (group) by destroy(). */
  spawn(host: HostRef, argv: readonly string[], opts?: SpawnOpts): ChildProcess;
  /** Last 64 KiB of a spawned child's piped stdout+stderr (for failure messages). */
  output(child: ChildProcess): string;
  /** Cable pull: the bridge-side port goes down, the host's eth0 loses carrier (remote: tor's eth1 goes down). */
  linkDown(host: HostRef): Promise<void>;
  linkUp(host: HostRef): Promise<void>;
  /** Drops frames between hosts of different groups (replacing any earlier partition or block); hosts in no group reach everyone. */
  partition(groups: HostRef[][]): Promise<void>;
  /** One-way loss: frames from any of `from` to any of `to` are dropped, the reverse passes. Adds to the current rules. */
  block(from: HostRef[], to: HostRef[]): Promise<void>;
  /** Removes every partition and block. */
  heal(): Promise<void>;
  /** SIGKILL (or `signal`) every process in a host's namespace, e.g. a node losing power. Returns the pids signalled. */
  killHost(host: HostRef, signal?: NodeJS.Signals): Promise<number[]>;
  /** tcpdump -U on the bridge in the switch namespace (or in a host); resolves once it is listening. */
  capture(opts?: CaptureOpts): Promise<Capture>;
  /** Kills all lab processes, deletes the namespaces and temp files. Idempotent. */
  destroy(): Promise<void>;
}

export class LabError extends Error {
  override name = 'LabError';
}

/** Host number (last IPv4 octet) of node i, 1-based. */
export function nodeHostNumber(i: number): number {
  return 10 + i;
}

/**
 * Addresses for a host number n (2…99): 198.18.0.n, 2001:db8::n and 02:00:00:00:00:n, where the
 * decimal digits of n are reused as hex in v6 and the MAC, so n1 is .11 / ::11 / …:11 everywhere.
 */
export function hostAddresses(n: number): { ipv4: string; ipv6: string; mac: string } {
  if (!Number.isInteger(n) || n < 2 || n > 99) throw new LabError(`host number ${n} out of range 2..99`);
  const digits = String(n);
  return { ipv4: `198.18.0.${n}`, ipv6: `2001:db8::${digits}`, mac: `02:00:00:00:00:${digits.padStart(2, '0')}` };
}

// --- live labs and the exit hook -------------------------------------------------------------

interface LabRecord {
  namespaces: string[];
  tmpDir: string;
  groups: Set<number>;
}
const liveLabs = new Set<LabRecord>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const rec of liveLabs) destroySync(rec);
  });
}

// Best effort and synchronous: runs inside process 'exit', where nothing async completes.
function destroySync(rec: LabRecord): void {
  for (const pgid of rec.groups) killQuiet(-pgid, 'SIGKILL');
  let ip: string;
  try {
    ip = tool('ip');
  } catch {
    return;
  }
  for (const ns of rec.namespaces) {
    try {
      const out = execFileSync(ip, ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const pid of parsePids(out)) killQuiet(pid, 'SIGKILL');
    } catch {
      // namespace already gone
    }
  }
  for (const ns of rec.namespaces) {
    try {
      execFileSync(ip, ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  try {
    rmSync(rec.tmpDir, { recursive: true, force: true });
  } catch {
    // nothing to do at exit
  }
  liveLabs.delete(rec);
}

// --- create ------------------------------------------------------------------------------------

export async function createLab(opts: LabOptions): Promise<Lab> {
  const { nodes: nodeCount } = opts;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) throw new LabError(`nodes must be an integer 1..${MAX_NODES}, got ${nodeCount}`);
  if (opts.id !== undefined && !/^[a-z0-9]{1,12}$/.test(opts.id)) throw new LabError(`id must match [a-z0-9]{1,12}, got ${JSON.stringify(opts.id)}`);
  const extrasNames = [...(opts.extras ?? []), ...(opts.router ? ['tor'] : [])];
  if (extrasNames.length > MAX_EXTRAS) throw new LabError(`at most ${MAX_EXTRAS} extra hosts${opts.router ? ' (tor included)' : ''}`);
  if (opts.router && extrasNames.includes('remote')) throw new LabError('with router: true, "remote" is the host behind tor, not an extra');
  for (const e of extrasNames) {
    if (!/^[a-z][a-z0-9]{0,7}$/.test(e) || /^n\d+$/.test(e) || e === 'client' || e === 'sw') throw new LabError(`extra host name ${JSON.stringify(e)} must match [a-z][a-z0-9]{0,7} and not be n<N>, client or sw`);
  }
  if (new Set(extrasNames).size !== extrasNames.length) throw new LabError(`extra host names must be distinct${opts.router ? ' (tor is added by router: true)' : ''}`);
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (network namespaces)');
  const ipv6 = opts.ipv6 ?? true;
  tool('ip');

  await removeStaleLabs();

  const id = `${process.pid}-${opts.id ?? randomBytes(2).toString('hex')}`;
  const nsName = (h: string): string => `${NS_PREFIX}${id}-${h}`;
  const mkHost = (name: string, role: HostRole, n: number): LabHost => ({ name, role, ns: nsName(name), ifname: 'eth0', port: `sw-${name}`, ...hostAddresses(n) });
  const nodes = Array.from({ length: nodeCount }, (_, k) => mkHost(`n${k + 1}`, 'node', nodeHostNumber(k + 1)));
  const client = mkHost('client', 'client', 2);
  const extras = extrasNames.map((e, k) => mkHost(e, 'extra', 3 + k));
  const hosts = [...nodes, client, ...extras];
  const switchNs = nsName('sw');
  const tor = opts.router ? extras[extras.length - 1] : undefined;
  const remote: LabHost | undefined = opts.router
    ? { name: 'remote', role: 'remote', ns: nsName('remote'), ifname: 'eth0', port: 'eth1', mac: '02:00:00:00:01:02', ipv4: REMOTE4, ipv6: REMOTE6 }
    : undefined;

  const rec: LabRecord = { namespaces: [], tmpDir: '', groups: new Set() };
  installExitHook();
  liveLabs.add(rec);
  try {
    rec.tmpDir = await mkdtemp(join(tmpdir(), `${TMP_PREFIX}${id}-`));
    for (const ns of [switchNs, ...hosts.map((h) => h.ns), ...(remote ? [remote.ns] : [])]) {
      await runOk([tool('ip'), 'netns', 'add', ns]);
      rec.namespaces.push(ns);
    }

    // Sysctls first: interfaces created afterwards inherit the `default` values.
    // The switch has no IPv6 at all so its ports and bridge never speak (no RS/MLD/DAD noise).
    await setSysctls(switchNs, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
    for (const h of remote ? [...hosts, remote] : hosts) {
      const s: Record<string, string> = ipv6
        ? {
            'net.ipv6.conf.all.accept_dad': '0',
            'net.ipv6.conf.default.accept_dad': '0',
            'net.ipv6.conf.all.router_solicitations': '0',
            'net.ipv6.conf.default.router_solicitations': '0',
            'net.ipv6.conf.all.accept_ra': '0',
            'net.ipv6.conf.default.accept_ra': '0',
          }
        : { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' };
      if (h.role === 'client') {
        // Announcements must create neighbour entries, not only update them, so the client's
        // table shows who announced last: gratuitous ARP (arp_accept) and unsolicited NA
        // (accept_untracked_na, kernel ≥ 5.19).
        s['net.ipv4.conf.all.arp_accept'] = '1';
        s['net.ipv4.conf.default.arp_accept'] = '1';
        if (ipv6) {
          s['net.ipv6.conf.all.accept_untracked_na'] = '1';
          s['net.ipv6.conf.default.accept_untracked_na'] = '1';
        }
      }
      if (h === tor) {
        // L4 hashing: many TCP flows from one client spread over the ECMP next hops (the default
        // hashes on addresses only, so one client would always pick the same node).
        s['net.ipv4.ip_forward'] = '1';
        s['net.ipv4.fib_multipath_hash_policy'] = '1';
        if (ipv6) {
          s['net.ipv6.conf.all.forwarding'] = '1';
          s['net.ipv6.fib_multipath_hash_policy'] = '1';
        }
      }
      await setSysctls(h.ns, s);
    }

    const sw = [`link add ${BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0`, `link set ${BRIDGE} up`];
    for (const h of hosts) {
      sw.push(`link add ${h.port} type veth peer name eth0 netns ${h.ns} address ${h.mac}`);
      sw.push(`link set ${h.port} master ${BRIDGE} up`);
    }
    await ipBatch(switchNs, sw);
    for (const h of hosts) {
      const cmds = ['link set lo up', `address add ${h.ipv4}/${LAB_PREFIX4} dev eth0`];
      if (ipv6) cmds.push(`address add ${h.ipv6}/${LAB_PREFIX6} dev eth0 nodad`);
      cmds.push('link set eth0 up');
      await ipBatch(h.ns, cmds);
      // eth0 inherited `default`, but say it explicitly for the interface the product uses.
      if (ipv6) await setSysctls(h.ns, { 'net.ipv6.conf.eth0.accept_dad': '0' });
      if (h.role === 'client') await setSysctls(h.ns, { 'net.ipv4.conf.eth0.arp_accept': '1', ...(ipv6 ? { 'net.ipv6.conf.eth0.accept_untracked_na': '1' } : {}) });
    }
    if (tor && remote) {
      await ipBatch(tor.ns, [`link add eth1 address 02:00:00:00:01:01 type veth peer name eth0 netns ${remote.ns} address ${remote.mac}`]);
      const torCmds = [`address add ${TOR_LINK4}/24 dev eth1`, 'link set eth1 up'];
      const remoteCmds = ['link set lo up', `address add ${REMOTE4}/24 dev eth0`, 'link set eth0 up', `route add default via ${TOR_LINK4}`];
      if (ipv6) {
        torCmds.splice(1, 0, `address add ${TOR_LINK6}/64 dev eth1 nodad`);
        remoteCmds.splice(2, 0, `address add ${REMOTE6}/64 dev eth0 nodad`);
        remoteCmds.push(`route add default via ${TOR_LINK6}`);
      }
      await ipBatch(tor.ns, torCmds);
      await ipBatch(remote.ns, remoteCmds);
      await addRoutesNs(nodes.map((n) => n.ns), tor, ipv6);
    }
    await waitPortsForwarding(switchNs, hosts.map((h) => h.port));
  } catch (err) {
    await teardown(rec).catch(() => undefined);
    throw err;
  }

  return makeLab({ id, switchNs, nodes, client, extras, hosts, tor, remote, ipv6, rec });
}

/** Routes to the network behind tor via tor's bridge addresses, on hosts other than the nodes (which get them from createLab). */
export async function addRemoteRoutes(lab: Lab, hosts: HostRef[]): Promise<void> {
  if (!lab.tor) throw new LabError(`lab ${lab.id} has no router (createLab({ router: true }))`);
  await addRoutesNs(hosts.map((h) => lab.host(h).ns), lab.tor, lab.ipv6Enabled);
}

async function addRoutesNs(namespaces: string[], tor: LabHost, ipv6: boolean): Promise<void> {
  // `replace`: calling it again for a host that has the route is not an error.
  const cmds = [`route replace ${REMOTE_SUBNET4} via ${tor.ipv4}`, ...(ipv6 ? [`route replace ${REMOTE_SUBNET6} via ${tor.ipv6}`] : [])];
  for (const ns of namespaces) await ipBatch(ns, cmds);
}

async function setSysctls(ns: string, values: Record<string, string>): Promise<void> {
  // /proc/sys/net is per network namespace of the writer; plain sh keeps procps optional.
  const script = Object.entries(values)
    .map(([k, v]) => `echo ${v} > /proc/sys/${k.replaceAll('.', '/')}`)
    .join(' && ');
  await runOk(inNs(ns, ['sh', '-ec', script]));
}

async function ipBatch(ns: string, commands: string[]): Promise<void> {
  await runOk([tool('ip'), '-n', ns, '-batch', '-'], { input: commands.join('\n') + '\n' });
}

async function waitPortsForwarding(switchNs: string, ports: string[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await run([tool('bridge'), '-n', switchNs, '-j', 'link', 'show']);
    last = r.stdout;
    if (r.code === 0) {
      const links = JSON.parse(r.stdout || '[]') as Array<{ ifname?: string; state?: string }>;
      const fwd = new Set(links.filter((l) => l.state === 'forwarding').map((l) => l.ifname));
      if (ports.every((p) => fwd.has(p))) return;
    }
    if (Date.now() > deadline) throw new LabError(`bridge ports not forwarding after ${timeoutMs} ms: ${last.trim()}`);
    await sleep(20);
  }
}

// --- the Lab object ----------------------------------------------------------------------------

interface LabParts {
  id: string;
  switchNs: string;
  nodes: LabHost[];
  client: LabHost;
  extras: LabHost[];
  hosts: LabHost[];
  tor: LabHost | undefined;
  remote: LabHost | undefined;
  ipv6: boolean;
  rec: LabRecord;
}

function makeLab(p: LabParts): Lab {
  const { rec } = p;
  const outputs = new WeakMap<ChildProcess, { text: string }>();
  let destroying: Promise<void> | undefined;
  let captureSeq = 0;
  let nftReady = false;

  const resolveNs = (ref: HostRef): string => {
    if (typeof ref === 'string' && (ref === 'sw' || ref === 'switch' || ref === p.switchNs)) return p.switchNs;
    return host(ref).ns;
  };
  const host = (ref: HostRef): LabHost => {
    if (typeof ref !== 'string') {
      if (!p.hosts.includes(ref) && ref !== p.remote) throw new LabError(`host ${ref.name} (${ref.ns}) is not part of lab ${p.id}`);
      return ref;
    }
    const all = p.remote ? [...p.hosts, p.remote] : p.hosts;
    const h = all.find((x) => x.name === ref || x.ns === ref);
    if (!h) throw new LabError(`no host ${JSON.stringify(ref)} in lab ${p.id} (have ${all.map((x) => x.name).join(', ')}, sw)`);
    return h;
  };
  // Partitions are bridge rules: a host off the bridge would silently match nothing.
  const bridged = (ref: HostRef): LabHost => {
    const h = host(ref);
    if (h === p.remote) throw new LabError('remote is behind tor, not on the bridge: partition tor instead');
    return h;
  };
  const alive = (): void => {
    if (destroying) throw new LabError(`lab ${p.id} is destroyed`);
  };

  const nft = async (script: string): Promise<void> => {
    const head = nftReady ? '' : `table bridge ${NFT_TABLE} {\n  chain forward { type filter hook forward priority 0; policy accept; }\n}\n`;
    await runOk(inNs(p.switchNs, [tool('nft'), '-f', '-']), { input: head + script });
    nftReady = true;
  };
  const dropRule = (from: LabHost[], to: LabHost[]): string =>
    `add rule bridge ${NFT_TABLE} forward iifname { ${from.map((h) => `"${h.port}"`).join(', ')} } oifname { ${to.map((h) => `"${h.port}"`).join(', ')} } counter drop`;
  const applyRules = (rules: string[]): Promise<void> => nft([`flush chain bridge ${NFT_TABLE} forward`, ...rules].join('\n') + '\n');

  const lab: Lab = {
    id: p.id,
    switchNs: p.switchNs,
    bridge: BRIDGE,
    nodes: p.nodes,
    client: p.client,
    extras: p.extras,
    hosts: p.hosts,
    ...(p.tor && p.remote ? { tor: p.tor, remote: p.remote } : {}),
    vip4: VIP4,
    vip6: VIP6,
    ipv6Enabled: p.ipv6,
    tmpDir: rec.tmpDir,
    host,

    exec(ref, argv, opts) {
      alive();
      return run(inNs(resolveNs(ref), argv), opts);
    },

    spawn(ref, argv, opts = {}) {
      alive();
      const [file, ...args] = inNs(resolveNs(ref), argv) as [string, ...string[]];
      const child = spawnChild(file, args, {
        stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
        env: opts.env ?? process.env,
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
        detached: true, // own process group: destroy() kills the child and everything it forked
      });
      const buf = { text: '' };
      outputs.set(child, buf);
      const keep = (d: Buffer): void => {
        buf.text = (buf.text + d.toString('utf8')).slice(-65536);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      if (child.pid !== undefined) rec.groups.add(child.pid);
      child.once('exit', () => {
        if (child.pid !== undefined) rec.groups.delete(child.pid);
      });
      // A spawn failure is reported on the child; without a listener it would crash the process.
      child.once('error', () => undefined);
      return child;
    },

    output(child) {
      return outputs.get(child)?.text ?? '';
    },

    async linkDown(ref) {
      alive();
      const h = host(ref);
      await runOk([tool('ip'), '-n', h === p.remote ? p.tor!.ns : p.switchNs, 'link', 'set', h.port, 'down']);
    },

    async linkUp(ref) {
      alive();
      const h = host(ref);
      if (h === p.remote) {
        await runOk([tool('ip'), '-n', p.tor!.ns, 'link', 'set', h.port, 'up']);
        return;
      }
      await runOk([tool('ip'), '-n', p.switchNs, 'link', 'set', h.port, 'up']);
      await waitPortsForwarding(p.switchNs, [h.port]);
    },

    async partition(groups) {
      alive();
      const gs = groups.map((g) => g.map(bridged));
      const seen = new Set<LabHost>();
      for (const h of gs.flat()) {
        if (seen.has(h)) throw new LabError(`host ${h.name} is in two partition groups`);
        seen.add(h);
      }
      const rules: string[] = [];
      for (const [i, a] of gs.entries()) {
        const others = gs.filter((_, j) => j !== i).flat();
        if (a.length > 0 && others.length > 0) rules.push(dropRule(a, others));
      }
      await applyRules(rules);
    },

    async block(from, to) {
      alive();
      const f = from.map(bridged);
      const t = to.map(bridged);
      if (f.length === 0 || t.length === 0) return;
      await nft(dropRule(f, t) + '\n');
    },

    async heal() {
      alive();
      if (nftReady) await applyRules([]);
    },

    async killHost(ref, signal = 'SIGKILL') {
      alive();
      const pids = await nsPids(resolveNs(ref));
      for (const pid of pids) killQuiet(pid, signal);
      return pids;
    },

    async capture(opts = {}) {
      alive();
      const inHost = opts.host !== undefined;
      const ns = inHost ? resolveNs(opts.host!) : p.switchNs;
      const iface = opts.iface ?? (inHost ? 'eth0' : BRIDGE);
      const file = join(rec.tmpDir, `capture-${++captureSeq}.pcap`);
      const cap = await startCapture({ ns, iface, file, ...(opts.filter !== undefined ? { filter: opts.filter } : {}) });
      rec.groups.add(cap.pid);
      const stop = cap.stop.bind(cap);
      cap.stop = async (o) => {
        try {
          return await stop(o);
        } finally {
          rec.groups.delete(cap.pid);
        }
      };
      return cap;
    },

    destroy() {
      // Spawned groups (and captures) are killed first: that also gets forked children that
      // moved to another namespace; then every process left in the lab namespaces.
      destroying ??= teardown(rec);
      return destroying;
    },
  };
  return lab;
}

async function teardown(rec: LabRecord): Promise<void> {
  for (const pgid of rec.groups) killQuiet(-pgid, 'SIGKILL');
  rec.groups.clear();
  const errors: string[] = [];
  for (const ns of rec.namespaces) {
    const left = await killAllIn(ns);
    if (left.length > 0) errors.push(`${ns}: processes ${left.join(', ')} survived SIGKILL`);
  }
  for (const ns of rec.namespaces) {
    const r = await run([tool('ip'), 'netns', 'del', ns]);
    if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  if (rec.tmpDir) await rm(rec.tmpDir, { recursive: true, force: true });
  liveLabs.delete(rec);
  if (errors.length > 0) throw new LabError(`lab cleanup incomplete: ${errors.join('; ')}`);
}

// --- processes in namespaces -------------------------------------------------------------------

async function nsPids(ns: string): Promise<number[]> {
  const r = await run([tool('ip'), 'netns', 'pids', ns]);
  return r.code === 0 ? parsePids(r.stdout) : [];
}

function parsePids(out: string): number[] {
  return out
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** SIGKILLs every process in ns until none is left (they may fork while we kill). Returns survivors. */
async function killAllIn(ns: string, timeoutMs = 3000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = await nsPids(ns);
    if (pids.length === 0) return [];
    for (const pid of pids) killQuiet(pid, 'SIGKILL');
    if (Date.now() > deadline) return pids;
    await sleep(20);
  }
}

function killQuiet(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

// --- stale labs --------------------------------------------------------------------------------

/**
 * Deletes lab namespaces (`vipd-<pid>-…`) whose creating process is gone, after killing the
 * processes still inside them, and lab temp dirs of dead pids. Names without a pid are left
 * alone (they are not ours to judge). Returns the namespaces removed.
 */
export async function removeStaleLabs(): Promise<string[]> {
  const r = await run([tool('ip'), 'netns', 'list']);
  const names = r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(NS_PREFIX));
  const removed: string[] = [];
  const bootMs = await bootTimeMs();
  for (const name of names) {
    const pid = Number(/^vipd-(\d+)-/.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (await ownerAlive(pid, name, bootMs)) continue;
    await killAllIn(name);
    const d = await run([tool('ip'), 'netns', 'del', name]);
    // Another process may be sweeping at the same time; gone is gone.
    if (d.code === 0 || /No such file/.test(d.stderr)) removed.push(name);
  }
  try {
    for (const entry of await readdir(tmpdir())) {
      const pid = Number(new RegExp(`^${TMP_PREFIX}(\\d+)-`).exec(entry)?.[1] ?? NaN);
      if (Number.isInteger(pid) && pid > 0 && !pidExists(pid)) await rm(join(tmpdir(), entry), { recursive: true, force: true });
    }
  } catch {
    // temp dir unreadable: nothing of ours to clean there
  }
  return removed;
}

/**
 * The pid is alive and is the same process that made the namespace: a process that started
 * after the namespace was created (pid reuse) cannot be its creator.
 */
async function ownerAlive(pid: number, nsName: string, bootMs: number | undefined): Promise<boolean> {
  if (!pidExists(pid)) return false;
  if (bootMs === undefined) return true;
  try {
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, clock ticks since boot) counted after the ")" that ends the command name.
    const fields = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const startedMs = bootMs + (ticks / 100) * 1000; // USER_HZ is 100 on Linux
    const nsMade = (await stat(`/run/netns/${nsName}`)).mtimeMs;
    return startedMs <= nsMade + 2000; // btime has whole-second precision
  } catch {
    return true; // can't tell: keep it
  }
}

async function bootTimeMs(): Promise<number | undefined> {
  try {
    const m = /^btime (\d+)$/m.exec(await readFile('/proc/stat', 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]) * 1000;
  } catch {
    return undefined;
  }
}
