import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Bundles the client and the relay once per run, for the tests that start them as processes.
const BUNDLES = fileURLToPath(new URL("./tests/global-setup.ts", import.meta.url));
const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      {
        find: /^@parley\/protocol\/relay-url$/,
        replacement: fileURLToPath(new URL("./packages/protocol/src/relay-url.ts", import.meta.url)),
      },
      { find: /^@parley\/protocol$/, replacement: src("protocol") },
      { find: /^@parley\/client$/, replacement: src("client") },
    ],
  },
  test: {
    projects: [
      {
        extends: true,
        test: { name: "protocol", root: "packages/protocol", include: ["test/**/*.test.ts"] },
      },
      {
        extends: true,
        test: {
          name: "relay",
          root: "packages/relay",
          include: ["test/**/*.test.ts"],
          globalSetup: [BUNDLES],
        },
      },
      {
        extends: true,
        test: {
          name: "client",
          root: "packages/client",
          include: ["test/**/*.test.{ts,tsx}"],
          globalSetup: [BUNDLES],
        },
      },
      {
        extends: true,
        test: { name: "tests", root: "tests", include: ["**/*.test.ts"], globalSetup: [BUNDLES] },
      },
    ],
    testTimeout: 60_000,
    // vitest's default is one file at a time on two cores (CI's machine), where most of the
    // end-to-end tests' time is spent waiting for processes they started (relays, the CLI, tmux,
    // redis-server), their timers and their sockets: two files at a time keep both cores busy.
    // Every test takes free ports, temporary directories and tmux sockets of its own.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
