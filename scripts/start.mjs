#!/usr/bin/env node
// `npm start [-- ARGS]`: the terminal UI (or `parley ARGS`) from the bundled client. Installs the
// dependencies only when node_modules is missing or older than the lockfile, and bundles only when
// a source file is newer than the bundle; when nothing changed it loads the bundle at once, in
// this process, so a warm start costs npm, Node and a few hundred stat() calls over the bundle.
import { pathToFileURL } from "node:url";
import { BUNDLE, ensureBundle } from "./client-bundle.mjs";
import { callerDir, ensureInstalled } from "./setup.mjs";

const code = await ensureInstalled();
if (code !== 0) process.exit(code);
try {
  ensureBundle((line) => process.stderr.write(`${line}\n`));
} catch (e) {
  process.stderr.write(`npm start: ${e.message}\n`);
  process.exit(1);
}
// Relative paths (`npm start -- --home ./alice`) mean the directory the command was typed in.
process.chdir(callerDir("start"));
// The bundle reads process.argv.slice(2): the arguments after `npm start --`.
await import(pathToFileURL(BUNDLE).href);
