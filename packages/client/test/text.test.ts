import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodePayload, encodePayload, fromHex, toHex } from "@parley/protocol";
import { describe, expect, it } from "vitest";
import { decodeIntro, encodeIntro, isControlText } from "../src/intro.js";
import { transparencyUrl } from "../src/relay-connection.js";
import {
  cleanName,
  displayText,
  humanDuration,
  nameProblem,
  nameSkeleton,
  parseDuration,
  printable,
} from "../src/text.js";

describe("durations", () => {
  it("parses and prints s, m, h, d", () => {
    expect(parseDuration("30s")).toBe(30);
    expect(parseDuration("15m")).toBe(900);
    expect(parseDuration("12h")).toBe(43200);
    expect(parseDuration("7d")).toBe(604800);
    expect(parseDuration("45")).toBe(45);
    for (const bad of ["", "0", "0d", "1w", "-1d", "1.5h", "d"]) expect(parseDuration(bad)).toBeNull();
    expect(humanDuration(604800)).toBe("7d");
    expect(humanDuration(90)).toBe("90s");
  });
});

describe("what reaches a terminal", () => {
  it("neutralizes escapes and bidi overrides but keeps lines", () => {
    expect(displayText("a\u001b[2Jb\nc\td\u202ee")).toBe("a\ufffd[2Jb\nc\td\ufffde");
    expect(printable("x\ny\u0007")).toBe("x\ufffdy\ufffd");
  });

  it("cleans names and explains refused ones", () => {
    expect(cleanName("  Bob \u001b[31m  the\tbuilder ")).toBe("Bob [31m the builder");
    expect(cleanName("x".repeat(100))).toHaveLength(64);
    expect(nameProblem("alice")).toBeNull();
    expect(nameProblem("")).toMatch(/empty/);
    expect(nameProblem(" alice")).toMatch(/spaces/);
    expect(nameProblem("a\u0000b")).toMatch(/control/);
    expect(nameProblem("y".repeat(65))).toMatch(/64/);
    expect(nameProblem("B\u200bob")).toMatch(/invisible/);
  });

  it("strips invisible and bidi characters and compatibility forms from names", () => {
    expect(cleanName("\uff22\u200bo\u202eb\u2060\u2066")).toBe("Bob");
    expect(cleanName("Zo\u00eb \ufe0f\u00ad")).toBe("Zo\u00eb");
    expect(cleanName("\u200b\u200c\u200d")).toBe("");
  });

  it("gives look-alike names one skeleton", () => {
    const bob = nameSkeleton("Bob");
    for (const same of ["bob", "BOB", "\u0412\u043eb", "\u0392ob", "B\u00f3b", "\uff22ob", "B\u200bob"]) {
      expect(nameSkeleton(same)).toBe(bob);
    }
    expect(nameSkeleton("Iris")).toBe(nameSkeleton("lris"));
    expect(nameSkeleton("Mike")).toBe(nameSkeleton("rnike"));
    expect(nameSkeleton("Rob")).not.toBe(bob);
  });
});

describe("intro control texts", () => {
  it("round-trips a name and refuses anything else", () => {
    const t = encodeIntro({ name: "Alice" });
    expect(isControlText(t)).toBe(true);
    expect(decodeIntro(t)).toEqual({ name: "Alice" });
    expect(decodeIntro("hello")).toBeNull();
    expect(decodeIntro("\u0000parley:intro:{bad")).toBeNull();
    expect(decodeIntro('\u0000parley:intro:{"v":2,"name":"x"}')).toBeNull();
    expect(decodeIntro('\u0000parley:intro:{"v":1,"name":5}')).toBeNull();
    expect(isControlText("hello")).toBe(false);
  });
});

describe("intro known answers (PROTOCOL.md §7.4, test/intro-vectors.json)", () => {
  const vectors = JSON.parse(readFileSync(join(import.meta.dirname, "intro-vectors.json"), "utf8")) as {
    messageIdHex: string;
    sentAt: number;
    encode: {
      name: string;
      inboxHex?: string;
      tokenHex?: string;
      text: string;
      textHex: string;
      payloadHex: string;
    }[];
    decode: { text: string; name: string | null; inboxHex?: string; tokenHex?: string; why: string }[];
  };
  /** The intro a vector names: its name, and its inbox and token when it has them. */
  const introOf = (v: { name: string; inboxHex?: string; tokenHex?: string }) => ({
    name: v.name,
    ...(v.inboxHex ? { inbox: fromHex(v.inboxHex) } : {}),
    ...(v.tokenHex ? { token: fromHex(v.tokenHex) } : {}),
  });

  it("§7.4 intro: encodes each name to exactly the vector's text, UTF-8 bytes and padded payload", () => {
    expect(vectors.encode.length).toBeGreaterThan(0);
    for (const v of vectors.encode) {
      const intro = introOf(v);
      const text = encodeIntro(intro);
      expect(text).toBe(v.text);
      expect(toHex(new TextEncoder().encode(text))).toBe(v.textHex);
      const payload = {
        type: "text",
        id: fromHex(vectors.messageIdHex),
        sentAt: vectors.sentAt,
        text,
      } as const;
      expect(toHex(encodePayload(payload))).toBe(v.payloadHex);
      const decoded = decodePayload(fromHex(v.payloadHex));
      if (decoded.type !== "text") throw new Error("the vector's payload is not a text");
      expect(decodeIntro(decoded.text)).toEqual(intro);
    }
  });

  it("§7.4 intro: reads a name from exactly the vector's accepted texts and from none of the others", () => {
    for (const v of vectors.decode) {
      expect(decodeIntro(v.text), v.why).toEqual(v.name === null ? null : introOf({ ...v, name: v.name }));
    }
  });
});

describe("transparency URL", () => {
  it("maps ws to http and wss to https, keeping host, port and path", () => {
    expect(transparencyUrl("ws://127.0.0.1:7700")).toBe("http://127.0.0.1:7700/transparency");
    expect(transparencyUrl("wss://relay.example.org/parley/")).toBe(
      "https://relay.example.org/parley/transparency",
    );
    expect(transparencyUrl("wss://relay.example.org:8443/x?y=1")).toBe(
      "https://relay.example.org:8443/x/transparency",
    );
  });
});
