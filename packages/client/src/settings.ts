// Settings: a small JSON file with no secrets, no contacts and no mailbox addresses.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { relayUrlProblem } from "@parley/protocol/relay-url";
import { ClientError } from "./errors.js";

export interface Settings {
  /** The default relay for new mailboxes (invite, accept). */
  relay?: string;
  /** The longest retention a relay may announce before this client refuses it. */
  maxRetentionSeconds: number;
  /** The default relay is the personal one this client starts on 127.0.0.1. */
  localRelay?: boolean;
}

export const DEFAULT_MAX_RETENTION_SECONDS = 30 * 86400;

export function loadSettings(path: string): Settings {
  if (!existsSync(path)) return { maxRetentionSeconds: DEFAULT_MAX_RETENTION_SECONDS };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ClientError("USAGE", `settings file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const o = raw as { relay?: unknown; maxRetentionSeconds?: unknown; localRelay?: unknown };
  const settings: Settings = { maxRetentionSeconds: DEFAULT_MAX_RETENTION_SECONDS };
  if (o.relay !== undefined) {
    if (typeof o.relay !== "string" || relayUrlProblem(o.relay)) {
      throw new ClientError("USAGE", `settings file ${path}: "relay" must be a ws:// or wss:// URL`);
    }
    settings.relay = o.relay;
  }
  if (o.maxRetentionSeconds !== undefined) {
    if (
      typeof o.maxRetentionSeconds !== "number" ||
      !Number.isSafeInteger(o.maxRetentionSeconds) ||
      o.maxRetentionSeconds <= 0
    ) {
      throw new ClientError(
        "USAGE",
        `settings file ${path}: "maxRetentionSeconds" must be a positive integer`,
      );
    }
    settings.maxRetentionSeconds = o.maxRetentionSeconds;
  }
  if (o.localRelay !== undefined) settings.localRelay = o.localRelay === true;
  return settings;
}

export function saveSettings(path: string, settings: Settings): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}
