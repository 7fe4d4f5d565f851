import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // End-to-end files each start a whole mesh; on two cores they run one at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 240_000,
  },
});
