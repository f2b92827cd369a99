// The Double Ratchet model of ratchet-model.ts run on post-quantum sessions (PROTOCOL.md §6.7):
// random sends of texts that leave much, little or no padding room for KEM pieces, deliveries in any
// order, losses, duplicates, bit flips and restores from serialized state. Every message must still
// decrypt exactly once to what was sent, every refusal must leave the state unchanged, the two
// sides' KEM epochs must stay within one of each other, and at the end a KEM exchange must complete.
import fc from "fast-check";
import { describe, it } from "vitest";
import { pqOpArb, run } from "./ratchet-model.js";

describe("§6.7 post-quantum sessions against the model (random interleavings)", () => {
  // 300 random interleavings in three tests of 100, like the classical runs. About a third complete
  // one or more KEM exchanges within the run; every run completes one at its end.
  for (const part of [1, 2, 3]) {
    it(`§6.7 delivers every message exactly once in any order, with losses; refuses duplicates and forgeries unchanged; a KEM exchange completes at the end (runs ${part} of 3)`, () => {
      fc.assert(
        fc.property(fc.array(pqOpArb, { minLength: 1, maxLength: 60, size: "max" }), (ops) =>
          run(ops, { postQuantum: true }),
        ),
        { numRuns: 100 },
      );
    });
  }
});
