// Once per `vitest run` (for the relay, client and tests projects): bundles the `parley` client the
// way `npm start` and the bin get it (packages/client/scripts/bundle.mjs, esbuild from the
// TypeScript source), with the relay's command line as a second entry point. Tests then start
// those two programs instead of compiling some hundred modules through tsx at each of their
// thousand or so process starts (tsx alone costs a few hundred milliseconds of CPU at each).
//
// The bundles sit inside the client package, where better-sqlite3 resolves as for the shipped
// client, in a directory of this vitest process's own (a second run at the same time builds its
// own). The projects of a run share it, so it is not removed at the end: the next run removes
// those of processes that are gone.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The bundled `parley` entry point (run it with `node`). */
    parleyBundle: string;
    /** The bundled `parley-relay` entry point, packages/relay/src/cli.ts (run it with `node`). */
    relayBundle: string;
  }
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLIENT = join(ROOT, "packages", "client");
const PARENT = join(CLIENT, "dist", "test-bundles");

/** Whether process `pid` still runs. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** This process's bundle directory, once built (projects' setups share it; Symbol.for spans module copies). */
const BUILT = Symbol.for("parley.testBundles");
type Holder = { [BUILT]?: string };

function build(): string {
  mkdirSync(PARENT, { recursive: true });
  for (const name of readdirSync(PARENT)) {
    const pid = Number(name.split("-")[0]);
    if (!Number.isSafeInteger(pid) || !running(pid))
      rmSync(join(PARENT, name), { recursive: true, force: true });
  }
  const outdir = join(PARENT, `${process.pid}-${Date.now()}`);
  execFileSync(
    process.execPath,
    [
      join(CLIENT, "scripts", "bundle.mjs"),
      "--outdir",
      outdir,
      "--entry",
      `relay=${join(ROOT, "packages", "relay", "src", "cli.ts")}`,
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  return outdir;
}

export default function setup(project: TestProject): void {
  const holder = globalThis as Holder;
  holder[BUILT] ??= build();
  project.provide("parleyBundle", join(holder[BUILT], "parley.js"));
  project.provide("relayBundle", join(holder[BUILT], "relay.js"));
}
