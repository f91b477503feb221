import { defineConfig } from 'vitest/config';

/**
 * `npm run test:chaos`: the long proofs under faults (processes killed at random, services
 * stopped), fuzzing, and the demo month scanned for personal data, kept out of `npm test` so
 * the everyday suite stays quick. CI runs both (.ci/run). docs/reliability.md says what each
 * proves.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 120_000,
    globalSetup: ['test/harness/global-setup.ts'],
  },
});
