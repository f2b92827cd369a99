// Undecryptable deliveries reported together (core/dropped.ts).
import { afterEach, describe, expect, it } from "vitest";
import { DroppedReport, droppedWarning } from "../../src/core/dropped.js";
import { cleanupStores, harness } from "./helpers.js";

afterEach(cleanupStores);

describe("droppedWarning", () => {
  it("counts, with the reason, or each reason's count when there are several", () => {
    expect(droppedWarning("Bob", new Map([["AUTH", 1]]))).toBe(
      "dropped 1 undecryptable message for Bob (AUTH)",
    );
    expect(
      droppedWarning(
        "Bob",
        new Map([
          ["AUTH", 3],
          ["BAD_ENVELOPE", 2],
        ]),
      ),
    ).toBe("dropped 5 undecryptable messages for Bob (AUTH 3, BAD_ENVELOPE 2)");
  });
});

describe("DroppedReport", () => {
  it("outside live mode reports at once, one warning per contact, then starts counting afresh", () => {
    const { ctx, warnings } = harness();
    const report = new DroppedReport(ctx);
    report.report(false);
    expect(warnings).toEqual([]);
    report.count("Bob", "AUTH");
    report.count("Bob", "AUTH");
    report.count("one of your invitations", "AUTH");
    report.report(false);
    expect(warnings).toEqual([
      "dropped 2 undecryptable messages for Bob (AUTH)",
      "dropped 1 undecryptable message for one of your invitations (AUTH)",
    ]);
    report.count("Bob", "AUTH");
    report.report(false);
    expect(warnings.at(-1)).toBe("dropped 1 undecryptable message for Bob (AUTH)");
  });

  it("in live mode holds a second report until a second after the first, with both counts", async () => {
    const { ctx, warnings } = harness();
    const report = new DroppedReport(ctx);
    report.count("Bob", "AUTH");
    report.report(true);
    expect(warnings).toHaveLength(1);
    report.count("Bob", "AUTH");
    report.report(true);
    report.count("Bob", "AUTH");
    report.report(true);
    expect(warnings).toHaveLength(1);
    await new Promise<void>((resolve) => ctx.emitter.once("warning", () => resolve()));
    expect(warnings).toEqual([
      "dropped 1 undecryptable message for Bob (AUTH)",
      "dropped 2 undecryptable messages for Bob (AUTH)",
    ]);
  });
});
