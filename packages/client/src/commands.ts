// The scripting commands (`parley COMMAND ...`): each opens the store, does one thing and exits.
// Data on stdout, messages on stderr, one exit status per kind of failure (README "Using the
// client"). Loaded only when a command is given, so the terminal UI starts without it.
import { parseArgs } from "node:util";
import { relayUrlProblem } from "@parley/protocol";
import QRCode from "qrcode";
import { firstLine, usage, type Values } from "./args.js";
import { Client, type FileFetched, type FileSent, type GroupFileSent } from "./client.js";
import { ClientError } from "./errors.js";
import { checkGroupArgs, listGroups, runGroup } from "./group-commands.js";
import { groupCounts } from "./group-words.js";
import {
  formatMessage,
  humanSize,
  type Output,
  output,
  printEvent,
  progressMeter,
  shellQuote,
  statusLine,
  time,
} from "./output.js";
import { readPassphrase } from "./passphrase.js";
import { type Paths, resolvePaths } from "./paths.js";
import { loadSettings, type Settings, saveSettings } from "./settings.js";
import { Store } from "./store.js";
import { displayText, parseDuration, printable } from "./text.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw usage("stdin is not valid UTF-8");
  }
}

function duration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const s = parseDuration(value);
  if (s === null)
    throw usage(`${flag}: expected a duration such as 30s, 15m, 12h or 7d, got ${JSON.stringify(value)}`);
  return s;
}

function positiveInt(flag: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw usage(`${flag}: expected a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** Each command and the options it takes (besides the global --home and --json); `help.ts` documents each. */
export const COMMANDS: Record<string, Record<string, { type: "string" | "boolean" }>> = {
  init: { name: { type: "string" }, relay: { type: "string" }, "max-retention": { type: "string" } },
  invite: { relay: { type: "string" }, qr: { type: "boolean" }, ttl: { type: "string" } },
  accept: { name: { type: "string" }, relay: { type: "string" } },
  send: { lines: { type: "boolean" } },
  "send-file": {},
  files: {},
  fetch: { out: { type: "string" } },
  sync: { wait: { type: "string" } },
  contacts: {},
  history: { limit: { type: "string" } },
  verify: { confirm: { type: "boolean" }, number: { type: "string" } },
  group: { members: { type: "string" } },
  groups: {},
};

/** Runs one command; `globals` are the options given before it (--home, --json). */
export async function runCommand(command: string, rest: string[], globals: Values): Promise<number> {
  const spec = COMMANDS[command];
  if (!spec) throw usage(`unknown command ${JSON.stringify(command)}`);
  let values: Values;
  let positionals: string[];
  try {
    // Globals are also accepted after the command, for convenience.
    const parsed = parseArgs({
      args: rest,
      options: { ...spec, home: { type: "string" }, json: { type: "boolean" } },
      strict: true,
      allowPositionals: true,
      allowNegative: false,
    });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (e) {
    throw usage(`${command}: ${firstLine(e)}`);
  }
  const home = (values.home as string | undefined) ?? (globals.home as string | undefined);
  const out = output(Boolean(values.json ?? globals.json));
  const paths = resolvePaths(home);
  const settings = loadSettings(paths.config);

  if (command === "init") return init(paths, settings, values, positionals, out);

  const expect = (n: number, names: string) => {
    if (positionals.length !== n) throw usage(`${command}: expected ${names}`);
  };
  // Check arguments before asking for a passphrase.
  switch (command) {
    case "invite":
    case "contacts":
    case "groups":
    case "sync":
      expect(0, "no arguments");
      break;
    case "accept":
    case "history":
    case "verify":
      expect(1, command === "accept" ? "CODE" : "CONTACT");
      break;
    case "send-file":
      expect(2, "CONTACT PATH");
      break;
    case "fetch":
      expect(1, "FILE-ID");
      break;
    case "files":
      if (positionals.length > 1) throw usage("files: expected at most CONTACT (or GROUP)");
      break;
    case "send":
      if (values.lines ? positionals.length !== 1 : positionals.length !== 2) {
        throw usage("send: expected CONTACT TEXT, CONTACT -, or CONTACT --lines");
      }
  }
  const groupMembers = command === "group" ? checkGroupArgs(positionals, values) : [];
  const waitSeconds =
    command === "sync" ? positiveInt("--wait", values.wait as string | undefined, 3600) : undefined;
  const limit =
    command === "history" ? positiveInt("--limit", values.limit as string | undefined, 1_000_000) : undefined;
  const ttl = command === "invite" ? duration("--ttl", values.ttl as string | undefined) : undefined;

  let texts: string[] | null = null;
  if (command === "send") {
    if (values.lines) {
      texts = (await readStdin()).split(/\r?\n/).filter((l) => l.length > 0);
      if (texts.length === 0) throw usage("send --lines: stdin held no lines to send");
    } else if (positionals[1] === "-") {
      texts = [(await readStdin()).replace(/\r?\n$/, "")];
    } else {
      texts = [positionals[1]!];
    }
  }

  if (!Store.exists(paths.database)) {
    throw new ClientError(
      "NOT_INITIALIZED",
      `no Parley identity in ${paths.home}: run \`parley init --name NAME\``,
    );
  }
  const passphrase = await readPassphrase({ confirm: false });
  const client = Client.open(paths, passphrase, settings);
  client.on("warning", (w) => out.note(w));
  try {
    switch (command) {
      case "invite": {
        const inv = await client.invite({ relay: values.relay as string | undefined, ttlSeconds: ttl });
        out.data({ type: "invitation", ...inv }, inv.code);
        if (values.qr && !out.json) {
          process.stdout.write(await QRCode.toString(inv.code, { type: "utf8", errorCorrectionLevel: "L" }));
        }
        out.note(`invitation valid until ${time(inv.expiresAt)} UTC; give it to one person, out of band`);
        return 0;
      }
      case "accept": {
        client.on("event", (ev) => printEvent(out, ev));
        const ev = await client.accept(positionals[0]!, {
          name: values.name as string | undefined,
          relay: values.relay as string | undefined,
        });
        if (ev.type === "contact" && ev.event === "key-changed") {
          out.note(
            `${ev.contact}'s identity key changed: run \`parley verify ${shellQuote(ev.contact)}\`, compare, then --confirm`,
          );
        }
        return 0;
      }
      case "send": {
        client.on("event", (ev) => {
          if (ev.type !== "status") printEvent(out, ev);
        });
        const statuses = await client.send(positionals[0]!, texts!);
        for (const s of statuses) {
          out.data({ type: "status", ...s }, statusLine(s));
          if ("group" in s && s.failure) out.note(`${s.group}: ${s.failure}`);
        }
        return 0;
      }
      case "send-file": {
        client.on("event", (ev) => {
          if (ev.type !== "status") printEvent(out, ev);
        });
        const meter = progressMeter(positionals[1]!);
        let sent: FileSent | GroupFileSent;
        try {
          sent = await client.sendFile(positionals[0]!, positionals[1]!, meter.update);
        } finally {
          meter.end();
        }
        const words = `${sent.id}\t${sent.status}\t${displayText(sent.name)}\t${humanSize(sent.size)}`;
        if ("group" in sent) {
          out.data({ type: "file", ...sent }, `${displayText(sent.group)}\t${words}\t${groupCounts(sent)}`);
          if (sent.failure) out.note(`${sent.group}: ${sent.failure}`);
          out.note(
            `${sent.name} is on the relay until ${time(sent.expiresAt)} UTC, or until all ${sent.recipients} members it is for fetch it`,
          );
          return 0;
        }
        out.data({ type: "file", ...sent }, `${sent.contact}\t${words}`);
        out.note(
          `${sent.name} is on the relay until ${time(sent.expiresAt)} UTC, or until ${sent.contact} fetches it`,
        );
        return 0;
      }
      case "files": {
        for (const f of client.files(positionals[0])) {
          const where = f.savedAs ? `\t${f.savedAs}` : f.error ? `\t${printable(f.error)}` : "";
          const who = f.group === undefined ? "" : `[${displayText(f.group)}] `;
          out.data(
            { type: "file", ...f },
            `${f.id}\t${who}${displayText(f.contact)}\t${f.direction}\t${displayText(f.name)}\t${humanSize(f.size)}\t${f.state}${where}`,
          );
        }
        return 0;
      }
      case "fetch": {
        const meter = progressMeter(positionals[0]!);
        let got: FileFetched;
        try {
          got = await client.fetchFile(positionals[0]!, values.out as string | undefined, meter.update);
        } finally {
          meter.end();
        }
        out.data({ type: "fetched", ...got }, got.path);
        return 0;
      }
      case "sync": {
        client.on("event", (ev) => printEvent(out, ev));
        const { unreachable, refused } = await client.sync({ waitMs: (waitSeconds ?? 0) * 1000 });
        if (unreachable.length > 0) {
          throw new ClientError(
            "UNREACHABLE",
            `cannot reach relay ${unreachable.join(", ")}; its messages wait there, the outbox here`,
          );
        }
        if (refused.length > 0) {
          throw new ClientError(
            "RELAY_REFUSED",
            `${refused.join("; ")}; anything unsent waits in the outbox`,
          );
        }
        return 0;
      }
      case "contacts": {
        for (const c of client.contacts()) {
          const mark = c.keyChanged ? "KEY CHANGED" : c.verified ? "verified" : "unverified";
          out.data(
            { type: "contact", event: "listed", ...c },
            `${displayText(c.contact)}\t${c.fingerprint}\t${mark}\t${c.relay}\tunread ${c.unread}\toutbox ${c.outbox}\tlast ${c.lastActivity ? time(c.lastActivity) : "-"}`,
          );
        }
        return 0;
      }
      case "groups":
        return listGroups(client, out);
      case "group":
        return await runGroup(client, positionals, groupMembers, out);
      case "history": {
        for (const m of client.history(positionals[0]!, limit ?? 50))
          out.data(
            m.note
              ? { type: "group", group: m.group, at: m.receivedAt, ...m.note }
              : { type: "message", ...m },
            formatMessage(m),
          );
        // Read receipts go out with the next network command (history itself stays offline).
        return 0;
      }
      case "verify": {
        const number = values.number as string | undefined;
        // Confirming may replace the contact's old key in groups I am an admin of: those changes.
        const changes = values.confirm ? client.confirm(positionals[0]!, number) : [];
        if (!values.confirm && number !== undefined && !client.matchesSafety(positionals[0]!, number)) {
          throw new ClientError(
            "SAFETY_MISMATCH",
            `the safety number you have does not match ${positionals[0]}'s key`,
          );
        }
        const s = client.safety(positionals[0]!);
        out.data({ type: "safety", ...s }, `${s.safetyNumber}\n${s.compact}`);
        if (values.confirm) {
          out.note(`${s.contact} is marked verified`);
          for (const ev of changes) printEvent(out, ev);
          const { refused } = await client.flush({ force: true });
          for (const r of refused) out.note(r);
        } else if (number !== undefined) {
          out.note(`the safety number matches ${s.contact}'s key; mark it verified with --confirm`);
        } else {
          out.note(
            `compare these digits with ${s.contact} (in person or on a call); if they match: parley verify ${s.contact} --confirm`,
          );
        }
        return 0;
      }
    }
    throw usage(`unknown command ${command}`);
  } finally {
    client.close();
  }
}

async function init(
  paths: Paths,
  settings: Settings,
  values: Values,
  positionals: string[],
  out: Output,
): Promise<number> {
  if (positionals.length > 0) throw usage("init: unexpected argument");
  const name = values.name as string | undefined;
  if (name === undefined) throw usage("init: --name NAME is required");
  const relay = values.relay as string | undefined;
  const maxRetention = duration("--max-retention", values["max-retention"] as string | undefined);
  const logN = process.env.PARLEY_SCRYPT_LOG_N ? Number(process.env.PARLEY_SCRYPT_LOG_N) : undefined;
  if (logN !== undefined && (!Number.isInteger(logN) || logN < 10 || logN > 20)) {
    throw usage("PARLEY_SCRYPT_LOG_N must be a whole number from 10 to 20");
  }
  const next: Settings = { ...settings };
  if (relay !== undefined) next.relay = relay;
  if (maxRetention !== undefined) next.maxRetentionSeconds = maxRetention;
  if (relay !== undefined) {
    const problem = relayUrlProblem(relay);
    if (problem) throw usage(`--relay ${JSON.stringify(relay)}: ${problem}`);
  }
  if (Store.exists(paths.database))
    throw new ClientError("ALREADY_INITIALIZED", `${paths.home} already holds a Parley identity`);
  const passphrase = await readPassphrase({ confirm: true });
  const client = Client.init(paths, passphrase, name, next, logN);
  try {
    saveSettings(paths.config, next);
    out.data(
      { type: "identity", name, fingerprint: client.fingerprint, relay: next.relay ?? null },
      client.fingerprint,
    );
    out.note(`identity ${name} created in ${paths.home}`);
  } finally {
    client.close();
  }
  return 0;
}
