// /view [NAME]: opens the viewer on the newest picture saved from this conversation (or the
// file named), where the terminal draws pictures; anywhere else, and for a file that cannot be
// shown, a notice says why and where the file is, and the file line stays as it was.
import type { Client, ConversationEntry, MessageFile } from "../client.js";
import { displayText } from "../text.js";
import type { ConversationItem } from "./conversation-list.js";
import type { GraphicsChoice } from "./graphics-detect.js";
import { newImageId } from "./graphics-escapes.js";
import { loadPreview } from "./image-file.js";
import type { Viewing } from "./image-view.js";

export interface ViewCommandContext {
  readonly client: Client;
  readonly current: ConversationItem | null;
  /** How pictures are drawn here (protocol null: they are not). */
  readonly graphics: GraphicsChoice;
  notice(text: string, error: boolean): void;
  open(viewing: Viewing): void;
}

/** A file whose name or claimed type says picture: the first choice of a bare /view. */
const looksLikePicture = (f: { name: string; mediaType: string }) =>
  f.mediaType.startsWith("image/") || /\.(png|jpe?g|gif)$/i.test(f.name);

/** Files fetched from this conversation, newest first, matching `name` (a prefix of its name or id). */
function saved(entries: readonly ConversationEntry[], name: string): MessageFile[] {
  const wanted = name.toLowerCase();
  const files: MessageFile[] = [];
  for (const { message } of entries) {
    const f = message.direction === "in" ? message.file : undefined;
    if (f?.state !== "fetched") continue;
    if (wanted === "" || f.name.toLowerCase().startsWith(wanted) || f.id.startsWith(wanted)) files.push(f);
  }
  files.reverse();
  // Bare, the newest picture (by what the sender claims; the content decides below), else the newest file.
  return wanted === ""
    ? [...files.filter(looksLikePicture), ...files.filter((f) => !looksLikePicture(f))]
    : files;
}

/** Runs `command` if it is /view (true), else does nothing (false). Every failure ends as a notice. */
export async function runViewCommand(
  ctx: ViewCommandContext,
  command: string,
  arg: string,
): Promise<boolean> {
  if (command !== "/view") return false;
  const { client, current } = ctx;
  if (!current) {
    ctx.notice("select a conversation first", true);
    return true;
  }
  const target = saved(client.conversation(current.name, {}, 500), arg)[0];
  if (!target) {
    ctx.notice(
      arg === "" ? "no saved file here to view: /save fetches one first" : `no saved file here named ${arg}…`,
      true,
    );
    return true;
  }
  const name = displayText(target.name);
  const record = client.files().find((f) => f.id === target.id);
  const where = record?.savedAs ? ` it is at ${displayText(record.savedAs)}` : "";
  if (ctx.graphics.protocol === null) {
    ctx.notice(`no pictures in this terminal (${ctx.graphics.reason});${where}`, false);
    return true;
  }
  const loaded = await loadPreview({
    name: target.name,
    size: target.size,
    sha256: record?.sha256 ?? null,
    savedAs: record?.savedAs ?? null,
  });
  if (!loaded.ok) {
    ctx.notice(loaded.why, true);
    return true;
  }
  if (ctx.graphics.protocol === "kitty" && loaded.image.type !== "png") {
    // kitty's protocol takes PNG or raw pixels, and decoding a JPEG or GIF here would take a
    // decoder of our own; the terminal's own viewer (kitten icat) converts it.
    ctx.notice(
      `${name} is a ${loaded.image.type.toUpperCase()}: kitty's graphics show PNG only;${where}`,
      false,
    );
    return true;
  }
  ctx.open({
    id: newImageId(),
    name: target.name,
    size: target.size,
    path: record!.savedAs!,
    image: loaded.image,
  });
  return true;
}
