import { defineConfig } from 'vitest/config';

/**
 * natproof as users get it: `npm pack` installed into another project, and its container
 * image. Minutes each (an npm install, an image build), so they are `npm run test:package`,
 * not part of `npm test`; .ci/run runs both.
 */
export const PACKAGE_TESTS = ['test/e2e/consumer.test.ts', 'test/e2e/image.test.ts'];

export default defineConfig({
  test: {
    include: PACKAGE_TESTS,
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
