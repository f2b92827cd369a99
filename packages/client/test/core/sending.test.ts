// What may be sent as a text (core/sending.ts).
import { describe, expect, it } from "vitest";
import { textProblem } from "../../src/core/sending.js";

describe("textProblem", () => {
  it("refuses an empty text, a control text and one over 32737 bytes of UTF-8", () => {
    expect(textProblem("")).toMatch(/empty/);
    expect(textProblem("\u0000parley:intro:{}")).toMatch(/NUL/);
    expect(textProblem("x".repeat(32737))).toBeNull();
    expect(textProblem("x".repeat(32738))).toMatch(/at most 32737 bytes/);
    // Counted in bytes: 10,913 three-byte characters are 32,739 bytes.
    expect(textProblem("\u20ac".repeat(10913))).toMatch(/at most 32737 bytes/);
    expect(textProblem("hello")).toBeNull();
  });
});
