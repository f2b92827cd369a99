// The SQLite data directory, made before the storage opens it: one level at a time, so that a path
// the system cannot create gives a clear error. (Node's recursive mkdir loops forever under /proc,
// where mkdir answers ENOENT although the parent exists.)
import { mkdirSync, statfsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** File systems that hold no files of ours: their statfs magic numbers (linux/magic.h). */
const VIRTUAL: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x1cd1, "devpts"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
]);

/**
 * Creates `path` (mode 0700) and any missing parent, or throws an Error saying which directory
 * could not be made and why, or that the path is on a virtual file system such as /proc.
 */
export function prepareDataDir(path: string): void {
  const absolute = resolve(path);
  const missing: string[] = [];
  let existing = absolute;
  for (;;) {
    try {
      if (!statSync(existing).isDirectory()) throw new Error(`${existing} is not a directory`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw describe(e, existing);
      missing.unshift(existing);
      const parent = dirname(existing);
      if (parent === existing) throw new Error(`${existing} does not exist`);
      existing = parent;
    }
  }
  let kind: string | undefined;
  try {
    kind = VIRTUAL.get(Number(statfsSync(existing).type));
  } catch {
    // statfs is missing on some platforms: mkdir and SQLite still report what goes wrong.
  }
  if (kind !== undefined) throw new Error(`${absolute} is on the ${kind} virtual file system, not a disk`);
  for (const dir of missing) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && statSync(dir).isDirectory()) continue;
      throw describe(e, dir, "cannot create");
    }
  }
}

function describe(e: unknown, path: string, what = "cannot use"): Error {
  const err = e as NodeJS.ErrnoException;
  if (!err.code) return err as Error;
  const reason: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    ENOENT: "no such file or directory",
    ENOTDIR: "a part of the path is not a directory",
    EROFS: "read-only file system",
    ENOSPC: "no space left on the device",
  };
  return new Error(`${what} ${path}: ${reason[err.code] ?? err.code}`);
}
