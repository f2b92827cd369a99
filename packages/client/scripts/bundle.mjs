// Builds the `parley` executable: src/cli.ts and everything it imports, bundled by esbuild into
// dist/bundle/ as ES modules, split at each dynamic import. Loading one file instead of some
// hundreds, with React's production build, is what lets the terminal UI paint its first frame
// quickly (README "The terminal UI"); the client core loads in its own chunk after that frame.
//
//   node scripts/bundle.mjs [--outdir DIR] [--entry NAME=PATH ...]
//
// --entry adds entry points (the UI benchmark bundles its Ink baseline the same way).
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: { outdir: { type: "string" }, entry: { type: "string", multiple: true } },
});
const outdir = values.outdir ?? join(pkg, "dist", "bundle");
// The file transfers' worker thread is a module of its own (src/core/file-work.ts loads it
// from beside the chunk that starts it).
const entryPoints = {
  parley: join(pkg, "src", "cli.ts"),
  "file-worker": join(pkg, "src", "core", "file-worker.ts"),
};
for (const e of values.entry ?? []) {
  const [name, path] = e.split("=");
  if (!name || !path) throw new Error(`--entry wants NAME=PATH, got ${e}`);
  entryPoints[name] = path;
}

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints,
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20.19",
  // Workspace packages from their TypeScript source, as in development.
  conditions: ["source"],
  jsx: "automatic",
  // better-sqlite3 is a native addon and loads its .node file relative to itself; ws's optional
  // native helpers are looked up at run time and may be absent.
  external: ["better-sqlite3", "bufferutil", "utf-8-validate"],
  // Ink loads React DevTools only when DEV=true; the bundle never does.
  alias: { "react-devtools-core": join(pkg, "scripts", "no-devtools.mjs") },
  define: { "process.env.NODE_ENV": '"production"' },
  // Bundled CommonJS (React, qrcode) calls require() for Node's built-ins.
  banner: {
    js: 'import { createRequire as __parleyRequire } from "node:module";\nconst require = __parleyRequire(import.meta.url);',
  },
  sourcemap: true,
  logLevel: "warning",
});
