// Set-up shared by `npm start`, `npm test` and `npm run setup`, for a machine with only Node and
// npm: runs the pnpm pinned in package.json ("packageManager") through npx, and installs the
// dependencies when node_modules is missing or older than the lockfile. An install's output goes
// to a log file; the terminal shows its progress without the build scripts' output, and a failure
// ends with a few lines saying what failed and what to do (scripts/install-failure.mjs).
import { spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { explainInstallFailure } from "./install-failure.mjs";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

function pinnedPnpm() {
  const { packageManager } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  if (!/^pnpm@\d+\.\d+\.\d+$/.test(packageManager ?? "")) {
    console.error(
      `scripts/setup.mjs: package.json "packageManager" must pin pnpm@x.y.z, got ${packageManager}`,
    );
    process.exit(2);
  }
  return packageManager;
}

const npx = process.platform === "win32" ? "npx.cmd" : "npx";

/** Runs `pnpm ARGS` in the repository root with the terminal attached; returns its exit status. */
export function runPnpm(args) {
  const pnpm = pinnedPnpm();
  const result = spawnSync(npx, ["--yes", pnpm, ...args], { cwd: ROOT, stdio: "inherit" });
  if (result.error) {
    console.error(`scripts/setup.mjs: could not run ${pnpm} through npx: ${result.error.message}`);
    return 2;
  }
  return result.status ?? 1;
}

/** True when node_modules is missing, or older than the lockfile (a pull or a dependency change). */
export function needsInstall() {
  const marker = join(ROOT, "node_modules", ".modules.yaml");
  const lock = join(ROOT, "pnpm-lock.yaml");
  if (!existsSync(marker)) return true;
  return existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs;
}

/** The command a person ran, to tell them to run it again ("npm start", "npm test", ...). */
export function retryCommand() {
  const event = process.env.npm_lifecycle_event;
  if (event === "start" || event === "test") return `npm ${event}`;
  if (event) return `npm run ${event}`;
  return "node scripts/pnpm.mjs install";
}

/**
 * The directory the person typed the command in. npm and pnpm run a script in the package's
 * root and say where they were called from in INIT_CWD; `script` is the script's name, so an
 * INIT_CWD inherited from some outer npm command is not taken for this one's.
 */
export function callerDir(script) {
  const { INIT_CWD, npm_lifecycle_event } = process.env;
  return INIT_CWD && npm_lifecycle_event === script ? INIT_CWD : process.cwd();
}

// Output of an install script (`.../node_modules/better-sqlite3 install: gyp info ...`): to the
// log only. Its start (`... install$ CMD`) and its end (`...: Done`, `...: Failed`) are shown.
const SCRIPT_OUTPUT = /^\S+ (?:preinstall|install|postinstall|prepare): (?!Done$|Failed$)/;
// pnpm warns that it cannot link the bin of a workspace package that is not built yet (its dist/
// comes from `pnpm build`): expected in a fresh checkout, so to the log only.
const UNBUILT_BIN =
  /WARN\s+Failed to create bin at .*ENOENT.*\/(?:packages|node_modules\/@parley)\/[^/]+\/dist\//;

// In CI nobody can read the log file afterwards, so everything is shown there.
function shown(line) {
  return Boolean(process.env.CI) || (!SCRIPT_OUTPUT.test(line) && !UNBUILT_BIN.test(line));
}

/** Headers for this Node next to it (`<prefix>/include/node/node.h`), as nvm and distributions install them. */
function localHeaders() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, "include", "node", "node.h")) ? prefix : null;
}

/**
 * `pnpm install ARGS` (frozen in CI), its output logged and filtered as described at the top.
 * Resolves with pnpm's exit status.
 */
export async function install(args = []) {
  const pnpm = pinnedPnpm();
  const extra = process.env.CI && !args.includes("--frozen-lockfile") ? ["--frozen-lockfile"] : [];
  const logDir = mkdtempSync(join(tmpdir(), "parley-install-"));
  const logPath = join(logDir, "install.log");
  const log = openSync(logPath, "w", 0o600);
  let output = "";
  // Never a prompt (it could not be answered through the pipe): pnpm removes an incompatible
  // node_modules by itself, as a fresh install would.
  const child = spawn(
    npx,
    [
      "--yes",
      pnpm,
      "install",
      "--reporter=append-only",
      "--config.confirm-modules-purge=false",
      ...extra,
      ...args,
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const relay = (stream, target) => {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      writeSync(log, chunk);
      output += chunk;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (shown(line)) target.write(`${line}\n`);
    });
    stream.on("end", () => {
      if (partial !== "" && shown(partial)) target.write(`${partial}\n`);
    });
  };
  relay(child.stdout, process.stdout);
  relay(child.stderr, process.stderr);
  const code = await new Promise((resolve) => {
    child.once("error", (e) => {
      output += `\n${e.message}\n`;
      writeSync(log, `\n${e.message}\n`);
      resolve(2);
    });
    child.once("close", (status, signal) => resolve(status ?? (signal ? 1 : 0)));
  });
  closeSync(log);
  if (code === 0) {
    rmSync(logDir, { recursive: true, force: true });
    return 0;
  }
  const lines = explainInstallFailure(output, {
    retry: retryCommand(),
    logPath,
    exitCode: code,
    nodedir: process.env.npm_config_nodedir || null,
    localHeaders: localHeaders(),
  });
  process.stderr.write(`\n${lines.join("\n")}\n`);
  return code;
}

/** Installs when needsInstall(); resolves with 0, or the failed install's status. */
export async function ensureInstalled() {
  return needsInstall() ? install() : 0;
}
