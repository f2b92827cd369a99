#!/usr/bin/env node
// The `parley` command: loads the bundled client (dist/bundle/parley.js, from scripts/bundle.mjs).
// In a checkout of the Parley repository (its scripts/client-bundle.mjs is two levels up) the
// bundle is built first when it is missing or older than the source, so `npx parley` in the
// repository root always runs the code as it is.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = new URL("../dist/bundle/parley.js", import.meta.url);
const checkout = new URL("../../../scripts/client-bundle.mjs", import.meta.url);
if (existsSync(new URL("../../../pnpm-workspace.yaml", import.meta.url)) && existsSync(checkout)) {
  const { ensureBundle } = await import(checkout.href);
  try {
    // Said only to a person watching: a script reading stderr gets parley's own messages alone.
    ensureBundle((line) => {
      if (process.stderr.isTTY) process.stderr.write(`parley: ${line}\n`);
    });
  } catch (e) {
    process.stderr.write(`parley: ${e.message}\n`);
    process.exit(1);
  }
} else if (!existsSync(bundle)) {
  process.stderr.write(`parley: not built: no ${fileURLToPath(bundle)} (run \`pnpm build\`)\n`);
  process.exit(1);
}
await import(bundle.href);
