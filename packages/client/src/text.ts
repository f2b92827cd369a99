// Small text helpers: durations, display names, and neutralizing what a terminal would obey.

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `30s`, `15m`, `12h`, `7d` (or plain seconds) into seconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]) * UNITS[m[2] || "s"]!;
  return n > 0 && Number.isSafeInteger(n) ? n : null;
}

export function humanDuration(seconds: number): string {
  for (const [unit, size] of Object.entries(UNITS).reverse()) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

// C0/C1 controls, DEL, and the bidi marks, overrides and isolates that can disguise text. Built
// from a string so the pattern can name the control characters it exists to find.
const BIDI = "\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069";
const CONTROLS = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${BIDI}]`, "g");
const CONTROLS_BUT_NEWLINE = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${BIDI}]`, "g");

/** Text from an untrusted party (a relay's error message), on one line with controls replaced. */
export function printable(text: string): string {
  return text.replace(CONTROLS, "\ufffd");
}

/** Text from a contact, safe to print to a terminal: controls become U+FFFD, newlines and tabs stay. */
export function displayText(text: string): string {
  return text.replace(CONTROLS_BUT_NEWLINE, "\ufffd");
}

export const MAX_NAME_LENGTH = 64;

// Characters a terminal draws as nothing (zero-width spaces and joiners, word joiners, variation
// selectors, soft hyphens…) and the bidi controls: in a name they only disguise it.
const INVISIBLE = new RegExp(`[\\p{Default_Ignorable_Code_Point}${BIDI}]`, "gu");

/**
 * A display name: NFKC-normalized (fullwidth and other compatibility forms become plain letters),
 * invisible and bidi-control characters removed, other controls made spaces, single spaces,
 * trimmed, at most 64 characters; "" if nothing is left.
 */
export function cleanName(name: string): string {
  return [...name.normalize("NFKC").replace(INVISIBLE, "").replace(CONTROLS, " ").replace(/\s+/g, " ").trim()]
    .slice(0, MAX_NAME_LENGTH)
    .join("")
    .trim();
}

/** Why a name typed by the user is refused, or null. */
export function nameProblem(name: string): string | null {
  if (name.trim() === "") return "a name must not be empty";
  if ([...name].length > MAX_NAME_LENGTH) return `a name is at most ${MAX_NAME_LENGTH} characters`;
  if (cleanName(name) !== name)
    return "a name must not contain control or invisible characters, compatibility forms (such as fullwidth letters), or repeated, leading or trailing spaces";
  return null;
}

// Letters of other scripts that look like Latin ones (and Latin ones that look like each other),
// mapped to the Latin letter they pass for. Applied after NFKC and before case-folding.
const CONFUSABLES: Record<string, string> = {
  // Cyrillic
  А: "A",
  В: "B",
  Е: "E",
  К: "K",
  М: "M",
  Н: "H",
  О: "O",
  Р: "P",
  С: "C",
  Т: "T",
  Х: "X",
  У: "Y",
  І: "l",
  Ј: "J",
  Ѕ: "S",
  Ү: "Y",
  Ԛ: "Q",
  Ԝ: "W",
  Ӏ: "l",
  а: "a",
  е: "e",
  о: "o",
  р: "p",
  с: "c",
  у: "y",
  х: "x",
  і: "i",
  ј: "j",
  ѕ: "s",
  һ: "h",
  ԁ: "d",
  ԛ: "q",
  ԝ: "w",
  ӏ: "l",
  ь: "b",
  ү: "y",
  ɡ: "g",
  // Greek
  Α: "A",
  Β: "B",
  Ε: "E",
  Ζ: "Z",
  Η: "H",
  Ι: "l",
  Κ: "K",
  Μ: "M",
  Ν: "N",
  Ο: "O",
  Ρ: "P",
  Τ: "T",
  Υ: "Y",
  Χ: "X",
  α: "a",
  ο: "o",
  ι: "i",
  κ: "k",
  ν: "v",
  ρ: "p",
  υ: "u",
  χ: "x",
  γ: "y",
  // Latin and digits that pass for one another
  I: "l",
  "1": "l",
  "|": "l",
  "0": "o",
};

/**
 * What a name looks like, for telling whether two names could be mistaken for each other: NFKC,
 * invisible characters and accents removed, look-alike letters of other scripts mapped to Latin,
 * case-folded, "rn" read as "m" and "vv" as "w". Two names with the same skeleton look the same.
 */
export function nameSkeleton(name: string): string {
  const base = cleanName(name).normalize("NFD").replace(/\p{M}/gu, "");
  return [...base]
    .map((c) => CONFUSABLES[c] ?? c)
    .join("")
    .toLowerCase()
    .replace(/rn/g, "m")
    .replace(/vv/g, "w");
}
