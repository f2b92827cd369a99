// The chat screen's file commands: /file PATH sends a file to the contact or group on screen,
// /save fetches the newest file offered in the conversation (or the one named) into the downloads
// folder. Both report progress while they run; every failure ends as a notice.
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Client, ConversationEntry } from "../client.js";
import { ClientError } from "../errors.js";
import { humanSize } from "../output.js";
import { downloadsFolder } from "../settings.js";
import { displayText } from "../text.js";
import type { ConversationItem } from "./conversation-list.js";

/** A transfer under way, as the progress bar shows it. */
export interface Transfer {
  readonly label: string;
  readonly done: number;
  readonly total: number;
}

export interface FileCommandContext {
  readonly client: Client;
  readonly current: ConversationItem | null;
  notice(text: string, error: boolean): void;
  progress(t: Transfer | null): void;
  refresh(): void;
}

/** A progress bar of `width` cells with the percentage and the sizes: "██████░░░░ 60% 3.0/5.0 MiB". */
export function progressBar(t: Transfer, width: number): string {
  const share = t.total > 0 ? Math.min(1, t.done / t.total) : 1;
  const cells = Math.max(4, width);
  const full = Math.round(share * cells);
  return `${"█".repeat(full)}${"░".repeat(cells - full)} ${Math.floor(share * 100)}% ${humanSize(t.done)} of ${humanSize(t.total)}`;
}

/** How many files are offered and not fetched in a window of this conversation, newest first. */
function offered(entries: readonly ConversationEntry[], name: string): ConversationEntry[] {
  const wanted = name.toLowerCase();
  return entries
    .filter((e) => {
      const f = e.message.file;
      if (!f || e.message.direction !== "in") return false;
      if (wanted !== "") return f.name.toLowerCase().startsWith(wanted) || f.id.startsWith(wanted);
      return f.state === "offered" || f.state === "failed";
    })
    .reverse();
}

/** Runs `command` if it is a file command (true), else does nothing (false). */
export async function runFileCommand(
  ctx: FileCommandContext,
  command: string,
  arg: string,
): Promise<boolean> {
  if (command !== "/file" && command !== "/save") return false;
  const { client, current } = ctx;
  if (!current?.contact && !current?.group) {
    ctx.notice("select a contact or a group first", true);
    return true;
  }
  const failed = (e: unknown) => {
    ctx.progress(null);
    const queued = e instanceof ClientError && e.code === "UNREACHABLE";
    ctx.notice(e instanceof Error ? e.message : String(e), !queued);
    ctx.refresh();
  };
  if (command === "/file") {
    if (arg === "") {
      ctx.notice("usage: /file PATH (Tab completes the path)", true);
      return true;
    }
    const path = arg === "~" || arg.startsWith("~/") ? join(homedir(), arg.slice(1)) : resolve(arg);
    const label = `↑ ${displayText(path.split("/").at(-1) ?? path)}`;
    ctx.progress({ label, done: 0, total: 0 });
    try {
      const sent = await client.sendFile(current.name, path, (done, total) =>
        ctx.progress({ label, done, total }),
      );
      ctx.progress(null);
      ctx.notice(`sent ${displayText(sent.name)} (${humanSize(sent.size)}) to ${current.name}`, false);
      ctx.refresh();
    } catch (e) {
      failed(e);
    }
    return true;
  }
  const candidates = offered(client.conversation(current.name, {}, 500), arg);
  const target = candidates[0]?.message.file;
  if (!target) {
    ctx.notice(
      arg === "" ? "no file waiting here: /save NAME fetches one by name" : `no file here named ${arg}…`,
      true,
    );
    return true;
  }
  const folder = downloadsFolder(client.settings);
  const label = `↓ ${displayText(target.name)}`;
  ctx.progress({ label, done: 0, total: target.size });
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const fetched = await client.fetchFile(target.id, folder, (done, total) =>
      ctx.progress({ label, done, total }),
    );
    ctx.progress(null);
    ctx.notice(`saved ${displayText(fetched.path)}`, false);
    ctx.refresh();
  } catch (e) {
    failed(e);
  }
  return true;
}
