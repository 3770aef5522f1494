/**
 * The systems under test, behind one interface, so a scenario reads the same for all of them.
 *
 * Every agent runs as one process group per node, started the way its operators run it:
 * - vipd: `node dist/src/cli.js run` with the lab cluster's environment (lab/controlplane.ts)
 *   and otherwise its defaults: Lease through the node's own API server, VIP on lo answered by the
 *   agent, /metrics on :2112.
 * - keepalived: Debian's keepalived 2.2.7, VRRP only (-P), in the foreground (-n), its own pid
 *   files per node so instances in different namespaces do not see each other's.
 * - kube-vip: `kube-vip manager` (built from its Go module; not vendored), ARP mode, control-plane
 *   Lease through the node's own API server, as a kubeadm static pod does; /metrics on :2112 (its default).
 *
 * Supervision: an agent that exits without being told to is started again after 1 s, as kubelet
 * (static pods) or systemd would; such exits are counted and reported.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot, startAgentProcess, type AgentProcess } from '../../lab/agents.js';
import { LAB_LEASE_ENV } from '../../lab/controlplane.js';
import type { LabHost } from '../../lab/netns.js';
import type { SystemName, Timings } from './args.js';
import type { BenchLab } from './benchlab.js';
import { KEEPALIVED_DEFAULT, KEEPALIVED_FAST, keepalivedConf, masterDownSeconds, priorityOf, type KeepalivedProfile } from './keepalived-conf.js';

/** The vipd agent's log line when it runs peer voting (src/election/peers/driver.ts). */
export const PEER_VOTING_LOG = 'peer voting started';
export const PEER_NOTE = 'peers not wired yet';
export const PEER_PORT = 7947;

export interface BenchSystem {
  name: SystemName;
  /** What the rows' "config" field says. */
  config: string;
  /** Said in the rows' "note" field; read after the runs (it may depend on what the agents logged). */
  readonly note: string | undefined;
  /** Lease-based systems: the Lease is deleted before and after them. */
  usesLease: boolean;
  start(node: LabHost): Promise<void>;
  running(node: LabHost): boolean;
  /** How long the node's agent has been running (ms), 0 when it is not. */
  upFor(node: LabHost): number;
  /** kill -9 of the agent (its whole process group); it stays dead until start(). */
  crash(node: LabHost): void;
  /** SIGTERM and wait for the exit (SIGKILL after 15 s). */
  terminate(node: LabHost): Promise<void>;
  /** The node's processes were killed from outside (killHost): stop supervising it until start(). */
  forget(node: LabHost): void;
  /** Before start() after a crash: what the operator's restart would find and clear (a VIP left on eth0). */
  beforeRestart(node: LabHost): Promise<void>;
  /** Pid of the agent's main process. */
  pid(node: LabHost): number | undefined;
  unexpectedExits(): number;
  stopAll(): Promise<void>;
}

interface Slot {
  child: ChildProcess;
  exited: Promise<void>;
  /** Set when we killed it or asked it to stop: its exit is expected. */
  expected: boolean;
  startedAt: number;
}

abstract class ProcessSystem implements BenchSystem {
  abstract name: SystemName;
  abstract config: string;
  get note(): string | undefined {
    return undefined;
  }
  abstract usesLease: boolean;
  private readonly slots = new Map<string, Slot>();
  private exits = 0;
  private stopping = false;

  constructor(protected readonly bl: BenchLab) {}

  protected abstract spawn(node: LabHost): ChildProcess;

  async start(node: LabHost): Promise<void> {
    const old = this.slots.get(node.name);
    if (old && old.child.exitCode === null && old.child.signalCode === null) return;
    this.stopping = false;
    const child = this.spawn(node);
    const slot: Slot = { child, expected: false, startedAt: performance.now(), exited: new Promise((resolve) => child.once('exit', () => resolve())) };
    this.slots.set(node.name, slot);
    void slot.exited.then(async () => {
      if (slot.expected || this.stopping || this.slots.get(node.name) !== slot) return;
      this.exits++;
      process.stderr.write(`bench: ${this.name} on ${node.name} exited by itself (${child.exitCode ?? child.signalCode}); restarting in 1 s\n${this.bl.lab.output(child).slice(-1500)}\n`);
      await sleep(1000);
      if (this.slots.get(node.name) === slot && !this.stopping) {
        this.slots.delete(node.name);
        await this.start(node).catch(() => undefined);
      }
    });
  }

  running(node: LabHost): boolean {
    const s = this.slots.get(node.name);
    return !!s && s.child.exitCode === null && s.child.signalCode === null;
  }

  upFor(node: LabHost): number {
    return this.running(node) ? performance.now() - this.slots.get(node.name)!.startedAt : 0;
  }

  crash(node: LabHost): void {
    const s = this.slots.get(node.name);
    if (!s || s.child.pid === undefined) return;
    s.expected = true;
    try {
      process.kill(-s.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  forget(node: LabHost): void {
    const s = this.slots.get(node.name);
    if (s) s.expected = true;
  }

  async terminate(node: LabHost): Promise<void> {
    const s = this.slots.get(node.name);
    if (!s) return;
    s.expected = true;
    if (this.running(node)) s.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      try {
        if (s.child.pid !== undefined) process.kill(-s.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 15_000);
    await s.exited;
    clearTimeout(timer);
  }

  async beforeRestart(_node: LabHost): Promise<void> {
    // vipd clears a stale VIP itself on start (docs/design.md, rule 6).
  }

  pid(node: LabHost): number | undefined {
    return this.running(node) ? this.slots.get(node.name)?.child.pid : undefined;
  }

  unexpectedExits(): number {
    return this.exits;
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.bl.nodes.map((n) => this.terminate(n)));
    for (const n of this.bl.nodes) await this.beforeRestart(n);
    this.slots.clear();
  }
}

/** Removes the VIP from a node's eth0 if it is there (keepalived and kube-vip leave it behind when killed). */
async function dropStaleVip(bl: BenchLab, node: LabHost): Promise<void> {
  await bl.lab.exec(node, ['ip', 'address', 'del', `${bl.vip}/32`, 'dev', 'eth0']);
}

// --- vipd ---------------------------------------------------------------------------------------

export function vipdTimingEnv(timings: Exclude<Timings, 'both'>): Record<string, string> {
  return timings === 'lab' ? { ...LAB_LEASE_ENV } : {};
}

export function vipdTimingText(timings: Exclude<Timings, 'both'>): string {
  return timings === 'lab'
    ? `Lease ${LAB_LEASE_ENV.vip_leaseduration}/${LAB_LEASE_ENV.vip_renewdeadline}/${LAB_LEASE_ENV.vip_retryperiod} s, health ${LAB_LEASE_ENV.vip_health_interval_ms} ms x ${LAB_LEASE_ENV.vip_health_failures}`
    : 'Lease 15/10/2 s (defaults), health 1000 ms x 3 (defaults)';
}

class VipdSystem extends ProcessSystem {
  usesLease = true;
  config: string;
  private readonly agents = new Map<string, AgentProcess>();
  private keyFile = '';

  constructor(
    bl: BenchLab,
    readonly name: 'vipd' | 'vipd-lease-only',
    private readonly timings: Exclude<Timings, 'both'>,
    /** Settings on top (bench:soak's peer timing). */
    private readonly extraEnv: Record<string, string> = {},
  ) {
    super(bl);
    const peers = name === 'vipd';
    const extra = Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`);
    this.config = `${vipdTimingText(timings)}; ${peers ? `peers on :${PEER_PORT}` : 'peers off'}; responder agent (VIP on lo)${extra.length ? `; ${extra.join(', ')}` : ''}`;
  }

  /**
   * The `vipd` rows always configure peers (vip_peers + vip_peer_key_file); whether the agent
   * used them is read from its logs, so the note disappears by itself once peer voting is wired.
   */
  override get note(): string | undefined {
    return this.name === 'vipd' && !this.peersActive() ? PEER_NOTE : undefined;
  }

  peersActive(): boolean {
    return [...this.agents.values()].some((a) => a.logs.some((l) => l.msg === PEER_VOTING_LOG));
  }

  env(node: LabHost): Record<string, string> {
    const env: Record<string, string> = {
      address: this.bl.vip,
      vip_leaderelection: 'true',
      cp_enable: 'true',
      k8s_config_file: this.bl.vipKubeconfig,
      vip_state_dir: join(this.bl.lab.tmpDir, 'vipd-state', node.name),
      ...vipdTimingEnv(this.timings),
      ...this.extraEnv,
    };
    if (this.name === 'vipd') {
      env.vip_peers = this.bl.nodes.map((n) => `${n.name}=${n.ipv4}:${PEER_PORT}`).join(',');
      env.vip_peer_key_file = this.keyFile;
    }
    return env;
  }

  override async start(node: LabHost): Promise<void> {
    await mkdir(join(this.bl.lab.tmpDir, 'vipd-state', node.name), { recursive: true });
    if (this.name === 'vipd' && !this.keyFile) {
      this.keyFile = join(this.bl.lab.tmpDir, 'vipd-peer.key');
      await writeFile(this.keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    }
    await super.start(node);
  }

  protected spawn(node: LabHost): ChildProcess {
    const a = startAgentProcess(this.bl.lab, node, this.env(node));
    this.agents.set(node.name, a);
    return a.child;
  }

  logs(node: LabHost): AgentProcess['logs'] {
    return this.agents.get(node.name)?.logs ?? [];
  }
}

// --- keepalived ---------------------------------------------------------------------------------

export const KEEPALIVED_BIN = '/usr/sbin/keepalived';
export const CURL_BIN = '/usr/bin/curl';
/** The health check both keepalived rows run: the local API server's /livez, as vipd's gate asks. */
export const LIVEZ_CHECK = [CURL_BIN, '-sfk', '--max-time', '1', '-o', '/dev/null', 'https://127.0.0.1:6443/livez'] as const;
const VRID = 51;

export function keepalivedConfigText(p: KeepalivedProfile): string {
  const md = masterDownSeconds(p, priorityOf(p, 0));
  return `VRRP v${p.vrrpVersion}, advert_int ${p.advertInt} s (master down ${md.toFixed(2)} s), priority ${p.priorities.join('/')} all BACKUP${p.nopreempt ? ' nopreempt' : ''}, ${p.unicast ? 'unicast_peer' : 'multicast'}; track_script curl /livez every ${p.check.interval} s, fall ${p.check.fall} rise ${p.check.rise} (FAULT)`;
}

class KeepalivedSystem extends ProcessSystem {
  usesLease = false;
  config: string;
  private readonly dir: string;

  constructor(
    bl: BenchLab,
    readonly name: 'keepalived-default' | 'keepalived-fast',
    private readonly profile: KeepalivedProfile,
  ) {
    super(bl);
    this.config = keepalivedConfigText(profile);
    this.dir = join(bl.lab.tmpDir, 'keepalived', name);
  }

  private file(node: LabHost, kind: string): string {
    return join(this.dir, `${node.name}.${kind}`);
  }

  override async start(node: LabHost): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const nodes = this.bl.nodes.map((n, index) => ({ name: n.name, ipv4: n.ipv4, index }));
    const me = nodes.find((n) => n.name === node.name)!;
    await writeFile(this.file(node, 'conf'), keepalivedConf({ profile: this.profile, node: me, nodes, vip: this.bl.vip, iface: 'eth0', vrid: VRID, checkCommand: LIVEZ_CHECK }));
    await super.start(node);
  }

  protected spawn(node: LabHost): ChildProcess {
    return this.bl.lab.spawn(node, [
      KEEPALIVED_BIN,
      '--dont-fork',
      '--log-console',
      '--log-detail',
      '--no-syslog',
      '--vrrp',
      '--use-file', this.file(node, 'conf'),
      '--pid', this.file(node, 'pid'),
      '--vrrp_pid', this.file(node, 'vrrp.pid'),
      '--checkers_pid', this.file(node, 'checkers.pid'),
    ]);
  }

  override async beforeRestart(node: LabHost): Promise<void> {
    await dropStaleVip(this.bl, node);
  }
}

// --- kube-vip -----------------------------------------------------------------------------------

export const KUBE_VIP_VERSION = 'v0.9.1';

/** Where `go build` of kube-vip's module puts the binary (see bench/README.md); KUBE_VIP_BIN overrides. */
export function kubeVipBinary(): string | undefined {
  const candidates = [process.env.KUBE_VIP_BIN, join(projectRoot(), '.cache', 'kube-vip', 'bin', 'kube-vip')];
  return candidates.find((c): c is string => !!c && existsSync(c));
}

/** kube-vip's own defaults for the control-plane Lease (its manifests: 5/3/1 s). */
export const KUBE_VIP_LEASE = { vip_leaseduration: '5', vip_renewdeadline: '3', vip_retryperiod: '1' };

class KubeVipSystem extends ProcessSystem {
  readonly name = 'kube-vip' as const;
  usesLease = true;
  config = `kube-vip ${KUBE_VIP_VERSION} manager, ARP, control-plane Lease ${KUBE_VIP_LEASE.vip_leaseduration}/${KUBE_VIP_LEASE.vip_renewdeadline}/${KUBE_VIP_LEASE.vip_retryperiod} s (its defaults) via the local API server, VIP on eth0`;

  constructor(
    bl: BenchLab,
    private readonly bin: string,
  ) {
    super(bl);
  }

  private home(node: LabHost): string {
    return join(this.bl.lab.tmpDir, 'kube-vip', node.name);
  }

  override async start(node: LabHost): Promise<void> {
    // No /etc/kubernetes/admin.conf here: kube-vip then reads $HOME/.kube/config as is.
    await mkdir(join(this.home(node), '.kube'), { recursive: true });
    await writeFile(join(this.home(node), '.kube', 'config'), await readFile(this.bl.localKubeconfig));
    await super.start(node);
  }

  protected spawn(node: LabHost): ChildProcess {
    return this.bl.lab.spawn(node, [this.bin, 'manager'], {
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: this.home(node),
        vip_arp: 'true',
        port: '6443',
        vip_interface: 'eth0',
        vip_cidr: '32',
        cp_enable: 'true',
        cp_namespace: 'kube-system',
        vip_leaderelection: 'true',
        vip_leasename: 'plndr-cp-lock',
        ...KUBE_VIP_LEASE,
        address: this.bl.vip,
        vip_nodename: node.name,
        svc_enable: 'false',
      },
    });
  }

  override async beforeRestart(node: LabHost): Promise<void> {
    await dropStaleVip(this.bl, node);
  }
}

export function availableSystems(): SystemName[] {
  const base: SystemName[] = ['vipd', 'vipd-lease-only', 'keepalived-default', 'keepalived-fast'];
  return kubeVipBinary() ? [...base, 'kube-vip'] : base;
}

export function makeSystem(bl: BenchLab, name: SystemName, timings: Exclude<Timings, 'both'> = 'lab', vipdEnv: Record<string, string> = {}): BenchSystem {
  switch (name) {
    case 'vipd':
    case 'vipd-lease-only':
      return new VipdSystem(bl, name, timings, vipdEnv);
    case 'keepalived-default':
      return new KeepalivedSystem(bl, name, KEEPALIVED_DEFAULT);
    case 'keepalived-fast':
      return new KeepalivedSystem(bl, name, KEEPALIVED_FAST);
    case 'kube-vip': {
      const bin = kubeVipBinary();
      if (!bin) throw new Error(`kube-vip is not built: see bench/README.md (go build of github.com/kube-vip/kube-vip@${KUBE_VIP_VERSION} into .cache/kube-vip/bin)`);
      return new KubeVipSystem(bl, bin);
    }
  }
}
