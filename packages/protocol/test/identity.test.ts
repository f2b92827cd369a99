// PROTOCOL.md §3.2: the 64-byte public identity encoding.
import { describe, expect, it } from "vitest";
import { decodePublicIdentity, encodePublicIdentity, Identity, samePublicIdentity } from "../src/index.js";
import { failure, seeded } from "./spec-fixture.js";

describe("§3.2 public identity encoding", () => {
  const alice = Identity.generate(seeded("identity/alice"));
  const bytes = encodePublicIdentity(alice.publicIdentity);

  it("§3.2 is the signing key then the agreement key, 64 bytes, and decodes back", () => {
    expect(bytes).toEqual(
      new Uint8Array([...alice.publicIdentity.signingKey, ...alice.publicIdentity.agreementKey]),
    );
    expect(samePublicIdentity(decodePublicIdentity(bytes), alice.publicIdentity)).toBe(true);
  });

  it("§3.2 a public identity decoder rejects any length other than 64 (BAD_FRAME)", () => {
    for (const length of [0, 1, 32, 63, 65, 96, 128]) {
      const input = new Uint8Array(length).fill(9);
      input.set(bytes.subarray(0, Math.min(length, 64)));
      expect(
        failure(() => decodePublicIdentity(input)),
        `${length} bytes`,
      ).toBe("DecodeError BAD_FRAME");
    }
  });

  it("§3.2 decoding checks nothing but the length: any 64 bytes decode, low-order and invalid keys included", () => {
    for (const fill of [0x00, 0xff]) {
      const decoded = decodePublicIdentity(new Uint8Array(64).fill(fill));
      expect(decoded.signingKey).toEqual(new Uint8Array(32).fill(fill));
      expect(decoded.agreementKey).toEqual(new Uint8Array(32).fill(fill));
    }
  });
});
