import { defineConfig } from 'vitest/config';

/**
 * Three layers, run in order so the slow ones do not compete for the machine's two cores:
 *  unit (core, vectors, properties, bad inputs, interop with Element's crypto),
 *  integration (real Synapse), e2e (the built extension in Debian's Chromium, web-ext lint).
 */
export default defineConfig({
  test: {
    reporters: ['default', './test/harness/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/interop/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          globalSetup: ['./test/harness/synapse-global.ts'],
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'e2e',
          globalSetup: ['./test/harness/synapse-global.ts'],
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 600_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
