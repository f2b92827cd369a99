// Files in the chat screen (ink-testing-library), against real clients and the real relay process:
// /file sends one (Tab completes its path), the other side sees it offered and /save fetches it
// into the downloads folder, byte for byte.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startRelay } from "../../relay/test/helpers.js";
import { Chat } from "../src/ui/chat.js";
import { progressBar } from "../src/ui/file-commands.js";
import { completePath } from "../src/ui/path-complete.js";
import { renderUi, scratch, until } from "./ui-helpers.js";

const made = scratch();
afterEach(made.cleanup);
afterAll(made.removeDirs);

describe("completePath", () => {
  it("completes as far as the matches agree, adds / after a folder, lists the matches, and skips hidden ones", () => {
    const d = made.dir();
    mkdirSync(join(d, "photos"));
    writeFileSync(join(d, "report-2026.pdf"), "");
    writeFileSync(join(d, "report-2025.pdf"), "");
    writeFileSync(join(d, ".secret"), "");
    expect(completePath("pho", d)).toEqual({ path: "photos/", options: [] });
    expect(completePath("rep", d)).toEqual({
      path: "report-202",
      options: ["report-2025.pdf", "report-2026.pdf"],
    });
    expect(completePath("report-2026", d)).toEqual({ path: "report-2026.pdf", options: [] });
    expect(completePath("", d).options).not.toContain(".secret");
    expect(completePath(".s", d)).toEqual({ path: ".secret", options: [] });
    expect(completePath("nothing", d)).toEqual({ path: "nothing", options: [] });
    expect(completePath("no/such/folder/x", d)).toEqual({ path: "no/such/folder/x", options: [] });
    expect(completePath("~/", d, d).options).toContain("photos/");
  });
});

describe("progressBar", () => {
  it("fills its cells in proportion, with the percentage and both sizes", () => {
    expect(progressBar({ label: "x", done: 3 * 1024 * 1024, total: 6 * 1024 * 1024 }, 10)).toBe(
      "█████░░░░░ 50% 3.0 MiB of 6.0 MiB",
    );
    expect(progressBar({ label: "x", done: 0, total: 0 }, 4)).toBe("████ 100% 0 B of 0 B");
  });
});

describe("files in the chat screen", () => {
  it("/file sends one with a progress bar, the other side sees it offered, and /save fetches it", {
    timeout: 120_000,
  }, async () => {
    const relay = await startRelay(["--storage", "memory"]);
    made.cleanups.push(() => relay.stop());
    const url = `ws://127.0.0.1:${relay.port}`;
    const alice = made.client(url, "Alice");
    const bob = made.client(url, "Bob");
    await bob.accept((await alice.invite()).code, { name: "Alice" });
    await alice.sync();
    const downloads = made.dir();
    bob.settings.downloads = downloads;
    await alice.start();
    await bob.start();

    const folder = made.dir();
    const bytes = randomBytes(300_000);
    writeFileSync(join(folder, "holiday-photo.jpg"), bytes);
    const aliceUi = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    made.cleanups.push(() => aliceUi.unmount());
    const bobUi = renderUi(<Chat client={bob} localOnly={false} onQuit={() => {}} />);
    made.cleanups.push(() => bobUi.unmount());

    // Nothing to send, or a path that is not there: said plainly.
    await aliceUi.line("/file");
    expect(aliceUi.lastFrame()).toContain("usage: /file PATH");
    await aliceUi.line(`/file ${join(folder, "missing.jpg")}`);
    await until(
      aliceUi.lastFrame,
      (f) => /missing\.jpg/.test(f) && /no such|cannot|not/.test(f),
      "the refusal",
    );

    // Tab completes the path; Enter sends it.
    await aliceUi.keys(`/file ${join(folder, "holi")}`);
    await aliceUi.keys("\t");
    await until(aliceUi.lastFrame, (f) => f.includes("holiday-photo.jpg"), "the completed path");
    await aliceUi.keys("\r");
    await until(aliceUi.lastFrame, (f) => f.includes("sent holiday-photo.jpg"), "the file sent");
    expect(aliceUi.lastFrame()).toMatch(/\[file\] holiday-photo\.jpg · 293\.0 KiB/);

    await until(bobUi.lastFrame, (f) => f.includes("/save fetches it"), "the offered file");
    await bobUi.line("/save");
    await until(bobUi.lastFrame, (f) => f.includes("saved "), "the saved file");
    expect(readFileSync(join(downloads, "holiday-photo.jpg")).equals(bytes)).toBe(true);
    await until(
      bobUi.lastFrame,
      (f) => /holiday-photo\.jpg · 293\.0 KiB · saved/.test(f),
      "the file marked saved",
    );
    await bobUi.line("/save");
    expect(bobUi.lastFrame()).toContain("no file waiting here");
  });

  it("/file sends to the group on screen, whose members see it in the group's conversation and /save it", {
    timeout: 120_000,
  }, async () => {
    const relay = await startRelay(["--storage", "memory"]);
    made.cleanups.push(() => relay.stop());
    const url = `ws://127.0.0.1:${relay.port}`;
    const alice = made.client(url, "Alice");
    const bob = made.client(url, "Bob");
    await bob.accept((await alice.invite()).code, { name: "Alice" });
    await alice.sync();
    await alice.createGroup("Team", ["Bob"]);
    await bob.sync();
    const downloads = made.dir();
    bob.settings.downloads = downloads;
    await alice.start();
    await bob.start();

    const folder = made.dir();
    const bytes = randomBytes(100_000);
    writeFileSync(join(folder, "plan.pdf"), bytes);
    const aliceUi = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    made.cleanups.push(() => aliceUi.unmount());
    await until(aliceUi.lastFrame, (f) => f.includes("# Team"), "the group on screen");
    await aliceUi.line(`/file ${join(folder, "plan.pdf")}`);
    await until(aliceUi.lastFrame, (f) => f.includes("sent plan.pdf"), "the file sent");
    await until(
      aliceUi.lastFrame,
      (f) => /\[file\] plan\.pdf · 97\.7 KiB/.test(f) && f.includes("delivered to all 1"),
      "the file line, delivered",
    );

    const bobUi = renderUi(<Chat client={bob} localOnly={false} onQuit={() => {}} />);
    made.cleanups.push(() => bobUi.unmount());
    await until(bobUi.lastFrame, (f) => f.includes("# Team") && f.includes("/save fetches it"), "the offer");
    await bobUi.line("/save");
    await until(bobUi.lastFrame, (f) => f.includes("saved "), "the saved file");
    expect(readFileSync(join(downloads, "plan.pdf")).equals(bytes)).toBe(true);
  });
});
