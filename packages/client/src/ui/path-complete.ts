// Tab completion of a file path on the input line (/file PATH), as a shell completes: the longest
// prefix every match shares, a / after a folder, and the matches to show when that is all.
import { readdirSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

export interface Completion {
  /** The path as typed, completed as far as every match agrees. */
  readonly path: string;
  /** The names that match, when there is more than one (to show), at most 20. */
  readonly options: readonly string[];
}

const expand = (typed: string, home: string) =>
  typed === "~" || typed.startsWith("~/") ? join(home, typed.slice(1)) : typed;

/**
 * Completes `typed` (relative to `cwd`, `~` for the home). A folder that cannot be read, or no
 * match, leaves it as it is. Hidden entries match only when the typed name starts with a dot.
 */
export function completePath(typed: string, cwd = process.cwd(), home = homedir()): Completion {
  const expanded = expand(typed, home);
  const slash = typed.lastIndexOf("/");
  const folderTyped = slash >= 0 ? typed.slice(0, slash + 1) : "";
  const partial = typed.slice(slash + 1);
  const folder = resolve(cwd, slash >= 0 ? dirname(`${expanded}x`) : ".");
  let entries: { name: string; folder: boolean }[];
  try {
    entries = readdirSync(folder, { withFileTypes: true }).map((d) => ({
      name: d.name,
      folder: d.isDirectory() || (d.isSymbolicLink() && isFolder(join(folder, d.name))),
    }));
  } catch {
    return { path: typed, options: [] };
  }
  const matches = entries
    .filter((e) => e.name.startsWith(partial) && (partial.startsWith(".") || !e.name.startsWith(".")))
    .sort((a, b) => a.name.localeCompare(b.name));
  if (matches.length === 0) return { path: typed, options: [] };
  if (matches.length === 1) {
    const only = matches[0]!;
    return { path: `${folderTyped}${only.name}${only.folder ? "/" : ""}`, options: [] };
  }
  let common = matches[0]!.name;
  for (const m of matches) while (!m.name.startsWith(common)) common = common.slice(0, -1);
  return {
    path: `${folderTyped}${common.length > partial.length ? common : partial}`,
    options: matches.slice(0, 20).map((m) => `${m.name}${m.folder ? "/" : ""}`),
  };
}

function isFolder(path: string): boolean {
  try {
    readdirSync(path);
    return true;
  } catch {
    return false;
  }
}
