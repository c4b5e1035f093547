import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // WebGPU (Dawn) devices are per process; keep each test file in its own fork.
    pool: 'forks',
    // Tests run the kernels' default configurations (the autotuner's own tests force it on), so timing
    // never steers a test and nothing is written to the user's cache directory.
    env: { ENGINE_AUTOTUNE: 'off' },
  },
});
