import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Real topologies take well under a second each, but a failing probe waits for its timeout.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
