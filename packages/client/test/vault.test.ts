import { describe, expect, it } from "vitest";
import { ClientError } from "../src/errors.js";
import { newKdfParams, parseKdfParams, STORE_LABELS, Vault } from "../src/vault.js";

const params = newKdfParams(10);

describe("Vault", () => {
  it("opens what it sealed, bound to table and row", () => {
    const v = Vault.derive("correct horse", params);
    const sealed = v.seal("contacts", "row1", { name: "Bob" });
    expect(v.open("contacts", "row1", sealed)).toEqual({ name: "Bob" });
    expect(() => v.open("contacts", "row2", sealed)).toThrow(ClientError);
    expect(() => v.open("messages", "row1", sealed)).toThrow(/does not decrypt/);
  });

  it("refuses a record with any byte flipped", () => {
    const v = Vault.derive("correct horse", params);
    const sealed = v.seal("t", "k", "secret text");
    for (const i of [0, 23, 24, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[i]! ^= 1;
      expect(() => v.open("t", "k", bad)).toThrow(ClientError);
    }
  });

  it("never writes the plaintext and uses a fresh nonce each time", () => {
    const v = Vault.derive("pw", params);
    const a = v.seal("t", "k", "the-plaintext");
    const b = v.seal("t", "k", "the-plaintext");
    expect(a.includes(Buffer.from("the-plaintext"))).toBe(false);
    expect(a.subarray(0, 24).equals(b.subarray(0, 24))).toBe(false);
  });

  it("tells a wrong passphrase by the verifier", () => {
    const right = Vault.derive("pw one", params);
    const verifier = right.makeVerifier();
    expect(right.checkVerifier(verifier)).toBe(true);
    expect(Vault.derive("pw two", params).checkVerifier(verifier)).toBe(false);
    expect(Vault.derive("pw one", newKdfParams(10)).checkVerifier(verifier)).toBe(false);
    expect(right.checkVerifier(verifier.subarray(0, 30))).toBe(false);
  });

  it("normalizes the passphrase to NFC", () => {
    const composed = Vault.derive("caf\u00e9", params);
    const decomposed = Vault.derive("cafe\u0301", params);
    expect(decomposed.checkVerifier(composed.makeVerifier())).toBe(true);
  });

  it("keys lookups by purpose: tags are stable, keyed and separate from records", () => {
    const v = Vault.derive("pw", params);
    expect(v.tag("message", "c", "id").equals(v.tag("message", "c", "id"))).toBe(true);
    expect(v.tag("message", "c", "id").equals(v.tag("message", "c", "id2"))).toBe(false);
    expect(v.tag("a", "b").equals(Vault.derive("other", params).tag("a", "b"))).toBe(false);
    expect(new Set(Object.values(STORE_LABELS)).size).toBe(3);
    for (const label of Object.values(STORE_LABELS)) expect(label).toMatch(/^parley\/v1\/client\//);
  });

  it("accepts only the parameters it knows", () => {
    expect(parseKdfParams(JSON.stringify(params))).toEqual(params);
    for (const bad of [
      "not json",
      JSON.stringify({ ...params, alg: "pbkdf2" }),
      JSON.stringify({ ...params, logN: 30 }),
      JSON.stringify({ ...params, r: 1 }),
      JSON.stringify({ ...params, salt: "zz" }),
    ]) {
      expect(() => parseKdfParams(bad)).toThrow(ClientError);
    }
    expect(() => newKdfParams(9)).toThrow(RangeError);
  });
});
