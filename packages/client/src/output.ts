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

export function formatMessage(m: MessageView): string {
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
