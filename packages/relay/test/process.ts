// Child processes in tests and benches (no vitest here: the benches import it too).
import type { ChildProcess } from "node:child_process";

/** Collects a child's stdout and stderr, and resolves with its exit code (or signal). */
export function watch(proc: ChildProcess): { output: () => string; exited: Promise<number | string> } {
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<number | string>((resolve) =>
    proc.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return { output: () => out, exited };
}
