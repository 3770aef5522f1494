/**
 * The benchmark's lab: the same 3-node control plane the e2e tests use (node namespaces on a
 * bridge, a real kube-apiserver per node on :6443, one etcd), plus what every system under test
 * shares: a tag server on TAG_PORT on every node, an ARP prober and a TCP prober in the client
 * namespace streaming their records to us, and a capture of ARP on the bridge.
 *
 * It is built once per benchmark and reused by every system (agents are swapped, the API
 * servers stay), so systems are measured on the same machine state, minutes apart.
 *
 * Each API server writes an audit log (Metadata for everything) to its own file; see audit.ts.
 * Nothing here talks to the API servers during a measurement window except through `request`,
 * which the callers keep outside those windows.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { distEntry } from '../../lab/agents.js';
import { startControlPlane, type ApiServerHandle, type ControlPlane } from '../../lab/apiserver.js';
import { createLab, type Capture, type Lab, type LabHost } from '../../lab/netns.js';
import { claimsIn, type Claim, type ProbeRecord as ArpRecord } from '../../lab/twoholders.js';
import type { ProbeRecord as TcpRecord } from '../../lab/tcpprobe.js';
import { parseFrame } from '../../src/net/frames.js';
import { AUDIT_POLICY, parseAuditLog, type AuditEvent } from './audit.js';

export const TAG_PORT = 7000;
export const PROBE_INTERVAL_MS = 10;
export const LEASE_NAME = 'plndr-cp-lock';

export { wallNow } from '../../lab/wallclock.js';

export interface BenchLab {
  lab: Lab;
  cp: ControlPlane;
  vip: string;
  nodes: LabHost[];
  macToNode: Map<string, string>;
  /** kubeconfig (vipd ServiceAccount token) whose server is https://VIP:6443, as kubeadm writes admin.conf. */
  vipKubeconfig: string;
  /** kubeconfig (vipd ServiceAccount token) whose server is the node's own API server at https://127.0.0.1:6443. */
  localKubeconfig: string;
  server(node: LabHost | string): ApiServerHandle;
  auditFile(node: LabHost | string): string;
  /** Audit events of every API server (parsed now). */
  auditEvents(): Promise<AuditEvent[]>;
  /** (Re)starts the tag server of a node (killHost takes it down). */
  startTagServer(node: LabHost): void;
  readonly tcp: TcpRecord[];
  readonly arp: ArpRecord[];
  /** Claims on the VIP in the bridge capture so far (re-read on each call). */
  claims(): Promise<Claim[]>;
  /** Restarts the bridge capture (one per system keeps files small). */
  restartCapture(): Promise<void>;
  /** Drops probe records older than `t` (wall ms). */
  trimBefore(t: number): void;
  /** Resolves once both probers have streamed a record newer than `t`. */
  caughtUp(t: number, timeoutMs?: number): Promise<void>;
  /**
   * Stops (SIGSTOP) or resumes the two probers, whose 100 ARP questions and 100 TCP connections
   * a second are what the holder answers: footprint's idle window runs without them.
   */
  pauseProbes(paused: boolean): void;
  deleteLease(): Promise<void>;
  destroy(): Promise<void>;
}

/** Calls onLine with each complete line of the child's stdout. */
export function lineStream(child: ChildProcess, onLine: (l: string) => void): void {
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) onLine(l);
  });
}

export async function startBenchLab(opts: { id?: string; log?: (s: string) => void } = {}): Promise<BenchLab> {
  const say = opts.log ?? (() => undefined);
  const lab = await createLab({ nodes: 3, ipv6: false, extras: ['etcd'], id: opts.id ?? 'bench' });
  let cp: ControlPlane | undefined;
  const children: ChildProcess[] = [];
  let capture: Capture | undefined;
  try {
    const auditDir = join(lab.tmpDir, 'audit');
    await mkdir(auditDir, { recursive: true });
    const policy = join(auditDir, 'policy.yaml');
    await writeFile(policy, AUDIT_POLICY);
    const auditFiles = new Map(lab.nodes.map((n) => [n.name, join(auditDir, `${n.name}.log`)]));
    const etcd = lab.host('etcd');
    say('starting etcd and 3 kube-apiservers …');
    cp = await startControlPlane({
      etcdNetns: etcd.ns,
      etcdAddress: etcd.ipv4,
      servers: lab.nodes.map((n) => ({
        netns: n.ns,
        bindAddress: n.ipv4,
        port: 6443,
        extraArgs: ['--bind-address=0.0.0.0', `--audit-policy-file=${policy}`, `--audit-log-path=${auditFiles.get(n.name)!}`, '--audit-log-maxsize=0'],
      })),
      certIps: [lab.vip4, ...lab.nodes.map((n) => n.ipv4)],
    });
    const token = await cp.serviceAccountToken();
    const vipKubeconfig = await cp.kubeconfigFor(`https://${lab.vip4}:6443`, { token });
    const localKubeconfig = await cp.kubeconfigFor('https://127.0.0.1:6443', { token });
    const cpRef = cp;

    const tagServers = new Map<string, ChildProcess>();
    const startTagServer = (n: LabHost): void => {
      const old = tagServers.get(n.name);
      if (old && old.exitCode === null && old.signalCode === null) return;
      const c = lab.spawn(n, [process.execPath, distEntry('lab/tagserver-cli.js'), '--name', n.name, '--port', String(TAG_PORT)]);
      tagServers.set(n.name, c);
    };
    for (const n of lab.nodes) startTagServer(n);

    const tcp: TcpRecord[] = [];
    const arp: ArpRecord[] = [];
    const tcpProc = lab.spawn('client', [process.execPath, distEntry('lab/tcpprobe-cli.js'), '--target', lab.vip4, '--port', String(TAG_PORT), '--interval', String(PROBE_INTERVAL_MS), '--stream']);
    children.push(tcpProc);
    lineStream(tcpProc, (l) => {
      try {
        const r = JSON.parse(l) as TcpRecord & { summary?: unknown };
        if (r.summary === undefined && typeof r.t === 'number') tcp.push(r);
      } catch {
        // not a record
      }
    });
    const arpProc = lab.spawn('client', [process.execPath, distEntry('lab/prober-cli.js'), '--iface', 'eth0', '--vip', lab.vip4, '--interval', String(PROBE_INTERVAL_MS)]);
    children.push(arpProc);
    lineStream(arpProc, (l) => {
      try {
        const r = JSON.parse(l) as { type?: string } & ArpRecord;
        if (r.type === 'request') arp.push({ seq: r.seq, family: r.family, sentAt: r.sentAt, answers: r.answers });
      } catch {
        // not a record
      }
    });

    capture = await lab.capture({ filter: 'arp' });
    const macToNode = new Map(lab.nodes.map((n) => [n.mac, n.name]));
    const nodeOf = (ref: LabHost | string): LabHost => (typeof ref === 'string' ? lab.host(ref) : ref);

    const bl: BenchLab = {
      lab,
      cp: cpRef,
      vip: lab.vip4,
      nodes: lab.nodes,
      macToNode,
      vipKubeconfig,
      localKubeconfig,
      server: (ref) => cpRef.servers[lab.nodes.indexOf(nodeOf(ref))]!,
      auditFile: (ref) => auditFiles.get(nodeOf(ref).name)!,
      async auditEvents() {
        const all: AuditEvent[] = [];
        for (const f of auditFiles.values()) {
          try {
            all.push(...parseAuditLog(await readFile(f, 'utf8')));
          } catch {
            // no requests yet
          }
        }
        return all;
      },
      startTagServer,
      tcp,
      arp,
      async claims() {
        if (!capture) return [];
        const frames = (await capture.read()).map((r) => ({ time: r.time / 1000, frame: parseFrame(r.frame) }));
        return claimsIn(frames, lab.vip4);
      },
      async restartCapture() {
        await capture?.stop({ settleMs: 0 }).catch(() => undefined);
        capture = await lab.capture({ filter: 'arp' });
      },
      trimBefore(t) {
        const dropTcp = tcp.findIndex((r) => r.t >= t);
        tcp.splice(0, dropTcp < 0 ? tcp.length : dropTcp);
        const dropArp = arp.findIndex((r) => r.sentAt >= t);
        arp.splice(0, dropArp < 0 ? arp.length : dropArp);
      },
      async caughtUp(t, timeoutMs = 3000) {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
          if ((tcp.at(-1)?.t ?? 0) > t && (arp.at(-1)?.sentAt ?? 0) > t) return;
          await sleep(20);
        }
      },
      pauseProbes(paused) {
        for (const c of [tcpProc, arpProc]) {
          if (c.pid !== undefined && c.exitCode === null) process.kill(-c.pid, paused ? 'SIGSTOP' : 'SIGCONT');
        }
      },
      async deleteLease() {
        const via = cpRef.servers.find((s) => s.state === 'running');
        if (!via) return;
        await cpRef.request('DELETE', `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${LEASE_NAME}`, undefined, via).catch(() => undefined);
      },
      async destroy() {
        for (const c of children) c.kill('SIGTERM');
        await capture?.stop({ settleMs: 0 }).catch(() => undefined);
        await cpRef.destroy().catch(() => undefined);
        await lab.destroy();
      },
    };
    return bl;
  } catch (err) {
    await capture?.stop({ settleMs: 0 }).catch(() => undefined);
    await cp?.destroy().catch(() => undefined);
    await lab.destroy();
    throw err;
  }
}
