// `parley-relay --help`: every option of the table with its placeholder, default and variable.
import { DEFAULTS } from "./config.js";
import { type Kind, OPTIONS, type Option } from "./config-options.js";
import { formatDuration, formatSize } from "./config-values.js";

/** An option's default as it would be typed: `7d`, `64KiB`, `sqlite`. */
function shownDefault(o: Option): string | null {
  const value = DEFAULTS[o.key];
  if (value === null || o.kind === "switch") return null;
  if (o.kind === "networks") return (value as string[]).length === 0 ? "none" : (value as string[]).join(",");
  if (o.kind === "duration") return formatDuration(value as number);
  if (o.kind === "size") return formatSize(value as number);
  return String(value);
}

/** What each kind of value looks like in the help. */
const PLACEHOLDER: Record<Kind, string> = {
  string: "ADDRESS",
  port: "PORT",
  duration: "D",
  size: "SIZE",
  count: "N",
  storage: "STORAGE",
  level: "LEVEL",
  path: "PATH",
  networks: "CIDRS",
  switch: "",
};

export function helpText(): string {
  const flags = OPTIONS.map((o) => `${o.flag} ${PLACEHOLDER[o.kind]}`.trimEnd());
  const width = Math.max(...flags.map((f) => f.length));
  const lines = OPTIONS.map((o, i) => {
    const def = shownDefault(o);
    const shown = def === null ? "" : ` [default: ${def}]`;
    return `  ${flags[i]!.padEnd(width)}  ${o.help}${shown}\n  ${"".padEnd(width)}  env ${o.env}`;
  });
  return [
    "parley-relay: a ciphertext-only store-and-forward relay for Parley",
    "",
    "Usage: parley-relay [options]",
    "",
    "Options (flags override environment variables):",
    ...lines,
    `  ${"--help".padEnd(width)}  show this help`,
    `  ${"--version".padEnd(width)}  print the version`,
    "",
    "D is a duration: 30s, 15m, 12h, 7d. SIZE is bytes: 65536, 64KiB, 4MiB.",
    "CIDRS: 10.0.0.0/8,fd00::/8 (addresses and blocks, comma-separated), loopback, or none.",
    "HTTP on the same port: /livez, /readyz, /metrics, /transparency.",
  ].join("\n");
}
