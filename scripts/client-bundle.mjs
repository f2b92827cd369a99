// The bundled `parley` executable (packages/client/dist/bundle/, built by the client's
// scripts/bundle.mjs): is it older than anything it is built from, and building it again when it
// is. Shared by `npm start` (scripts/start.mjs) and, in a checkout, the `parley` bin
// (packages/client/bin/parley.js), so neither pays for esbuild when nothing changed.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLIENT = join(ROOT, "packages", "client");
export const BUNDLE_DIR = join(CLIENT, "dist", "bundle");
/** The entry point; its modification time is the time the build began. */
export const BUNDLE = join(BUNDLE_DIR, "parley.js");

/**
 * What the bundle is built from: the client's source and build scripts, the source of every
 * workspace package it depends on, their package.json files, and the installed dependencies
 * (node_modules/.modules.yaml changes with every install).
 */
function inputs() {
  const pkg = JSON.parse(readFileSync(join(CLIENT, "package.json"), "utf8"));
  const dirs = [join(CLIENT, "src"), join(CLIENT, "scripts")];
  const files = [join(CLIENT, "package.json"), join(ROOT, "node_modules", ".modules.yaml")];
  for (const [name, spec] of Object.entries(pkg.dependencies ?? {})) {
    if (!String(spec).startsWith("workspace:") || !name.startsWith("@parley/")) continue;
    const dir = join(ROOT, "packages", name.slice("@parley/".length));
    dirs.push(join(dir, "src"));
    files.push(join(dir, "package.json"));
  }
  return { dirs, files };
}

/** Null when the bundle is newer than all its inputs; else why it is not (for a message). */
export function staleReason() {
  let built;
  try {
    built = statSync(BUNDLE).mtimeMs;
  } catch {
    return "not built yet";
  }
  const { dirs, files } = inputs();
  const newer = (path) => {
    try {
      return statSync(path).mtimeMs > built;
    } catch {
      return false;
    }
  };
  for (const file of files) if (newer(file)) return `${file.slice(ROOT.length + 1)} changed`;
  for (const dir of dirs) {
    // A directory's own time changes when a file is added, removed or renamed in it.
    if (newer(dir)) return `${dir.slice(ROOT.length + 1)} changed`;
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      const path = join(entry.parentPath ?? entry.path, entry.name);
      if (newer(path)) return `${path.slice(ROOT.length + 1)} changed`;
    }
  }
  return null;
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Builds the bundle again when staleReason() says so; returns whether it did. The new bundle is
 * built beside the old one and then swapped in, and a lock directory keeps two starts from
 * building at once (the second waits and finds the bundle fresh). `note` gets a line to show.
 */
export function ensureBundle(note = () => {}) {
  if (staleReason() === null) return false;
  const lock = `${BUNDLE_DIR}.lock`;
  mkdirSync(dirname(BUNDLE_DIR), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      // A build takes seconds; a lock older than two minutes was left by a build that died.
      let age = 0;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue;
      }
      if (age > 120_000) rmSync(lock, { recursive: true, force: true });
      else sleep(100);
    }
  }
  try {
    const reason = staleReason();
    if (reason === null) return false;
    note(`building the client (${reason})…`);
    const startedAt = new Date();
    const next = `${BUNDLE_DIR}.next`;
    rmSync(next, { recursive: true, force: true });
    const result = spawnSync(process.execPath, [join(CLIENT, "scripts", "bundle.mjs"), "--outdir", next], {
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (result.status !== 0) {
      rmSync(next, { recursive: true, force: true });
      throw new Error(
        `building the client failed (node packages/client/scripts/bundle.mjs, exit ${result.status ?? result.signal})`,
      );
    }
    // The bundle counts as built when the build began, so a file saved during the build makes
    // it stale again.
    utimesSync(join(next, "parley.js"), startedAt, startedAt);
    const old = `${BUNDLE_DIR}.old`;
    rmSync(old, { recursive: true, force: true });
    if (existsSync(BUNDLE_DIR)) renameSync(BUNDLE_DIR, old);
    renameSync(next, BUNDLE_DIR);
    rmSync(old, { recursive: true, force: true });
    return true;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
