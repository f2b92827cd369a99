#!/usr/bin/env node
// Runs the project's pinned pnpm (from package.json "packageManager") through npx, so a fresh
// machine with only Node and npm can set up and run everything. Installs dependencies first
// whenever node_modules is missing or older than the lockfile, then runs `pnpm <args>`.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { packageManager } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
if (!/^pnpm@\d+\.\d+\.\d+$/.test(packageManager ?? "")) {
  console.error(`scripts/pnpm.mjs: package.json "packageManager" must pin pnpm@x.y.z, got ${packageManager}`);
  process.exit(2);
}

function pnpm(args) {
  const npx = process.platform === "win32" ? "npx.cmd" : "npx";
  const result = spawnSync(npx, ["--yes", packageManager, ...args], { cwd: root, stdio: "inherit" });
  if (result.error) {
    console.error(`scripts/pnpm.mjs: could not run ${packageManager} through npx: ${result.error.message}`);
    process.exit(2);
  }
  return result.status ?? 1;
}

function needsInstall() {
  const marker = join(root, "node_modules", ".modules.yaml");
  const lock = join(root, "pnpm-lock.yaml");
  if (!existsSync(marker)) return true;
  return existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs;
}

const args = process.argv.slice(2);
if (args[0] !== "install" && needsInstall()) {
  const frozen = process.env.CI ? ["--frozen-lockfile"] : [];
  const code = pnpm(["install", ...frozen]);
  if (code !== 0) process.exit(code);
}
process.exit(pnpm(args));
