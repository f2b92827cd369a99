// The status bar says in words what the relays are doing, and the help fits an 80x24 terminal,
// scrolling to show every key and command.
import { Box } from "ink";
import { render } from "ink-testing-library";
import { afterEach, describe, expect, it } from "vitest";
import { BINDINGS, COMMANDS } from "../src/ui/keys.js";
import { helpLayout, Overlay, overlayScroll } from "../src/ui/overlay.js";
import { relaySummary, statusText } from "../src/ui/status-bar.js";
import { textWidth } from "../src/ui/width.js";

const unmounts: (() => void)[] = [];
afterEach(() => {
  for (const u of unmounts.splice(0)) u();
});

const relay = (over: Partial<Parameters<typeof relaySummary>[0][number]> = {}) => ({
  url: "ws://127.0.0.1:7700",
  connected: true,
  retentionSeconds: 7 * 86400,
  ...over,
});

describe("the status bar", () => {
  it("says in words whether the relays are connected, and when the next try is", () => {
    const now = 1_000_000;
    expect(relaySummary([relay()], now)).toBe("● 1 relay connected");
    expect(relaySummary([relay(), relay({ url: "wss://b" })], now)).toBe("● 2 relays connected");
    expect(
      relaySummary([relay({ connected: false, state: "offline", nextRetryAt: now + 11_200 })], now),
    ).toBe("○ offline: retrying in 12 s");
    expect(relaySummary([relay({ connected: false, state: "connecting" })], now)).toBe("○ connecting…");
    expect(
      relaySummary(
        [relay(), relay({ url: "wss://b", connected: false, state: "offline", nextRetryAt: now })],
        now,
      ),
    ).toBe("○ 1 of 2 relays offline: retrying now");
    expect(relaySummary([], now)).toBe("no relay set: /relay URL");
    expect(statusText({ outbox: 0, relays: [relay()], localOnly: true, now })).toBe(
      " local-only | ● 1 relay connected | 127.0.0.1:7700 keeps 7d | outbox empty | ? help",
    );
    expect(statusText({ outbox: 3, relays: [relay()], localOnly: false, now })).toContain(
      "3 waiting to send",
    );
  });
});

describe("the help overlay", () => {
  it("fits 80x24, and scrolling shows every key and command", () => {
    // The chat gives an overlay the rows between the banner-less top and the input and status lines.
    const [width, height] = [80, 20];
    let state = { kind: "help" as const, scroll: 0 };
    const seen = new Set<string>();
    const { maxScroll } = helpLayout(width, height - 2);
    expect(maxScroll).toBeGreaterThan(0);
    for (let i = 0; i <= maxScroll + 1; i++) {
      const ui = render(
        <Box width={width} height={height}>
          <Overlay state={state} width={width} height={height} />
        </Box>,
      );
      unmounts.push(() => ui.unmount());
      const frame = ui.lastFrame() ?? "";
      const lines = frame.split("\n");
      expect(lines.length).toBeLessThanOrEqual(height);
      for (const line of lines) expect(textWidth(line)).toBeLessThanOrEqual(width);
      for (const b of BINDINGS) if (frame.includes(b.keys)) seen.add(b.keys);
      for (const [c] of COMMANDS) if (frame.includes(c)) seen.add(c);
      state = overlayScroll(state, "historyForward") as typeof state;
    }
    expect([...seen].sort()).toEqual([...BINDINGS.map((b) => b.keys), ...COMMANDS.map(([c]) => c)].sort());
  });
});
