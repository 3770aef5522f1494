import { defineConfig } from 'vitest/config';

// The kubeadm cluster suite runs alone, after every other suite (`npm test`): three API servers,
// three etcd members and three kubelets take both cores, which would skew the timers the other lab
// suites watch, and their load would skew its failover times.
export default defineConfig({
  test: {
    include: ['test/e2e/bgp.lab.test.ts', 'test/e2e/cluster.lab.test.ts'],
    sequence: { shuffle: false },
    maxWorkers: 1,
    testTimeout: 300_000,
    hookTimeout: 900_000,
  },
});
