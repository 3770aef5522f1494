import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Runs alone afterwards (vitest.cluster.config.ts): it needs both cores for minutes.
    exclude: [...configDefaults.exclude, 'test/e2e/cluster.lab.test.ts'],
    // Lab suites build namespaces and spawn real agents; two cores cannot run many at once
    // without starving the timers the suites observe.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
