// Where a client keeps its data: --home, else PARLEY_HOME, else the XDG data directory.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface Paths {
  /** The data directory: the encrypted store lives here. */
  readonly home: string;
  /** The settings file (no secrets, no contacts, no addresses). */
  readonly config: string;
  readonly database: string;
}

export function resolvePaths(homeFlag: string | undefined, env: NodeJS.ProcessEnv = process.env): Paths {
  const explicit = homeFlag ?? (env.PARLEY_HOME || undefined);
  if (explicit) {
    const home = resolve(explicit);
    return { home, config: join(home, "config.json"), database: join(home, "parley.db") };
  }
  const data = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  const config = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  const home = join(data, "parley");
  return { home, config: join(config, "parley", "config.json"), database: join(home, "parley.db") };
}
