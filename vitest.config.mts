import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Child-process and crash tests fork real processes; two cores is the machine's size.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
