// Settings: a small JSON file with no secrets, no contacts and no mailbox addresses.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { relayUrlProblem } from "@parley/protocol/relay-url";
import { ClientError } from "./errors.js";

export interface Settings {
  /** The default relay for new mailboxes (invite, accept). */
  relay?: string;
  /** The longest retention a relay may announce before this client refuses it. */
  maxRetentionSeconds: number;
  /** The default relay is the personal one this client starts on 127.0.0.1. */
  localRelay?: boolean;
  /**
   * How the terminal UI tells of a message you are not looking at (ui/notify.ts): "auto" (the
   * default) picks the desktop-notification sequence from the terminal's environment, "off" stays
   * silent, "bell" only rings, "osc9" / "osc777" / "osc99" force one sequence (plus the bell).
   * `PARLEY_NOTIFY` overrides it.
   */
  notifications?: NotifySetting;
  /** Desktop notifications show the message's text; by default only who sent it (lock screens). */
  notificationText?: boolean;
  /** Where the terminal UI's /save puts fetched files (`~` is the home); default ~/Downloads/parley. */
  downloads?: string;
  /**
   * Picture previews in the terminal UI's /view (ui/graphics-detect.ts): "auto" (the default)
   * picks kitty's or iTerm2's graphics protocol from the terminal's environment, "off" shows the
   * file line only, "kitty" / "iterm2" force one. `PARLEY_IMAGE_PREVIEW` overrides it.
   */
  imagePreview?: ImagePreviewSetting;
}

/** The values of `notifications`, in the order error messages list them. */
export const NOTIFY_SETTINGS = ["auto", "off", "bell", "osc9", "osc777", "osc99"] as const;
export type NotifySetting = (typeof NOTIFY_SETTINGS)[number];

export const isNotifySetting = (value: unknown): value is NotifySetting =>
  typeof value === "string" && (NOTIFY_SETTINGS as readonly string[]).includes(value);

/** "one of auto, off, bell, …": for the errors that reject a value. */
export const NOTIFY_CHOICES = `one of ${NOTIFY_SETTINGS.join(", ")}`;

/** A rejected value as an error message quotes it: JSON, cut at 40 characters. */
function shown(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 40 ? `${json.slice(0, 39)}…` : json;
}

/** The values of `imagePreview`, in the order error messages list them. */
export const IMAGE_PREVIEW_SETTINGS = ["auto", "off", "kitty", "iterm2"] as const;
export type ImagePreviewSetting = (typeof IMAGE_PREVIEW_SETTINGS)[number];

export const isImagePreviewSetting = (value: unknown): value is ImagePreviewSetting =>
  typeof value === "string" && (IMAGE_PREVIEW_SETTINGS as readonly string[]).includes(value);

/** "one of auto, off, kitty, iterm2": for the errors that reject a value. */
export const IMAGE_PREVIEW_CHOICES = `one of ${IMAGE_PREVIEW_SETTINGS.join(", ")}`;

export const DEFAULT_MAX_RETENTION_SECONDS = 30 * 86400;

export function loadSettings(path: string): Settings {
  if (!existsSync(path)) return { maxRetentionSeconds: DEFAULT_MAX_RETENTION_SECONDS };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ClientError("USAGE", `settings file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ClientError("USAGE", `settings file ${path} must hold a JSON object`);
  }
  const o = raw as {
    relay?: unknown;
    maxRetentionSeconds?: unknown;
    localRelay?: unknown;
    notifications?: unknown;
    notificationText?: unknown;
    downloads?: unknown;
    imagePreview?: unknown;
  };
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
  if (o.notifications !== undefined) {
    if (!isNotifySetting(o.notifications)) {
      throw new ClientError(
        "USAGE",
        `settings file ${path}: "notifications" must be ${NOTIFY_CHOICES}; got ${shown(o.notifications)}`,
      );
    }
    settings.notifications = o.notifications;
  }
  if (o.notificationText !== undefined) {
    if (typeof o.notificationText !== "boolean") {
      throw new ClientError(
        "USAGE",
        `settings file ${path}: "notificationText" must be true or false; got ${shown(o.notificationText)}`,
      );
    }
    settings.notificationText = o.notificationText;
  }
  if (o.downloads !== undefined) {
    if (typeof o.downloads !== "string" || o.downloads.trim() === "" || o.downloads.includes("\0")) {
      throw new ClientError(
        "USAGE",
        `settings file ${path}: "downloads" must be a folder's path; got ${shown(o.downloads)}`,
      );
    }
    settings.downloads = o.downloads;
  }
  if (o.imagePreview !== undefined) {
    if (!isImagePreviewSetting(o.imagePreview)) {
      throw new ClientError(
        "USAGE",
        `settings file ${path}: "imagePreview" must be ${IMAGE_PREVIEW_CHOICES}; got ${shown(o.imagePreview)}`,
      );
    }
    settings.imagePreview = o.imagePreview;
  }
  return settings;
}

export function saveSettings(path: string, settings: Settings): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The folder /save puts files in: the setting (with `~` for the home), else ~/Downloads/parley. */
export function downloadsFolder(settings: Settings, home = homedir()): string {
  const chosen = settings.downloads ?? "~/Downloads/parley";
  return chosen === "~" || chosen.startsWith("~/") ? join(home, chosen.slice(1)) : resolve(chosen);
}
