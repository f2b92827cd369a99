import { describe, expect, it } from "vitest";
import { fingerprint, Identity, safetyNumber, verifySafetyNumber } from "../src/index.js";

const alice = Identity.generate().publicIdentity;
const bob = Identity.generate().publicIdentity;

describe("safety numbers", () => {
  it("are the same for both parties: 60 digits in 12 groups of 5", () => {
    const ab = safetyNumber(alice, bob);
    const ba = safetyNumber(bob, alice);
    expect(ab).toEqual(ba);
    expect(ab.digits).toMatch(/^\d{60}$/);
    expect(ab.display).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(ab.compact).toMatch(/^PARLEYSN1-[A-Z2-7]+$/);
  });

  it("change when either key of either party changes", () => {
    const base = safetyNumber(alice, bob).digits;
    const mallory = Identity.generate().publicIdentity;
    expect(safetyNumber(alice, mallory).digits).not.toBe(base);
    expect(safetyNumber(alice, { ...bob, agreementKey: mallory.agreementKey }).digits).not.toBe(base);
    expect(safetyNumber({ ...alice, signingKey: mallory.signingKey }, bob).digits).not.toBe(base);
  });

  it("verify a scanned compact form or typed digits, and refuse anything else", () => {
    const sn = safetyNumber(alice, bob);
    expect(verifySafetyNumber(sn, sn.compact)).toBe(true);
    expect(verifySafetyNumber(sn, sn.compact.toLowerCase())).toBe(true);
    expect(verifySafetyNumber(sn, sn.display)).toBe(true);
    expect(verifySafetyNumber(sn, safetyNumber(alice, Identity.generate().publicIdentity).compact)).toBe(
      false,
    );
    const oneDigitOff = sn.digits.slice(0, 59) + ((Number(sn.digits[59]) + 1) % 10);
    expect(verifySafetyNumber(sn, oneDigitOff)).toBe(false);
    for (const junk of ["", "PARLEYSN1-", "PARLEYSN1-0189", "12345", "x".repeat(60)]) {
      expect(verifySafetyNumber(sn, junk)).toBe(false);
    }
  });

  it("fingerprints are 8 groups of 4 hex digits and differ between identities", () => {
    expect(fingerprint(alice)).toMatch(/^([0-9a-f]{4} ){7}[0-9a-f]{4}$/);
    expect(fingerprint(alice)).not.toBe(fingerprint(bob));
  });
});
