// Once per `vitest run` of the `tests` project: bundles the `parley` client the way `npm start` and
// the bin get it (packages/client/scripts/bundle.mjs, esbuild from the TypeScript source), so the
// end-to-end tests run that program instead of compiling some hundred modules through tsx at every
// one of their thousand or so process starts. The bundle sits inside the client package, where
// better-sqlite3 resolves as for the shipped one, in a directory of this run's own (a second run
// at the same time builds its own), removed at the end.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The bundled `parley` entry point (run it with `node`). */
    parleyBundle: string;
  }
}

const CLIENT = fileURLToPath(new URL("../packages/client", import.meta.url));
const PARENT = join(CLIENT, "dist", "test-cli");

/** Whether process `pid` still runs. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export default function setup(project: TestProject): () => void {
  mkdirSync(PARENT, { recursive: true });
  // Bundles of runs that were killed before their teardown.
  for (const name of readdirSync(PARENT)) {
    const pid = Number(name.split("-")[0]);
    if (!Number.isSafeInteger(pid) || !running(pid))
      rmSync(join(PARENT, name), { recursive: true, force: true });
  }
  const outdir = join(PARENT, `${process.pid}-${Date.now()}`);
  execFileSync(process.execPath, [join(CLIENT, "scripts", "bundle.mjs"), "--outdir", outdir], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  project.provide("parleyBundle", join(outdir, "parley.js"));
  return () => rmSync(outdir, { recursive: true, force: true });
}
