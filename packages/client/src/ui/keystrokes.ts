// The terminal's input, split into keystrokes. A terminal read can hold many keys ("hello", Enter
// and "world" typed faster than the UI reads; three Backspaces), a key can be split across reads
// (an escape sequence, a UTF-8 character), and a paste arrives in brackets. This parser turns any
// chunking of the same bytes into the same events, so what the UI does depends on the keys, never
// on how the terminal happened to deliver them (tested with fast-check against random read
// boundaries in test/keystrokes.test.ts).
//
// Encodings understood (xterm's ctlseqs, "PC-Style Function Keys" and "Bracketed Paste Mode"):
// - C0 controls: CR is Enter (CR LF and a lone LF too), TAB, BS and DEL are Backspace, NUL is
//   Ctrl+Space, 0x01-0x1a are Ctrl+A..Ctrl+Z, 0x1c-0x1f are Ctrl+\ ] ^ _;
// - CSI sequences, ESC [ params final: arrows (A-D), Home/End (H/F, 1~/7~, 4~/8~), Insert (2~),
//   Delete (3~), PageUp/PageDown (5~/6~), F1-F12, Shift+Tab (Z), modifiers as the second parameter
//   (1 + Shift 1 + Alt 2 + Ctrl 4), focus in and out (I/O, after CSI ?1004h), kitty's CSI u;
// - SS3 sequences, ESC O x: arrows, Home/End and F1-F4 in application mode;
// - ESC before a key is Alt (Meta) with that key; ESC alone is Escape once nothing follows it;
// - ESC [200~ ... ESC [201~ is a paste, delivered whole as text.
import { StringDecoder } from "node:string_decoder";

export type KeyName =
  | "return"
  | "tab"
  | "backspace"
  | "delete"
  | "insert"
  | "escape"
  | "space"
  | "up"
  | "down"
  | "left"
  | "right"
  | "home"
  | "end"
  | "pageup"
  | "pagedown"
  | `f${number}`
  | "unknown"
  /** A character: `text` holds it (a Ctrl+letter has its letter there, and `ctrl`). */
  | "char";

export interface Keystroke {
  readonly kind: "key";
  readonly name: KeyName;
  /** The character for "char" keys (lower case for Ctrl+letter), else "". */
  readonly text: string;
  readonly ctrl: boolean;
  /** Alt, or Meta: sent as ESC before the key, or as a modifier parameter. */
  readonly meta: boolean;
  readonly shift: boolean;
}

export interface Paste {
  readonly kind: "paste";
  /** Line breaks (CR, LF, CR LF) are "\n". */
  readonly text: string;
}

export interface Focus {
  readonly kind: "focus";
  readonly focused: boolean;
}

export type InputEvent = Keystroke | Paste | Focus;

const ESC = "\u001b";
const PASTE_START = `${ESC}[200~`;
const PASTE_END = `${ESC}[201~`;

export const key = (name: KeyName, mods: Partial<Omit<Keystroke, "kind" | "name">> = {}): Keystroke => ({
  kind: "key",
  name,
  text: mods.text ?? "",
  ctrl: mods.ctrl ?? false,
  meta: mods.meta ?? false,
  shift: mods.shift ?? false,
});

/** A printable character as a keystroke. */
export const char = (c: string, mods: { meta?: boolean; ctrl?: boolean } = {}): Keystroke =>
  key("char", { text: c, shift: c !== c.toLowerCase(), ...mods });

const TILDE: Record<number, KeyName> = {
  1: "home",
  2: "insert",
  3: "delete",
  4: "end",
  5: "pageup",
  6: "pagedown",
  7: "home",
  8: "end",
  11: "f1",
  12: "f2",
  13: "f3",
  14: "f4",
  15: "f5",
  17: "f6",
  18: "f7",
  19: "f8",
  20: "f9",
  21: "f10",
  23: "f11",
  24: "f12",
};

const LETTER: Record<string, KeyName> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
  E: "unknown", // keypad 5
  P: "f1",
  Q: "f2",
  R: "f3",
  S: "f4",
};

/** A C0 control character (or DEL) as the key it stands for. */
function control(code: number, meta: boolean): Keystroke {
  if (code === 0x0d || code === 0x0a) return key("return", { meta });
  if (code === 0x09) return key("tab", { meta });
  if (code === 0x08 || code === 0x7f) return key("backspace", { meta });
  if (code === 0x00) return key("space", { ctrl: true, meta });
  if (code === 0x1b) return key("escape", { meta });
  if (code <= 0x1a) return key("char", { text: String.fromCharCode(code + 0x60), ctrl: true, meta });
  return key("char", { text: String.fromCharCode(code + 0x40), ctrl: true, meta });
}

/** Applies xterm's modifier parameter (1 + Shift 1 + Alt 2 + Ctrl 4 + Meta 8) to a key. */
function modified(k: Keystroke, param: number | undefined, meta: boolean): Keystroke {
  const m = param === undefined || Number.isNaN(param) ? 0 : Math.max(0, param - 1);
  return {
    ...k,
    shift: k.shift || (m & 1) !== 0,
    meta: k.meta || meta || (m & 2) !== 0 || (m & 8) !== 0,
    ctrl: k.ctrl || (m & 4) !== 0,
  };
}

/** A complete CSI sequence (`body` is what comes between ESC [ and the final byte). */
function csi(body: string, final: string, meta: boolean): InputEvent {
  if (body === "" && final === "I") return { kind: "focus", focused: true };
  if (body === "" && final === "O") return { kind: "focus", focused: false };
  if (body === "" && final === "Z") return key("tab", { shift: true, meta });
  const params = body.replace(/^\[/, "").split(";");
  const numbers = params.map((p) => Number.parseInt(p.split(":")[0] ?? "", 10));
  if (final === "~") {
    const name = TILDE[numbers[0] ?? Number.NaN] ?? "unknown";
    return modified(key(name), numbers[1], meta);
  }
  if (final === "u") {
    // kitty's keyboard protocol: CSI code ; modifiers u
    const code = numbers[0] ?? Number.NaN;
    if (Number.isNaN(code)) return key("unknown");
    const base =
      code < 0x20 || code === 0x7f
        ? control(code, false)
        : code === 0x20
          ? char(" ")
          : char(String.fromCodePoint(code));
    return modified(base, numbers[1], meta);
  }
  if (body.startsWith("[")) {
    // the Linux console: ESC [ [ A..E are F1..F5
    const f = "ABCDE".indexOf(final);
    return f >= 0 ? key(`f${f + 1}`, { meta }) : key("unknown");
  }
  const name = LETTER[final];
  if (!name) return key("unknown");
  return modified(key(name), numbers[1], meta);
}

type Step = { events: InputEvent[]; next: number } | "pending";

const isFinal = (c: number) => c >= 0x40 && c <= 0x7e;
const isParam = (c: number) => c >= 0x20 && c <= 0x3f;

/**
 * Splits a stream of terminal input into events. `push` takes each read (bytes or text) and
 * returns the events it completed; what cannot be decided yet (an ESC that may begin a sequence,
 * a sequence or a paste cut by the read) waits for the next read, or for `flush()`, which the
 * caller calls when nothing has arrived for a moment (an Escape key press is a lone ESC).
 */
export class KeystrokeParser {
  private buffer = "";
  private readonly decoder = new StringDecoder("utf8");
  /** The read ended on CR: a LF starting the next one completes the same Enter. */
  private afterCr = false;
  /** Text of a paste whose end marker has not come yet. */
  private paste: string | null = null;

  /** True while input waits for more (call `flush` after a pause). */
  get pending(): boolean {
    return this.buffer !== "" || this.paste !== null;
  }

  /** True while a paste is open (its end marker not seen). */
  get inPaste(): boolean {
    return this.paste !== null;
  }

  push(chunk: string | Uint8Array): InputEvent[] {
    this.buffer += typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    return this.drain(false);
  }

  /** Decides whatever is waiting: a lone ESC is Escape, an unfinished paste ends here. */
  flush(): InputEvent[] {
    return this.drain(true);
  }

  private drain(final: boolean): InputEvent[] {
    const out: InputEvent[] = [];
    let i = 0;
    const s = this.buffer;
    while (i < s.length) {
      if (this.paste !== null) {
        i = this.inPasteAt(s, i, out, final);
        if (this.paste !== null) break;
        continue;
      }
      const step = this.at(s, i, final);
      if (step === "pending") break;
      out.push(...step.events);
      i = step.next;
    }
    this.buffer = s.slice(i);
    if (final && this.paste !== null) {
      // A paste whose end never came (a typed start marker, a lost end): it ends here.
      const text = this.paste;
      this.paste = null;
      if (text !== "") out.push({ kind: "paste", text: normalise(text) });
    }
    return out;
  }

  /** Collects pasted text from `i`; returns where to go on (the end marker's end, or s.length). */
  private inPasteAt(s: string, i: number, out: InputEvent[], final: boolean): number {
    const end = s.indexOf(PASTE_END, i);
    // Ctrl+C inside a paste still reaches the UI: a typed "[200~" cannot swallow the keyboard.
    const etx = s.indexOf("\u0003", i);
    if (etx !== -1 && (end === -1 || etx < end)) {
      const text = this.paste + s.slice(i, etx);
      this.paste = null;
      if (text !== "") out.push({ kind: "paste", text: normalise(text) });
      out.push(control(3, false));
      return etx + 1;
    }
    if (end !== -1) {
      const text = this.paste + s.slice(i, end);
      this.paste = null;
      if (text !== "") out.push({ kind: "paste", text: normalise(text) });
      return end + PASTE_END.length;
    }
    // Keep back what may be the start of a split end marker.
    let keep = 0;
    if (!final) {
      for (let k = Math.min(PASTE_END.length - 1, s.length - i); k > 0; k--) {
        if (PASTE_END.startsWith(s.slice(s.length - k))) {
          keep = k;
          break;
        }
      }
    }
    this.paste += s.slice(i, s.length - keep);
    return s.length - keep;
  }

  /** The event(s) starting at `i`. */
  private at(s: string, i: number, final: boolean): Step {
    const code = s.codePointAt(i)!;
    if (this.afterCr) {
      this.afterCr = false;
      if (code === 0x0a) return { events: [], next: i + 1 };
    }
    if (code === 0x1b) return this.escape(s, i, final);
    if (code === 0x0d) this.afterCr = true;
    if (code < 0x20 || code === 0x7f) return { events: [control(code, false)], next: i + 1 };
    // A character split between two reads of text (the decoder never splits one; a caller might).
    if (code >= 0xd800 && code <= 0xdbff && i + 1 >= s.length && !final) return "pending";
    const c = String.fromCodePoint(code);
    // C1 controls are not text.
    if (code >= 0x80 && code <= 0x9f) return { events: [key("unknown")], next: i + c.length };
    return { events: [char(c)], next: i + c.length };
  }

  private escape(s: string, i: number, final: boolean): Step {
    if (s.startsWith(PASTE_START, i)) {
      this.paste = "";
      return { events: [], next: i + PASTE_START.length };
    }
    if (i + 1 >= s.length) return final ? { events: [key("escape")], next: i + 1 } : "pending";
    const after = s[i + 1]!;
    // ESC ESC: Alt with an escape sequence (or Alt+Escape).
    if (after === ESC) {
      if (i + 2 >= s.length && !final) return "pending";
      const inner = s[i + 2];
      if (inner === "[" || inner === "O") {
        const seq = this.sequence(s, i + 1, true, final);
        if (seq !== null) return seq;
      }
      return { events: [key("escape", { meta: true })], next: i + 2 };
    }
    if (after === "[" || after === "O") {
      const seq = this.sequence(s, i, false, final);
      if (seq !== null) return seq;
    }
    // ESC before a key: Alt (Meta) with it.
    const code = s.codePointAt(i + 1)!;
    const c = String.fromCodePoint(code);
    if (code < 0x20 || code === 0x7f) return { events: [control(code, true)], next: i + 2 };
    return { events: [char(c, { meta: true })], next: i + 1 + c.length };
  }

  /** A CSI or SS3 sequence at `i` (an ESC); null when it is not one (ESC [ then a non-sequence). */
  private sequence(s: string, i: number, meta: boolean, final: boolean): Step | null {
    const type = s[i + 1];
    if (type === "O") {
      if (i + 2 >= s.length) return final ? null : "pending";
      const letter = s[i + 2]!;
      const name = LETTER[letter];
      if (!name) return null;
      return { events: [key(name, { meta })], next: i + 3 };
    }
    let j = i + 2;
    // The Linux console's ESC [ [ A..E.
    if (s[j] === "[") j++;
    for (; j < s.length; j++) {
      const c = s.charCodeAt(j);
      if (isFinal(c)) return { events: [csi(s.slice(i + 2, j), s[j]!, meta)], next: j + 1 };
      if (!isParam(c)) return null;
    }
    return final ? null : "pending";
  }
}

const normalise = (text: string) => text.replace(/\r\n?/g, "\n");
