import { configDefaults, defineConfig } from 'vitest/config';
import { PACKAGE_TESTS } from './vitest.package.config.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Minutes each: `npm run test:package` (vitest.package.config.ts).
    exclude: [...configDefaults.exclude, ...PACKAGE_TESTS],
    globalSetup: ['test/global-setup.ts'],
    // Real topologies take well under a second each, but a failing probe waits for its timeout.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
