// What `parley --help`, `parley help [COMMAND]` and `parley COMMAND --help` print: one entry per
// command, so the overview and each command's page cannot drift apart. Loaded only when help is
// asked for.

interface CommandHelp {
  /** The command's forms, after `parley ` (the global options are listed apart). */
  readonly forms: readonly string[];
  /** One line for the overview (at most 60 characters). */
  readonly summary: string;
  /** What it does, for its own page. */
  readonly about: string;
  /** Its options and arguments, as [name, meaning]. */
  readonly options: readonly (readonly [string, string])[];
}

export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  init: {
    forms: ["init --name NAME [--relay URL] [--max-retention D]"],
    summary: "create your identity and encrypted store",
    about:
      "Creates your identity (its keys) and the encrypted store in the home, asking for a new passphrase.",
    options: [
      ["--name NAME", "your display name, announced to the people you invite or accept"],
      ["--relay URL", "the default relay for your mailboxes (ws:// or wss://)"],
      ["--max-retention D", "the longest retention a relay may announce (default 30d)"],
    ],
  },
  invite: {
    forms: ["invite [--relay URL] [--qr] [--ttl D]"],
    summary: "print a one-time invitation code",
    about:
      "Creates a fresh mailbox and a one-time invitation code, and prints the code on one line. Give it to one person, out of band.",
    options: [
      ["--relay URL", "the relay for this conversation's mailbox (default: yours from init)"],
      ["--qr", "also print the code as a QR code"],
      ["--ttl D", "how long the code is valid (default 7d)"],
    ],
  },
  accept: {
    forms: ["accept CODE [--name NAME] [--relay URL]"],
    summary: "add the inviter as a contact",
    about: "Adds the inviter as a contact and deposits the handshake; the inviter sees you on its next sync.",
    options: [
      ["CODE", "the invitation code (PARLEY1-...)"],
      ["--name NAME", "your name for the contact (default: the name the inviter announces)"],
      ["--relay URL", "the relay for your mailbox in this conversation (default: yours from init)"],
    ],
  },
  send: {
    forms: ["send CONTACT TEXT", "send CONTACT -", "send CONTACT --lines"],
    summary: "send a message (TEXT, or from stdin)",
    about:
      "Sends a message to a contact or a group; exit 0 once the relay has durably stored it (for a group, every member's copy). If no relay can be reached the message stays in the outbox, exit 75, and a later command delivers it.",
    options: [
      ["CONTACT", "the contact's name, as `parley contacts` lists it, or a group's (`parley groups`)"],
      ["TEXT", "the message (`-`: read one message from stdin)"],
      ["--lines", "send each line of stdin as a message of its own"],
    ],
  },
  "send-file": {
    forms: ["send-file CONTACT PATH"],
    summary: "send a file, end-to-end encrypted",
    about:
      "Encrypts a file a chunk at a time into a blob on the contact's relay, then sends the contact an offer with what it needs to fetch and check it; exit 0 once the relay has stored the file and the offer. To a group, the file is uploaded once (on the relay most members use) and every other member gets an offer of its own, counted like a group message (delivered to N of M). Progress shows on stderr when it is a terminal. If the relay becomes unreachable, exit 75: run the same command again to resume the upload where it stopped (or, once the file is uploaded, a later send or sync delivers the waiting offer).",
    options: [
      ["CONTACT", "the contact's name, as `parley contacts` lists it, or a group's (`parley groups`)"],
      ["PATH", "the file to send (the relay keeps it until it is fetched, at most its retention)"],
    ],
  },
  files: {
    forms: ["files [CONTACT]"],
    summary: "list files sent and received, with their state",
    about:
      "Lists the files you sent and were offered, oldest first: id (what fetch takes), contact (in a group: [group] and who sent it), direction, name, size, state (uploading, sent, offered, fetched, failed, expired) and where a fetched one was saved.",
    options: [["CONTACT", "only the files with this contact, or in this group"]],
  },
  fetch: {
    forms: ["fetch FILE-ID [--out PATH]"],
    summary: "download, decrypt and check a file you were offered",
    about:
      "Downloads a file offered to you into a temporary file beside its destination, decrypts each chunk, checks the size and SHA-256 the sender announced, and only then gives it its name (made safe, and never replacing a file: `name (1).ext`). A failed or tampered download leaves nothing behind (exit 15), as does a file the relay no longer has; an interrupted one resumes when run again.",
    options: [
      ["FILE-ID", "the file's id, from `parley sync` or `parley files`"],
      ["--out PATH", "a directory to save into, or a file name (default: the current directory)"],
    ],
  },
  sync: {
    forms: ["sync [--wait SECONDS]"],
    summary: "receive messages and receipts, deliver the outbox",
    about:
      "Delivers the outbox, receives pending messages and events and prints them, and sends delivered receipts.",
    options: [["--wait SECONDS", "wait up to SECONDS (1-3600) for the first event if none is pending"]],
  },
  contacts: {
    forms: ["contacts"],
    summary: "list contacts",
    about:
      "Lists your contacts: name, fingerprint, verified or key changed, relay, unread count, outbox size and last activity.",
    options: [],
  },
  history: {
    forms: ["history CONTACT [--limit N]"],
    summary: "show a conversation (marks it read)",
    about:
      "Prints a conversation with a contact or a group, oldest first (in a group, each author's messages in the order they wrote them), with each outgoing message's status; marks the incoming messages read and queues read receipts.",
    options: [
      ["CONTACT", "the contact's name, or a group's"],
      ["--limit N", "the last N messages (default 50)"],
    ],
  },
  verify: {
    forms: ["verify CONTACT [--confirm] [--number N]"],
    summary: "compare safety numbers; --confirm marks a contact verified",
    about:
      "Shows the safety number you and the contact share (60 digits, and a compact PARLEYSN1- form). Compare it in person or on a call; if it matches, mark the contact verified with --confirm (which also lifts a key-change block and, in groups you are an admin of, replaces the contact's old key with the new one).",
    options: [
      ["CONTACT", "the contact's name"],
      ["--confirm", "mark the contact verified"],
      ["--number N", "the number the other person has (digits or compact): must match, else exit 13"],
    ],
  },
  group: {
    forms: [
      "group create NAME --members CONTACT,CONTACT,...",
      "group add NAME CONTACT",
      "group remove NAME MEMBER",
      "group promote NAME MEMBER",
      "group rename NAME NEW-NAME",
      "group leave NAME",
      "group members NAME",
      "group contact NAME MEMBER",
    ],
    summary: "create a group, change or list its members",
    about:
      "Creates a group of your contacts, and changes it: each change is signed by you and sent to every member, who all apply the same changes in the same order. Only an admin (the creator, or a member made one with promote) adds, removes, promotes or renames; anyone may leave. A removed member gets nothing sent after its removal. members lists each member's name, fingerprint, whether you verified it, whether it is an admin, and whether you have a session with it yet. Members who are not your contacts are introduced to you through the group; contact lists one of them among your contacts.",
    options: [
      ["NAME", "the group's name, as `parley groups` lists it (unique among contacts and groups)"],
      ["--members A,B,...", "create: the contacts who are its first members, comma-separated"],
      ["CONTACT", "add: a contact to make a member (it gets the group's whole history of changes)"],
      ["MEMBER", "remove, promote, contact: a member, as `parley group members NAME` names it"],
      ["NEW-NAME", "rename: the group's new name, for every member"],
    ],
  },
  groups: {
    forms: ["groups"],
    summary: "list groups",
    about:
      "Lists your groups: name, members, your role (admin, member, or left), unread count, last activity, and how many members you have no session with yet.",
    options: [],
  },
};

const GLOBALS = `Global options, before or after the command:
  --home DIR   the home (else $PARLEY_HOME, else $XDG_DATA_HOME/parley)
  --json       print JSON Lines (one object per line) instead of text
  --help, -h   show help (after a command: that command's)`;

const FOOT =
  "The passphrase comes from $PARLEY_PASSPHRASE, else a prompt in a terminal. D is a duration: 30s, 15m, 12h, 7d.";

/** `text` broken into lines of at most `width` characters, at spaces. */
function wrap(text: string, width = 78): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

/** Two columns, the second wrapped to fit 78 characters under itself. */
function table(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([name]) => name.length));
  const indent = " ".repeat(2 + width + 3);
  return rows.flatMap(([name, text]) =>
    wrap(text, 78 - indent.length).map((line, i) =>
      i === 0 ? `  ${name.padEnd(width)}   ${line}` : `${indent}${line}`,
    ),
  );
}

/** `parley --help`: every command, one line each. */
export function usageText(): string {
  return [
    "usage: parley [--home DIR] [--json] [COMMAND [ARGS]]",
    "",
    "With no command, the terminal UI. Commands (`parley COMMAND --help` for one):",
    ...table(Object.entries(COMMAND_HELP).map(([name, c]) => [name, c.summary] as const)),
    "",
    GLOBALS,
    "",
    ...wrap(FOOT),
  ].join("\n");
}

/** `parley COMMAND --help`; null for a command that does not exist. */
export function commandHelpText(command: string): string | null {
  const c = Object.hasOwn(COMMAND_HELP, command) ? COMMAND_HELP[command] : undefined;
  if (!c) return null;
  const forms = c.forms.map((f, i) => `${i === 0 ? "usage:" : "      "} parley ${f}`);
  return [
    ...forms,
    "",
    ...wrap(c.about),
    ...(c.options.length > 0 ? ["", ...table(c.options)] : []),
    "",
    GLOBALS,
    "",
    ...wrap(FOOT),
  ].join("\n");
}
