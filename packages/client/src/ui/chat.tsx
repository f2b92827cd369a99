// The chat screen: contacts, conversation, input line, status bar, overlays. State lives here;
// the client core (live mode) pushes events, and every view is re-read from the store.
import { Box, Text, useStdout } from "ink";
import QRCode from "qrcode";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { Client, ClientEvent } from "../client.js";
import { ClientError } from "../errors.js";
import { ContactList } from "./contact-list.js";
import { Conversation } from "./conversation.js";
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
import { Overlay, type OverlayState } from "./overlay.js";
import { type Anchor, oldest, type Source, scrollDown, scrollUp, windowAt } from "./scroll.js";
import { StatusBar } from "./status-bar.js";
import { colour } from "./theme.js";
import { useKeys } from "./use-keys.js";
import { useTerminalSize } from "./use-terminal-size.js";

export interface ChatProps {
  readonly client: Client;
  readonly localOnly: boolean;
  readonly onQuit: () => void;
  /** Saves a new default relay (the settings file). */
  readonly onRelay?: (url: string) => void;
}

const CONTACTS_WIDTH = 24;

export function Chat({ client, localOnly, onQuit, onRelay }: ChatProps) {
  const { columns, rows } = useTerminalSize();
  // One row short of the terminal: a frame as tall as the screen would scroll it by a line.
  const height = Math.max(8, rows - 1);
  const { stdout } = useStdout();
  const [tick, setTick] = useState(0);
  const [selected, setSelected] = useState<string | null>(() => client.contacts()[0]?.contact ?? null);
  // Null follows the newest message; an anchor holds the view still while messages arrive. It
  // belongs to one contact: another contact's conversation opens at its newest.
  const [scrolledBack, setScrolledBack] = useState<{ contact: string; at: Anchor } | null>(null);
  // The ref is the truth: several keys can arrive before React renders again.
  const lineRef = useRef(emptyLine());
  const [line, setLineState] = useState(lineRef.current);
  const setLine = (next: LineState) => {
    lineRef.current = next;
    setLineState(next);
  };
  const [overlay, setOverlay] = useState<OverlayState | null>(null);
  const [notice, setNotice] = useState<{ text: string; error: boolean } | null>(null);
  const refresh = useCallback(() => setTick((t) => t + 1), []);

  // Live events: re-read the store; a message elsewhere rings the bell.
  useEffect(() => {
    const onEvent = (ev: ClientEvent) => {
      if (ev.type === "message" && ev.direction === "in" && ev.contact !== selected) stdout.write("\u0007");
      if (ev.type === "contact" && ev.event === "added" && selected === null) setSelected(ev.contact);
      if (ev.type === "contact" && ev.event === "renamed" && ev.previousName === selected)
        setSelected(ev.contact);
      refresh();
    };
    const onWarning = (w: string) => setNotice({ text: w, error: true });
    client.on("event", onEvent);
    client.on("relay", refresh);
    client.on("warning", onWarning);
    const timer = setInterval(refresh, 5000); // outbox and relay states change without events too
    return () => {
      client.off("event", onEvent);
      client.off("relay", refresh);
      client.off("warning", onWarning);
      clearInterval(timer);
    };
  }, [client, selected, stdout, refresh]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const contacts = useMemo(() => client.contacts(), [client, tick]);
  const current = contacts.find((c) => c.contact === selected) ?? null;
  const bannerShown = current?.keyChanged ?? false;
  const bodyHeight = Math.max(3, height - 3 - (bannerShown ? 1 : 0) - (notice ? 1 : 0));
  const convWidth = Math.max(20, columns - CONTACTS_WIDTH - 1);
  const shownName = current?.contact ?? null;
  const anchor = scrolledBack && scrolledBack.contact === shownName ? scrolledBack.at : null;
  const setAnchor = (at: Anchor | null) =>
    setScrolledBack(at && shownName !== null ? { contact: shownName, at } : null);
  const source = useMemo<Source | null>(() => {
    if (shownName === null) return null;
    return {
      before: (before, limit) => client.conversation(shownName, { before }, limit),
      from: (from, limit) => client.conversation(shownName, { from }, limit),
    };
  }, [client, shownName]);
  // The conversation's title takes one row, and its width loses the left padding.
  const layout = useMemo(
    () => ({ height: bodyHeight - 1, width: convWidth - 1, me: "me" }),
    [bodyHeight, convWidth],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const view = useMemo(
    () => (source ? windowAt(source, anchor, layout) : { rows: [], top: null, scrolled: false }),
    [source, anchor, layout, tick],
  );
  const page = Math.max(1, layout.height - 2);
  // Once everything from the anchor fits on screen the view follows the newest again, and must
  // keep doing so when more messages arrive.
  useEffect(() => {
    if (scrolledBack && !view.scrolled) setScrolledBack(null);
  }, [scrolledBack, view.scrolled]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is the signal to re-read the store
  const status = useMemo(() => ({ ...client.status(), localOnly }), [client, tick, localOnly]);

  // What is on screen is read: receipts go out, the unread mark goes.
  useEffect(() => {
    if (current && current.unread > 0 && !view.scrolled) {
      client.markRead(current.contact);
      refresh();
    }
  }, [client, current, view.scrolled, refresh]);

  const select = (delta: number) => {
    if (contacts.length === 0) return;
    const i = contacts.findIndex((c) => c.contact === selected);
    const next = contacts[(i + delta + contacts.length) % contacts.length]!;
    setSelected(next.contact);
    setAnchor(null);
  };

  const run = async (text: string) => {
    const [command, ...rest] = text.trim().split(/\s+/);
    const arg = rest.join(" ");
    try {
      switch (command) {
        case "/quit":
          return onQuit();
        case "/help":
          return setOverlay({ kind: "help" });
        case "/invite": {
          setNotice({ text: "creating an invitation…", error: false });
          const inv = await client.invite();
          const qr = await QRCode.toString(inv.code, { type: "utf8", errorCorrectionLevel: "L", margin: 2 });
          setNotice(null);
          return setOverlay({ kind: "invite", code: inv.code, qr, expiresAt: inv.expiresAt });
        }
        case "/accept": {
          if (!arg) return setNotice({ text: "usage: /accept CODE", error: true });
          setNotice({ text: "accepting…", error: false });
          const ev = await client.accept(arg).catch((e: unknown) => {
            if (e instanceof ClientError && (e.code === "UNREACHABLE" || e.code === "RELAY_REFUSED")) {
              setNotice({ text: e.message, error: true });
              return null;
            }
            throw e;
          });
          if (ev?.type === "contact") {
            setSelected(ev.contact);
            setNotice({ text: `added ${ev.contact}: compare safety numbers with /verify`, error: false });
          }
          return refresh();
        }
        case "/verify": {
          if (!current) return setNotice({ text: "select a contact first", error: true });
          const s = client.safety(current.contact);
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
          const name = client.rename(current.contact, arg);
          setSelected(name);
          setNotice({ text: `renamed to ${name}`, error: false });
          return refresh();
        }
        case "/delete": {
          if (!current) return setNotice({ text: "select a contact first", error: true });
          if (arg === "history") {
            client.deleteHistory(current.contact);
            setNotice({ text: `deleted the messages with ${current.contact} on this machine`, error: false });
          } else if (arg === "") {
            await client.deleteContact(current.contact);
            setSelected(null);
            setNotice({ text: `deleted ${current.contact}`, error: false });
          } else {
            return setNotice({ text: "usage: /delete (the contact) or /delete history", error: true });
          }
          return refresh();
        }
        case "/relay": {
          if (!arg)
            return setNotice({ text: `default relay: ${client.settings.relay ?? "none"}`, error: false });
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

  const send = async (text: string) => {
    if (!current)
      return setNotice({ text: "no contact selected: /invite someone, or /accept a code", error: true });
    if (current.keyChanged)
      return setNotice({ text: `${current.contact}'s key changed: /verify first`, error: true });
    try {
      setAnchor(null);
      const sending = client.send(current.contact, [text]);
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

  useKeys((e) => {
    if (e.kind === "paste") {
      // A copied line usually ends in a line break: it is not part of the message.
      if (!overlay) setLine(insert(lineRef.current, e.text.replace(/\n$/, "")));
      return;
    }
    const action = actionFor(e);
    if (action === "quit") return onQuit();
    if (overlay) {
      if (action === "close") return setOverlay(null);
      if (overlay.kind === "verify" && action === "confirm" && !overlay.verified) {
        client.confirm(overlay.contact);
        setOverlay({ ...overlay, verified: true, keyChanged: false });
        void client.flush({ force: true }).catch(() => {});
        return refresh();
      }
      return;
    }
    const enter = () => {
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
        return setLine(insert(lineRef.current, "\n"));
      case "historyBack":
        return setLine(lineUp(lineRef.current) ?? back(lineRef.current));
      case "historyForward":
        return setLine(lineDown(lineRef.current) ?? forward(lineRef.current));
      case "nextContact":
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
        if (empty || e.name === "f1") return setOverlay({ kind: "help" });
        break;
      case "close":
        return setNotice(null);
    }
    const edited = action ? editLine(lineRef.current, action) : null;
    if (edited) return setLine(edited);
    if (typed(e)) setLine(insert(lineRef.current, e.text));
  });

  const title = current ? `${current.contact}${current.verified ? " ✓ verified" : ""}` : "Parley";
  const input = lineView(line, columns - 3);
  return (
    <Box flexDirection="column" width={columns} height={height}>
      {bannerShown ? (
        <Text inverse color={colour("red")} wrap="truncate-end">
          {` ${current!.contact}'s identity key CHANGED: sending is blocked until you /verify and confirm `}
        </Text>
      ) : null}
      {overlay ? (
        <Overlay state={overlay} width={columns} height={bodyHeight} />
      ) : (
        <Box height={bodyHeight}>
          <ContactList contacts={contacts} selected={selected} width={CONTACTS_WIDTH} height={bodyHeight} />
          <Conversation rows={view.rows} height={bodyHeight} title={title} scrolled={view.scrolled} />
        </Box>
      )}
      {notice ? (
        <Text color={notice.error ? colour("red") : colour("yellow")} wrap="truncate-end">
          {notice.text}
        </Text>
      ) : null}
      <Box>
        <Text color={colour("cyan")}>{"> "}</Text>
        <Text>{input.prefix}</Text>
        <Text>{input.before}</Text>
        <Text inverse>{input.at}</Text>
        <Text>{input.after}</Text>
      </Box>
      <StatusBar info={status} width={columns} />
    </Box>
  );
}
