// What the scripting commands print: data on stdout (JSON Lines with --json, else one line of
// text per object), messages on stderr; and how each event, message and group change reads.
import type { ClientEvent, MessageView } from "./client.js";
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

/** "delivered to 1 of 2, read by 0": an outgoing group message's counts. */
function groupCounts(s: { recipients?: number; delivered?: number; read?: number }): string {
  return `delivered to ${s.delivered ?? 0} of ${s.recipients ?? 0}, read by ${s.read ?? 0}`;
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
      out.data(ev, `* ${displayText(ev.group)}: ${groupChangeWords(ev)}`);
  }
}

/** A group change in words. */
export function groupChangeWords(ev: Extract<ClientEvent, { type: "group" }>): string {
  const by = displayText(ev.by ?? "someone");
  const member = displayText(ev.member ?? "someone");
  const change = `${ev.op ?? "change"}${ev.member === undefined ? "" : ` ${member}`}`;
  switch (ev.event) {
    case "created":
      return `group created, ${ev.members} members`;
    case "joined":
      return `${by} added you (${ev.members} members): see \`parley group members ${shellQuote(ev.group)}\``;
    case "added":
      return `${by} added ${member}`;
    case "removed":
      return ev.active ? `${by} removed ${member}` : `${by} removed you: nothing more is sent or received`;
    case "left":
      return ev.active ? `${member} left` : "you left: nothing more is sent or received";
    case "renamed":
      return `${by} renamed the group${ev.previousName === undefined ? "" : ` (was ${displayText(ev.previousName)})`}`;
    case "promoted":
      return `${by} made ${member} an admin`;
    case "fork":
      return `${by}'s ${change} lost to a change made at the same time`;
    case "rejected":
      return `${by}'s ${change} was refused: ${ev.reason ?? "not allowed"}`;
  }
}

export function formatMessage(m: MessageView): string {
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
