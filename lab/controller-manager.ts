/**
 * A kube-controller-manager next to a lab control plane (lab/apiserver.ts), running only the
 * controllers a test names, as the cluster admin, with no serving port and no leader election:
 * the real controller where a test's claim depends on one (the garbage collector deleting what
 * an ownerReference ties to a deleted object), without a kubeadm cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ControlPlane } from './apiserver.js';

export interface ControllerManager {
  /** What it wrote so far (the tail, for a failing test's message). */
  output(): string;
  stop(): Promise<void>;
}

export function startControllerManager(cp: ControlPlane, bin: string, controllers: readonly string[]): ControllerManager {
  const child: ChildProcess = spawn(
    bin,
    [`--kubeconfig=${cp.adminKubeconfig}`, `--controllers=${controllers.join(',')}`, '--leader-elect=false', '--secure-port=0', '--use-service-account-credentials=false', '-v=1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
