// PROTOCOL.md §1.3: strict base32, so that every accepted string is the unique encoding of its bytes.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BASE32_ALPHABET, base32Decode, base32Encode } from "../src/base32.js";

/** An independent RFC 4648 §6 encoder (no padding), written from the RFC. */
function rfc4648(bytes: Uint8Array): string {
  const bits = [...bytes].map((b) => b.toString(2).padStart(8, "0")).join("");
  const padded = bits.padEnd(Math.ceil(bits.length / 5) * 5, "0");
  return (padded.match(/.{5}/g) ?? []).map((g) => BASE32_ALPHABET[Number.parseInt(g, 2)]).join("");
}

describe("§1.3 base32", () => {
  it("§1.3 encodes as RFC 4648 §6, upper case, unpadded: ⌈8n/5⌉ characters, the unused low bits zero", () => {
    // RFC 4648 §10 test vectors, without their '=' padding.
    const rfc: [string, string][] = [
      ["", ""],
      ["f", "MY"],
      ["fo", "MZXQ"],
      ["foo", "MZXW6"],
      ["foob", "MZXW6YQ"],
      ["fooba", "MZXW6YTB"],
      ["foobar", "MZXW6YTBOI"],
    ];
    for (const [plain, encoded] of rfc) expect(base32Encode(new TextEncoder().encode(plain))).toBe(encoded);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const s = base32Encode(bytes);
        expect(s).toBe(rfc4648(bytes));
        expect(s.length).toBe(Math.ceil((8 * bytes.length) / 5));
        expect(base32Decode(s)).toEqual(bytes);
      }),
    );
  });

  it("§1.3 base32 decoding rejects any character outside the upper-case alphabet (lower case and '=' included)", () => {
    const valid = base32Encode(new Uint8Array([1, 2, 3, 4, 5])); // 8 characters
    for (const bad of ["a", "z", "=", "0", "1", "8", "9", " ", "-", "\u00c0", "\u0391", "\u200b", "\ufeff"]) {
      for (const at of [0, 3, 7]) {
        const s = valid.slice(0, at) + bad + valid.slice(at + 1);
        expect(base32Decode(s), `${JSON.stringify(bad)} at ${at}`).toEqual({ kind: "character", index: at });
      }
    }
    // Padding is not tolerated even where RFC 4648 would put it.
    expect(base32Decode("MY======")).toEqual({ kind: "character", index: 2 });
  });

  it("§1.3 base32 decoding rejects a length ≡ 1, 3 or 6 (mod 8): no byte string encodes to one", () => {
    const lengths = new Set(
      Array.from({ length: 200 }, (_, n) => base32Encode(new Uint8Array(n)).length % 8),
    );
    expect([...lengths].sort()).toEqual([0, 2, 4, 5, 7]);
    for (let length = 1; length <= 41; length++) {
      const s = "A".repeat(length); // all-zero bits, so only the length can be wrong
      const result = base32Decode(s);
      if ([1, 3, 6].includes(length % 8))
        expect(result, `length ${length}`).toEqual({ kind: "trailing-bits" });
      else expect(result, `length ${length}`).toEqual(new Uint8Array(Math.floor((5 * length) / 8)));
    }
  });

  it("§1.3 base32 decoding rejects non-zero unused bits in the final character", () => {
    // Unused bits in the last character for each valid length mod 8: 2 → 2, 4 → 4, 5 → 1, 7 → 3.
    for (const [n, unused] of [
      [1, 2],
      [2, 4],
      [3, 1],
      [4, 3],
    ] as const) {
      const s = base32Encode(new Uint8Array(n).fill(0xa5));
      const last = BASE32_ALPHABET.indexOf(s.at(-1)!);
      for (let bit = 0; bit < unused; bit++) {
        const forged = s.slice(0, -1) + BASE32_ALPHABET[last | (1 << bit)];
        expect(base32Decode(forged), `${n} bytes, bit ${bit}`).toEqual({ kind: "trailing-bits" });
      }
    }
  });

  it("§1.3 every string the decoder accepts is the unique encoding of its bytes", () => {
    const alphabetString = fc
      .array(fc.constantFrom(...BASE32_ALPHABET), { maxLength: 60 })
      .map((chars) => chars.join(""));
    fc.assert(
      fc.property(alphabetString, (s) => {
        const decoded = base32Decode(s);
        if (decoded instanceof Uint8Array) expect(base32Encode(decoded)).toBe(s);
        else expect(decoded).toEqual({ kind: "trailing-bits" });
      }),
      { numRuns: 2000 },
    );
  });
});
