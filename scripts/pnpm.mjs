#!/usr/bin/env node
// `node scripts/pnpm.mjs ARGS`: runs the project's pinned pnpm (package.json "packageManager")
// through npx, so a machine with only Node and npm can set up and run everything. Installs the
// dependencies first when node_modules is missing or older than the lockfile (scripts/setup.mjs),
// then runs `pnpm ARGS`. `install` itself runs through the same logged, explained install.
import { ensureInstalled, install, runPnpm } from "./setup.mjs";

const args = process.argv.slice(2);
if (args[0] === "install" || args[0] === "i") {
  process.exit(await install(args.slice(1)));
}
const code = await ensureInstalled();
if (code !== 0) process.exit(code);
process.exit(runPnpm(args));
