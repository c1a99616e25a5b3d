import { defineConfig } from 'vitest/config';
import { newRunPrefix } from './test/harness/run.ts';

// One run prefix per `vitest` invocation, chosen here in the main process and handed to every worker
// through the environment, so the global setup's claim, the tests' objects and the sweeper agree.
process.env.SEGMESH_TEST_PREFIX ??= newRunPrefix();

// Unit tests (pure logic) run in parallel; system tests drive the real kernel, daemons and
// containers, share the machine's network stack and therefore run one file at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'system',
          include: ['test/system/**/*.test.ts'],
          environment: 'node',
          env: { SEGMESH_TEST_PREFIX: process.env.SEGMESH_TEST_PREFIX },
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          globalSetup: ['test/harness/global-setup.ts'],
        },
      },
    ],
  },
});
