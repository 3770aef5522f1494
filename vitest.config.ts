import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Run alone afterwards (vitest.cluster.config.ts): the cluster needs both cores for minutes, and
    // the BGP suite's BFD timers must not starve.
    exclude: [...configDefaults.exclude, 'test/e2e/cluster.lab.test.ts', 'test/e2e/bgp.lab.test.ts'],
    // Lab suites build namespaces and spawn real agents; two cores cannot run many at once
    // without starving the timers the suites observe.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
