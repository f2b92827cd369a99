// What the scripting commands print: data on stdout (JSON Lines with --json, else one line of
// text per object), messages on stderr; and how each event, message and group change reads.
import type { ClientEvent, MessageView } from "./client.js";
import { groupChangeWords, groupCounts } from "./group-words.js";
import { displayText, printable } from "./text.js";

export interface Output {
  json: boolean;
  data(obj: object, text: string): void;
  note(text: string): void;
}

export function output(json: boolean): Output {
  return {
    json,
    data(obj, text) {
      process.stdout.write(json ? `${JSON.stringify(obj)}\n` : `${text}\n`);
    },
    note(text) {
      process.stderr.write(`parley: ${text}\n`);
    },
  };
}

/** A name as it would be typed in a shell command. */
export const shellQuote = (name: string) =>
  /^[\w.@+-]+$/.test(name) ? name : `'${name.replace(/'/g, "'\\''")}'`;

export const time = (ms: number) => new Date(ms).toISOString().replace("T", " ").slice(0, 19);

/** A status line: the conversation, the message id and its status (for a group, with its counts). */
export function statusLine(s: {
  contact: string;
  id: string;
  status: string;
  group?: string;
  recipients?: number;
  delivered?: number;
  read?: number;
}): string {
  if (s.group === undefined) return `${s.contact}\t${s.id}\t${s.status}`;
  return `${displayText(s.group)}\t${s.id}\t${s.status}\t${groupCounts(s)}`;
}

export function printEvent(out: Output, ev: ClientEvent): void {
  switch (ev.type) {
    case "message":
      if (ev.file) {
        out.data(fileMessageJson(ev, ev.file), formatMessage(ev));
        return;
      }
      out.data(ev, formatMessage(ev));
      return;
    case "status":
      out.data(ev, statusLine(ev));
      return;
    case "contact": {
      const what = {
        added: `new contact ${ev.contact} (${ev.fingerprint}): compare safety numbers with \`parley verify ${shellQuote(ev.contact)}\``,
        renamed: `contact ${ev.previousName} is now called ${ev.contact}`,
        renewed: `new conversation with ${ev.contact} (same identity key)`,
        "key-changed": `WARNING: ${ev.contact}'s identity key CHANGED (now ${ev.fingerprint}); nothing is sent until you verify and confirm`,
      }[ev.event];
      out.data(ev, `* ${what}`);
      return;
    }
    case "group":
      out.data(ev, `* ${displayText(ev.group)}: ${groupChangeWords(ev)}${joinedHint(ev)}`);
  }
}

/** Where a member who was just added finds who else is in the group. */
const joinedHint = (ev: { event: string; group: string }) =>
  ev.event === "joined" ? `: see \`parley group members ${shellQuote(ev.group)}\`` : "";

/** A file message as a JSON line: `{"type":"file","id":...,"contact":...,"name":...,"size":...}`. */
function fileMessageJson(m: MessageView, f: NonNullable<MessageView["file"]>): object {
  return {
    type: "file",
    id: f.id,
    contact: m.contact,
    ...(m.group === undefined ? {} : { group: m.group }),
    direction: m.direction,
    name: f.name,
    size: f.size,
    mediaType: f.mediaType,
    state: f.state,
    sentAt: m.sentAt,
    receivedAt: m.receivedAt,
    status: m.status,
  };
}

/** A size in bytes as people read it: 512 B, 1.5 KiB, 50.0 MiB. */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** A file message's words: the name (made printable), size and state, and how to fetch an offered one. */
function fileWords(f: NonNullable<MessageView["file"]>, direction: "in" | "out"): string {
  const fetch = direction === "in" && f.state === "offered" ? `: parley fetch ${f.id}` : "";
  return `[file] ${displayText(f.name)} (${humanSize(f.size)}, ${f.state})${fetch}`;
}

export function formatMessage(m: MessageView): string {
  if (m.file) {
    const who = m.direction === "in" ? m.contact : "me";
    const where = m.group === undefined ? "" : `[${displayText(m.group)}] `;
    const counts = m.group !== undefined && m.direction === "out" ? `, ${groupCounts(m)}` : "";
    const status =
      m.direction === "out" ? `  [${m.status}${counts}${m.failure ? `: ${printable(m.failure)}` : ""}]` : "";
    return `${time(m.direction === "in" ? m.receivedAt : m.sentAt)}  ${where}${displayText(who)}: ${fileWords(m.file, m.direction)}${status}`;
  }
  if (m.note) return `${time(m.receivedAt)}  [${displayText(m.group ?? "")}] * ${groupChangeWords(m.note)}`;
  const who = m.direction === "in" ? m.contact : "me";
  const why = m.failure ? `: ${printable(m.failure)}` : "";
  const counts = m.group !== undefined && m.direction === "out" ? `, ${groupCounts(m)}` : "";
  const status = m.direction === "out" ? `  [${m.status}${counts}${why}]` : "";
  // Continuation lines are indented, so a message cannot pass for several.
  const text = displayText(m.text).replace(/\n/g, "\n    ");
  const where = m.group === undefined ? "" : `[${displayText(m.group)}] `;
  const gap = m.missing
    ? `  (${m.missing} earlier message(s) from ${displayText(m.contact)} not yet received)`
    : "";
  return `${time(m.direction === "in" ? m.receivedAt : m.sentAt)}  ${where}${displayText(who)}: ${text}${status}${gap}`;
}

/**
 * A transfer's progress on stderr, redrawn in place, only when stderr is a terminal (a script's
 * log gets no carriage returns). `end()` clears the line.
 */
export function progressMeter(label: string): {
  update: (done: number, total: number) => void;
  end: () => void;
} {
  if (!process.stderr.isTTY) return { update: () => {}, end: () => {} };
  let last = -1;
  let drawn = false;
  return {
    update(done, total) {
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      if (pct === last) return;
      last = pct;
      drawn = true;
      process.stderr.write(
        `\r\x1b[K${printable(label)}: ${pct}% (${humanSize(done)} of ${humanSize(total)})`,
      );
    },
    end() {
      if (drawn) process.stderr.write("\r\x1b[K");
    },
  };
}
