// The chat screen: contacts, conversation, input line, status bar, overlays. State lives here;
// the client core (live mode) pushes events, and every view is re-read from the store.
import { relayUrlProblem } from "@parley/protocol/relay-url";
import { Box, Text, useStdout } from "ink";
import QRCode from "qrcode";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { Client, ClientEvent, GroupView } from "../client.js";
import { ClientError } from "../errors.js";
import { nameProblem } from "../text.js";
import { Conversation } from "./conversation.js";
import { type ConversationItem, ConversationList, conversationItems } from "./conversation-list.js";
import { progressBar, runFileCommand, type Transfer } from "./file-commands.js";
import { day } from "./format.js";
import type { ImageSupport } from "./graphics-output.js";
import { runGroupCommand } from "./group-commands.js";
import { ImageView } from "./image-view.js";
import { actionFor, typed } from "./keys.js";
import {
  back,
  emptyLine,
  forward,
  insert,
  type LineState,
  lineDown,
  lineUp,
  lineView,
  submit,
} from "./line-editor.js";
import { editLine } from "./line-keys.js";
import { BEL, type Notifier, shouldNotify } from "./notify.js";
import { Overlay, type OverlayState, overlayScroll } from "./overlay.js";
import { completePath } from "./path-complete.js";
import { type Anchor, oldest, type Source, scrollDown, scrollUp, windowAt } from "./scroll.js";
import { StatusBar } from "./status-bar.js";
import { copyToClipboard } from "./terminal.js";
import { colour } from "./theme.js";
import { NO_IMAGES, useImageViewer } from "./use-image-viewer.js";
import { useKeyQueue, useKeys } from "./use-keys.js";
import { useTerminalSize } from "./use-terminal-size.js";
import { runViewCommand } from "./view-command.js";

export interface ChatProps {
  readonly client: Client;
  readonly localOnly: boolean;
  readonly onQuit: () => void;
  /** Saves a new default relay (the settings file). */
  readonly onRelay?: (url: string) => void;
  /** Desktop notifications (run.tsx makes it from the settings); without one, the bell. */
  readonly notifier?: Pick<Notifier, "message" | "seen">;
  /** Picture previews (run.tsx makes it from the terminal and the settings); without it, none. */
  readonly images?: ImageSupport;
}

const CONTACTS_WIDTH = 24;
/** How long a notice stays: information goes after a moment, an error stays a little longer. */
const NOTICE_MS = { info: 8000, error: 30_000 };

interface Notice {
  readonly text: string;
  readonly error: boolean;
}

/** A question the input line asks (a name for a new contact); Enter answers, Esc cancels. */
interface Question {
  readonly label: string;
  /** False keeps the question open (the answer was refused, with a notice). */
  readonly answer: (text: string) => boolean;
}

/** A conversation that is not there any more reads as empty, never as a crash. */
function conversationSource(client: Client, name: string): Source {
  const read = (at: { before?: number } | { from: number }, limit: number) => {
    try {
      return client.conversation(name, at, limit);
    } catch (e) {
      if (e instanceof ClientError && e.code === "UNKNOWN_CONTACT") return [];
      throw e;
    }
  };
  return {
    before: (before, limit) => read({ before }, limit),
    from: (from, limit) => read({ from }, limit),
  };
}

/** A group's title: its name, its size, and what is not yet right with it. */
function groupTitle(name: string, g: GroupView): string {
  if (!g.active) return `# ${name} (you are no longer a member)`;
  const pending = g.pending > 0 ? ` · ${g.pending} without a session yet` : "";
  return `# ${name} · ${g.members} members${pending} · /members`;
}

export function Chat({ client, localOnly, onQuit, onRelay, notifier, images = NO_IMAGES }: ChatProps) {
  const { columns, rows } = useTerminalSize();
  // One row short of the terminal: a frame as tall as the screen would scroll it by a line.
  const height = Math.max(8, rows - 1);
  const { stdout } = useStdout();
  const keyQueue = useKeyQueue();
  const [tick, setTick] = useState(0);
  const [selected, setSelectedState] = useState<string | null>(
    () => conversationItems(client.contacts(), client.groups())[0]?.name ?? null,
  );
  // Events are judged against the conversation on screen now, not as of the last render.
  const selectedRef = useRef(selected);
  const setSelected = useCallback((name: string | null) => {
    selectedRef.current = name;
    setSelectedState(name);
  }, []);
  // Null follows the newest message; an anchor holds the view still while messages arrive. It
  // belongs to one contact: another contact's conversation opens at its newest. `newest` is the
  // newest message's seq when scrolling back began: what came after it is "new below".
  const [scrolledBack, setScrolledBack] = useState<{
    contact: string;
    at: Anchor;
    newest: number;
  } | null>(null);
  // The ref is the truth: several keys can arrive before React renders again.
  const lineRef = useRef(emptyLine());
  const [line, setLineState] = useState(lineRef.current);
  const setLine = (next: LineState) => {
    lineRef.current = next;
    setLineState(next);
  };
  const [overlay, setOverlay] = useState<OverlayState | null>(null);
  const [notice, setNoticeState] = useState<Notice | null>(null);
  const [question, setQuestion] = useState<Question | null>(null);
  /** A file going up or down, with its progress. */
  const [transfer, setTransfer] = useState<Transfer | null>(null);
  /** The last invitation code shown, for /copy. */
  const lastCode = useRef<string | null>(null);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  const setNotice = useCallback((n: Notice | null) => setNoticeState(n), []);
  const say = useCallback((text: string, error: boolean) => setNoticeState({ text, error }), []);
  /** The picture viewer (/view). */
  const viewer = useImageViewer(images, say);

  // A notice goes away by itself (a newer one, or Esc, replaces it sooner).
  useEffect(() => {
    if (!notice) return;
    const t = setTimeout(() => setNoticeState(null), notice.error ? NOTICE_MS.error : NOTICE_MS.info);
    return () => clearTimeout(t);
  }, [notice]);

  // Live events: re-read the store; a message that is not on screen is announced.
  useEffect(() => {
    const onEvent = (ev: ClientEvent) => {
      // A message the person is not looking at: a notification (sender only, unless they opted in).
      if (ev.type === "message" && ev.direction === "in") {
        // A group message is on screen when its group is, whoever wrote it.
        const where = ev.group ?? ev.contact;
        if (shouldNotify({ focused: keyQueue?.focused ?? true, onScreen: where === selectedRef.current })) {
          if (notifier)
            notifier.message(where, ev.group === undefined ? ev.text : `${ev.contact}: ${ev.text}`);
          else stdout.write(BEL);
        }
      }
      if (ev.type === "group") {
        if (ev.event === "renamed" && ev.previousName === selectedRef.current) setSelected(ev.group);
        if (ev.event === "joined")
          setNotice({ text: `${ev.by ?? "someone"} added you to ${ev.group}`, error: false });
        if ((ev.event === "removed" || ev.event === "left") && !ev.active && ev.group === selectedRef.current)
          setNotice({
            text: `you are no longer a member of ${ev.group}; its messages stay here`,
            error: false,
          });
      }
      if (ev.type === "contact" && ev.invitationAccepted) {
        // Someone accepted my invitation: say so, and open the new conversation.
        setSelected(ev.contact);
        setScrolledBack(null);
        setNotice({
          text: `${ev.contact} accepted your invitation: /verify to compare safety numbers`,
          error: false,
        });
        setOverlay((o) => (o?.kind === "invite" ? null : o));
      }
      if (ev.type === "contact" && ev.event === "renamed" && ev.previousName === selectedRef.current)
        setSelected(ev.contact);
      refresh();
    };
    const onWarning = (w: string) => setNotice({ text: w, error: true });
    client.on("event", onEvent);
    client.on("relay", refresh);
    client.on("warning", onWarning);
    // Outbox and relay states change without events too; the status bar counts down a retry.
    const timer = setInterval(refresh, 1000);
    return () => {
      client.off("event", onEvent);
      client.off("relay", refresh);
      client.off("warning", onWarning);
      clearInterval(timer);
    };
  }, [client, stdout, refresh, keyQueue, notifier, setNotice, setSelected]);

  // A conversation on screen: what the notifier held back for it is dropped.
  useEffect(() => {
    if (selected) notifier?.seen(selected);
  }, [notifier, selected]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const items = useMemo(() => conversationItems(client.contacts(), client.groups()), [client, tick]);
  const current: ConversationItem | null = items.find((c) => c.name === selected) ?? null;
  // The selected conversation is gone (deleted here, or renamed elsewhere): show the first one.
  useEffect(() => {
    if (selected !== null && !current) setSelected(items[0]?.name ?? null);
    if (selected === null && items.length > 0) setSelected(items[0]!.name);
  }, [selected, current, items, setSelected]);
  const bannerShown = current?.contact?.keyChanged ?? false;
  const bodyHeight = Math.max(3, height - 3 - (bannerShown ? 1 : 0) - (notice ? 1 : 0) - (transfer ? 1 : 0));
  const convWidth = Math.max(20, columns - CONTACTS_WIDTH - 1);
  const shownName = current?.name ?? null;
  const back_ = scrolledBack && scrolledBack.contact === shownName ? scrolledBack : null;
  const anchor = back_?.at ?? null;
  const source = useMemo<Source | null>(
    () => (shownName === null ? null : conversationSource(client, shownName)),
    [client, shownName],
  );
  const setAnchor = (at: Anchor | null) => {
    if (!at || shownName === null || !source) return setScrolledBack(null);
    const newest = back_?.newest ?? source.before(undefined, 1)[0]?.seq ?? 0;
    setScrolledBack({ contact: shownName, at, newest });
  };
  // "today" changes at midnight: the rows are drawn again then.
  const today = day(Date.now());
  // The conversation's title takes one row, and its width loses the left padding.
  // biome-ignore lint/correctness/useExhaustiveDependencies: today is the signal to redraw day separators
  const layout = useMemo(
    () => ({ height: bodyHeight - 1, width: convWidth - 1, me: "me", now: Date.now() }),
    [bodyHeight, convWidth, today],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const view = useMemo(
    () => (source ? windowAt(source, anchor, layout) : { rows: [], top: null, scrolled: false }),
    [source, anchor, layout, tick],
  );
  // Messages that arrived below since scrolling back.
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const newBelow = useMemo(
    () => (back_ && source && view.scrolled ? source.from(back_.newest + 1, 1000).length : 0),
    [back_, source, view.scrolled, tick],
  );
  const page = Math.max(1, layout.height - 2);
  // Once everything from the anchor fits on screen the view follows the newest again, and must
  // keep doing so when more messages arrive.
  useEffect(() => {
    if (scrolledBack && !view.scrolled) setScrolledBack(null);
  }, [scrolledBack, view.scrolled]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const status = useMemo(
    () => ({ ...client.status(), localOnly, now: Date.now() }),
    [client, tick, localOnly],
  );

  // What is on screen is read: receipts go out, the unread mark goes.
  useEffect(() => {
    if (current && current.unread > 0 && !view.scrolled) {
      try {
        client.markRead(current.name);
      } catch (e) {
        if (!(e instanceof ClientError && e.code === "UNKNOWN_CONTACT")) throw e;
      }
      refresh();
    }
  }, [client, current, view.scrolled, refresh]);

  const select = (delta: number) => {
    if (items.length === 0) return;
    const i = items.findIndex((c) => c.name === selected);
    const next = items[(i + delta + items.length) % items.length]!;
    setSelected(next.name);
    setScrolledBack(null);
  };

  const showInvite = async (code: string, expiresAt: number) => {
    const qr = await QRCode.toString(code, { type: "utf8", errorCorrectionLevel: "L", margin: 2 });
    lastCode.current = code;
    setOverlay({ kind: "invite", code, qr, expiresAt });
  };

  /** Accepts an invitation; every failure ends as a notice (this runs outside run()'s catch too). */
  const accept = async (code: string, name: string | undefined) => {
    setNotice({ text: "accepting…", error: false });
    try {
      const ev = await client.accept(code, name === undefined ? {} : { name });
      if (ev.type === "contact") {
        setSelected(ev.contact);
        setScrolledBack(null);
        setNotice({ text: `added ${ev.contact}: compare safety numbers with /verify`, error: false });
      }
    } catch (e) {
      setNotice({ text: e instanceof Error ? e.message : String(e), error: true });
    } finally {
      refresh();
    }
  };

  const run = async (text: string) => {
    const [command, ...rest] = text.trim().split(/\s+/);
    const arg = rest.join(" ");
    try {
      const groupCommand = {
        client,
        current,
        select: (name: string) => {
          setSelected(name);
          setScrolledBack(null);
        },
        notice: (t: string, error: boolean) => setNotice({ text: t, error }),
        overlay: setOverlay,
        refresh,
      };
      const exact = text.trim().slice(command!.length);
      const fileCommand = { client, current, notice: groupCommand.notice, progress: setTransfer, refresh };
      const viewCommand = { ...fileCommand, graphics: viewer.graphics, open: viewer.open };
      if (await runViewCommand(viewCommand, command!, exact.trim())) return;
      if (await runFileCommand(fileCommand, command!, exact.trim())) return;
      if (await runGroupCommand(groupCommand, command!, exact)) return;
      switch (command) {
        case "/quit":
          return onQuit();
        case "/help":
          return setOverlay({ kind: "help", scroll: 0 });
        case "/invite": {
          setNotice({ text: "creating an invitation…", error: false });
          const inv = await client.invite();
          setNotice(null);
          return await showInvite(inv.code, inv.expiresAt);
        }
        case "/copy": {
          if (!lastCode.current)
            return setNotice({ text: "nothing to copy: /invite makes an invitation code", error: true });
          copyToClipboard(stdout, lastCode.current);
          return setNotice({
            text: "invitation code copied to the clipboard (where the terminal allows it: OSC 52)",
            error: false,
          });
        }
        case "/accept": {
          const [code, ...nameParts] = rest;
          if (!code) return setNotice({ text: "usage: /accept CODE [NAME]", error: true });
          const name = nameParts.join(" ");
          if (name !== "") {
            const problem = nameProblem(name);
            if (problem) return setNotice({ text: `name: ${problem}`, error: true });
            return await accept(code, name);
          }
          // Ask for the name they go by here: the code does not carry one, and a placeholder
          // until their announcement arrives would be no name at all.
          return setQuestion({
            label: "What do you call them?",
            answer: (given) => {
              const problem = nameProblem(given.trim());
              if (problem) {
                setNotice({ text: `name: ${problem} (Esc cancels)`, error: true });
                return false;
              }
              void accept(code, given.trim());
              return true;
            },
          });
        }
        case "/verify": {
          // A name verifies that contact (or group member); alone, the contact on screen.
          const who = arg !== "" ? arg : current?.contact?.contact;
          if (who === undefined)
            return setNotice({
              text: current?.group
                ? "in a group: /verify NAME (/members lists them)"
                : "select a contact first",
              error: true,
            });
          const s = client.safety(who);
          const qr = await QRCode.toString(s.compact, { type: "utf8", errorCorrectionLevel: "L", margin: 2 });
          return setOverlay({
            kind: "verify",
            contact: s.contact,
            safetyNumber: s.safetyNumber,
            qr,
            verified: s.verified,
            keyChanged: s.keyChanged,
          });
        }
        case "/rename": {
          if (!current) return setNotice({ text: "select a contact first", error: true });
          const name = client.rename(current.name, arg);
          setSelected(name);
          setNotice({ text: `renamed to ${name}`, error: false });
          return refresh();
        }
        case "/delete": {
          if (!current) return setNotice({ text: "select a contact first", error: true });
          const name = current.name;
          if (arg === "history") {
            client.deleteHistory(name);
            setScrolledBack(null);
            setNotice({ text: `deleted the messages with ${name} on this machine`, error: false });
            return refresh();
          }
          if (arg !== "")
            return setNotice({ text: "usage: /delete (the contact) or /delete history", error: true });
          // The contact is gone from the store before the first await; the screen moves on at once.
          const deleting = client.deleteContact(name);
          setSelected(null);
          setScrolledBack(null);
          refresh();
          await deleting;
          setNotice({ text: `deleted ${name}`, error: false });
          return refresh();
        }
        case "/relay": {
          if (!arg)
            return setNotice({ text: `default relay: ${client.settings.relay ?? "none"}`, error: false });
          const problem = relayUrlProblem(arg);
          if (problem) return setNotice({ text: `relay URL: ${problem}`, error: true });
          onRelay?.(arg);
          return setNotice({ text: `default relay is now ${arg} (for new invitations)`, error: false });
        }
        default:
          return setNotice({ text: `unknown command ${command}: /help lists them`, error: true });
      }
    } catch (e) {
      setNotice({ text: e instanceof Error ? e.message : String(e), error: true });
    }
  };

  /** Completes the path of a /file line as far as the matches agree; shows them when it cannot go on. */
  const completeFilePath = () => {
    const typed = lineRef.current.text.slice("/file ".length);
    const done = completePath(typed);
    if (done.path !== typed)
      setLine(insert(emptyLine(lineRef.current.history, lineRef.current.killed), `/file ${done.path}`));
    if (done.options.length > 1) setNotice({ text: done.options.join("  "), error: false });
    else if (done.path === typed) setNotice({ text: "no file matches", error: true });
  };

  const send = async (text: string) => {
    if (!current)
      return setNotice({ text: "no contact selected: /invite someone, or /accept a code", error: true });
    if (current.contact?.keyChanged)
      return setNotice({ text: `${current.name}'s key changed: /verify first`, error: true });
    if (current.group && !current.group.active)
      return setNotice({ text: `you are no longer a member of ${current.name}`, error: true });
    try {
      setScrolledBack(null);
      const sending = client.send(current.name, [text]);
      refresh();
      await sending;
    } catch (e) {
      // Unreachable: the message waits in the outbox and live mode retries it.
      if (!(e instanceof ClientError && e.code === "UNREACHABLE")) {
        setNotice({ text: e instanceof Error ? e.message : String(e), error: true });
      }
    }
    refresh();
  };

  useKeys(
    (e) => {
      if (e.kind === "paste") {
        // A copied line usually ends in a line break: it is not part of the message.
        if (!overlay && !viewer.viewing) setLine(insert(lineRef.current, e.text.replace(/\n$/, "")));
        return;
      }
      const action = actionFor(e);
      if (action === "quit") return onQuit();
      if (viewer.viewing) {
        if (action === "close") viewer.close();
        return;
      }
      if (overlay) {
        if (action === "close") return setOverlay(null);
        if (overlay.kind === "verify" && action === "confirm" && !overlay.verified) {
          client.confirm(overlay.contact);
          setOverlay({ ...overlay, verified: true, keyChanged: false });
          void client.flush({ force: true }).catch(() => {});
          return refresh();
        }
        const scrolled = overlayScroll(overlay, action);
        if (scrolled) setOverlay(scrolled);
        return;
      }
      if (question && action === "close") {
        setQuestion(null);
        setLine(emptyLine(lineRef.current.history, lineRef.current.killed));
        return setNotice({ text: "cancelled", error: false });
      }
      const enter = () => {
        if (question) {
          const answer = lineRef.current.text;
          if (question.answer(answer) !== false) {
            setQuestion(null);
            setLine(emptyLine(lineRef.current.history, lineRef.current.killed));
          }
          return;
        }
        const { line: text, next } = submit(lineRef.current);
        if (text.trim() === "") return;
        setLine(next);
        setNotice(null);
        void (text.startsWith("/") ? run(text) : send(text));
      };
      const empty = lineRef.current.text === "";
      switch (action) {
        case "send":
          return enter();
        case "newline":
          if (question) return;
          return setLine(insert(lineRef.current, "\n"));
        case "historyBack":
          return setLine(lineUp(lineRef.current) ?? back(lineRef.current));
        case "historyForward":
          return setLine(lineDown(lineRef.current) ?? forward(lineRef.current));
        case "nextContact":
          // On a /file line, Tab completes the path instead.
          if (e.name === "tab" && lineRef.current.text.startsWith("/file ")) return completeFilePath();
          return select(1);
        case "previousContact":
          return select(-1);
        case "scrollUp":
          return view.top && source && setAnchor(scrollUp(source, view.top, page, layout));
        case "scrollDown":
          return view.top && source && view.scrolled && setAnchor(scrollDown(source, view.top, page, layout));
        case "scrollTop":
          return source && setAnchor(oldest(source));
        case "scrollBottom":
          return setAnchor(null);
        case "lineStart":
          // Home and End on an empty input line move through the conversation.
          if (empty && e.name === "home") return source && setAnchor(oldest(source));
          break;
        case "lineEnd":
          if (empty && e.name === "end") return setAnchor(null);
          break;
        case "help":
          if (empty || e.name === "f1") return setOverlay({ kind: "help", scroll: 0 });
          break;
        case "close":
          return setNotice(null);
      }
      const edited = action ? editLine(lineRef.current, action) : null;
      if (edited) return setLine(edited);
      if (typed(e)) setLine(insert(lineRef.current, e.text));
    },
    // Characters bound to nothing are all the same to this screen: typed runs arrive joined.
    { joinable: (k) => typed(k) && actionFor(k) === null },
  );

  const title = !current
    ? "Parley"
    : current.group
      ? groupTitle(current.name, current.group)
      : `${current.name}${current.contact?.verified ? " ✓ verified" : ""}`;
  if (viewer.viewing && viewer.output) {
    const { viewing, output, failed } = viewer;
    return <ImageView viewing={viewing} output={output} width={columns} height={height} onFailed={failed} />;
  }
  const label = question ? `${question.label} ` : "> ";
  const input = lineView(line, columns - label.length - 1);
  return (
    <Box flexDirection="column" width={columns} height={height}>
      {bannerShown ? (
        <Text inverse color={colour("red")} wrap="truncate-end">
          {` ${current!.name}'s identity key CHANGED: sending is blocked until you /verify and confirm `}
        </Text>
      ) : null}
      {overlay ? (
        <Overlay state={overlay} width={columns} height={bodyHeight} />
      ) : (
        <Box height={bodyHeight}>
          <ConversationList items={items} selected={selected} width={CONTACTS_WIDTH} height={bodyHeight} />
          <Conversation
            rows={view.rows}
            height={bodyHeight}
            title={title}
            scrolled={view.scrolled}
            newBelow={newBelow}
          />
        </Box>
      )}
      {transfer ? (
        <Text color={colour("cyan")} wrap="truncate-end">
          {transfer.label} {progressBar(transfer, Math.max(10, Math.min(30, columns - 50)))}
        </Text>
      ) : null}
      {notice ? (
        <Text color={notice.error ? colour("red") : colour("yellow")} wrap="truncate-end">
          {notice.text}
        </Text>
      ) : null}
      <Box>
        <Text color={colour("cyan")}>{label}</Text>
        <Text>{input.prefix}</Text>
        <Text>{input.before}</Text>
        <Text inverse>{input.at}</Text>
        <Text>{input.after}</Text>
      </Box>
      <StatusBar info={status} width={columns} />
    </Box>
  );
}
