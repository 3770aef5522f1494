/**
 * A kube-controller-manager next to a lab control plane (lab/apiserver.ts), running only the
 * controllers a test names, as the cluster admin, with no serving port and no leader election:
 * the real controller where a test's claim depends on one (the garbage collector deleting what
 * an ownerReference ties to a deleted object), without a kubeadm cluster.
 */
import { join } from 'node:path';
import { ManagedProcess, type ControlPlane } from './apiserver.js';

export interface ControllerManager {
  /** The end of its log (for a failing test's message). */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export function startControllerManager(cp: ControlPlane, bin: string, controllers: readonly string[]): ControllerManager {
  const argv = [bin, `--kubeconfig=${cp.adminKubeconfig}`, `--controllers=${controllers.join(',')}`, '--leader-elect=false', '--secure-port=0', '--use-service-account-credentials=false', '-v=1'];
  const p = new ManagedProcess('kube-controller-manager', argv, undefined, join(cp.dir, 'kube-controller-manager.log'));
  p.start();
  return { logTail: (lines) => p.logTail(lines), stop: () => p.stop(5_000) };
}
