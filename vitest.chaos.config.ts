// The reliability suite (`npm run chaos`): faults injected into real processes and a real PostgreSQL, one scenario
// at a time (they kill processes and cut the database; in parallel they would measure each other).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["chaos/**/*.chaos.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
  },
});
