#!/usr/bin/env node
// `node scripts/from-source.mjs SCRIPT ENTRY [ARGS]`: runs a package's TypeScript entry point
// from source, as `node --conditions=source --import tsx ENTRY ARGS` would (workspace packages
// resolve to their src/), in the directory the person typed the npm command in: `npm run relay --
// --data-dir ./relay-data` makes ./relay-data there, not in the repository root. SCRIPT is the
// npm script's name (root package.json "relay", "parley"), which says whose INIT_CWD to trust.
// It runs in this process, not a child, so signals reach the program once and directly.
import { register } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { callerDir, ROOT } from "./setup.mjs";

const [script, entry] = process.argv.slice(2);
if (!script || !entry) {
  console.error("usage: node scripts/from-source.mjs SCRIPT ENTRY [ARGS...]");
  process.exit(2);
}
const { register: registerTsx } = await import("tsx/esm/api");
registerTsx();
// The "source" export condition, for the workspace packages' TypeScript (hooks registered later
// run first, so this adds it before tsx resolves).
const addSource = `export async function resolve(specifier, context, next) {
  const { conditions } = context;
  return next(specifier, conditions.includes("source") ? context : { ...context, conditions: [...conditions, "source"] });
}`;
register(`data:text/javascript,${encodeURIComponent(addSource)}`);
process.chdir(callerDir(script));
// The program reads process.argv.slice(2): its own arguments.
process.argv.splice(2, 2);
await import(pathToFileURL(join(ROOT, entry)).href);
