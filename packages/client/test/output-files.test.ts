// How the scripting commands print file messages (output.ts): a file offered in a group is a
// `{"type":"file",...}` line with `"group"` as a group text line has it, and reads, in text, with the
// group and its author; a file I sent to a group says how many members it reached.
import { describe, expect, it } from "vitest";
import type { ClientEvent, MessageView } from "../src/client.js";
import { formatMessage, type Output, printEvent } from "../src/output.js";

const AT = Date.UTC(2026, 0, 2, 3, 4, 5);
const file = {
  id: "ab".repeat(16),
  name: "plan.pdf",
  size: 2048,
  mediaType: "application/pdf",
  state: "offered",
} as const;
const offered: MessageView = {
  contact: "Ann",
  group: "Trip",
  id: file.id,
  direction: "in",
  text: "",
  sentAt: AT,
  receivedAt: AT,
  status: "received",
  authorSeq: 3,
  file,
};

/** An Output that keeps what would be printed. */
function captured(json: boolean): Output & { lines: string[] } {
  const lines: string[] = [];
  return { json, lines, data: (obj, text) => lines.push(json ? JSON.stringify(obj) : text), note: () => {} };
}

describe("file messages in the CLI's output", () => {
  it("a group file is a file line with the group, in JSON and in text", () => {
    const json = captured(true);
    printEvent(json, { type: "message", ...offered } as ClientEvent);
    expect(JSON.parse(json.lines[0]!)).toEqual({
      type: "file",
      id: file.id,
      contact: "Ann",
      group: "Trip",
      direction: "in",
      name: "plan.pdf",
      size: 2048,
      mediaType: "application/pdf",
      state: "offered",
      sentAt: AT,
      receivedAt: AT,
      status: "received",
    });
    const text = captured(false);
    printEvent(text, { type: "message", ...offered } as ClientEvent);
    expect(text.lines).toEqual([
      `2026-01-02 03:04:05  [Trip] Ann: [file] plan.pdf (2.0 KiB, offered): parley fetch ${file.id}`,
    ]);
  });

  it("a file I sent to a group says how many members have it; one to a contact does not", () => {
    const mine: MessageView = {
      ...offered,
      contact: "Me",
      direction: "out",
      status: "stored",
      file: { ...file, state: "sent" },
      recipients: 2,
      delivered: 1,
      read: 0,
      failure: null,
    };
    expect(formatMessage(mine)).toBe(
      "2026-01-02 03:04:05  [Trip] me: [file] plan.pdf (2.0 KiB, sent)  [stored, delivered to 1 of 2, read by 0]",
    );
    const { group: _g, recipients: _r, delivered: _d, read: _x, ...toBob } = mine;
    expect(formatMessage({ ...toBob, contact: "Bob" })).toBe(
      "2026-01-02 03:04:05  me: [file] plan.pdf (2.0 KiB, sent)  [stored]",
    );
  });
});
