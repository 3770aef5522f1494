import { configDefaults, defineConfig } from 'vitest/config';
import { wireSuites } from './vitest.wire.config.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Run alone afterwards: the suites that watch the wire one at a time (vitest.wire.config.ts),
    // then the kubeadm cluster and BGP suites (vitest.cluster.config.ts), which need both cores
    // for minutes and whose BFD timers must not starve.
    exclude: [...configDefaults.exclude, ...wireSuites],
    // Simulations and API-server suites; two cores run two at once.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
