import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests start onnxruntime sessions that use 2 intra-op threads each; two
    // workers keep a 2-core machine busy without oversubscribing it.
    maxWorkers: 2,
  },
});
