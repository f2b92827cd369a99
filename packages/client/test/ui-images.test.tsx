// Picture previews in the chat screen (ink-testing-library), against real clients and the real
// relay process: a PNG sent by Alice, saved by Bob with /save, is shown by /view in a terminal
// that claims kitty (the PNG goes out in kitty's chunks, the screen holds its placeholder cells,
// Esc deletes it), and in a plain terminal /view only says why not, with the file line as it was.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startRelay } from "../../relay/test/helpers.js";
import { Chat } from "../src/ui/chat.js";
import { chooseGraphics } from "../src/ui/graphics-detect.js";
import { PLACEHOLDER } from "../src/ui/graphics-escapes.js";
import { jpegHeader, makePng } from "./pictures.js";
import { renderUi, scratch, until } from "./ui-helpers.js";

const made = scratch();
afterEach(made.cleanup);
afterAll(made.removeDirs);

const ESC = "\u001b";
const ST = `${ESC}\\`;

/** kitty's graphics commands among everything written to the terminal, in order. */
const kittyCommands = (frames: readonly string[]) => frames.filter((f) => f.startsWith(`${ESC}_G`));

describe("pictures in the chat screen", () => {
  it("/view shows a saved PNG through kitty's protocol, and only says why not elsewhere", {
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
    await bob.start();

    // Random pixels do not compress: about 7 KiB, so kitty gets it in three chunks.
    const folder = made.dir();
    const png = makePng(48, 48);
    writeFileSync(join(folder, "sunset.png"), png);
    writeFileSync(join(folder, "photo.jpg"), jpegHeader(800, 600));
    await alice.sendFile("Bob", join(folder, "photo.jpg"));
    await alice.sendFile("Bob", join(folder, "sunset.png"));

    const kitty = { choice: chooseGraphics({ TERM: "xterm-kitty" }) };
    const ui = renderUi(<Chat client={bob} localOnly={false} onQuit={() => {}} images={kitty} />);
    made.cleanups.push(() => ui.unmount());
    await until(ui.lastFrame, (f) => f.includes("sunset.png") && f.includes("/save fetches it"), "the offer");

    // Nothing saved yet: nothing to view.
    await ui.line("/view");
    expect(ui.lastFrame()).toContain("no saved file here to view: /save fetches one first");

    await ui.line("/save sunset");
    await until(ui.lastFrame, (f) => /sunset\.png · [\d.]+ KiB · saved/.test(f), "the PNG saved");
    expect(readFileSync(join(downloads, "sunset.png")).equals(png)).toBe(true);

    await ui.line("/view");
    const viewer = await until(ui.lastFrame, (f) => f.includes(PLACEHOLDER), "the picture's cells");
    expect(viewer).toContain("sunset.png · ");
    expect(viewer).toContain("48x48 PNG");
    expect(viewer).toContain(`Esc closes · saved at ${join(downloads, "sunset.png")}`);

    // The PNG went out whole in kitty's chunks, then a virtual placement of the box drawn.
    const commands = kittyCommands(ui.frames);
    const first = commands[0]!;
    const id = Number(/^_Ga=t,f=100,t=d,i=(\d+),q=2,m=1;/.exec(first.slice(ESC.length))?.[1]);
    expect(id).toBeGreaterThan(0);
    const last = commands.findIndex((c) => c.startsWith(`${ESC}_Gm=0;`));
    expect(last).toBe(2);
    const sent = commands.slice(0, last + 1).map((c) => c.slice(c.indexOf(";") + 1, -ST.length));
    for (const piece of sent) expect(piece.length).toBeLessThanOrEqual(4096);
    expect(Buffer.from(sent.join(""), "base64").equals(png)).toBe(true);
    // 48x48 pixels at 8x16 a cell: 6 columns by 3 rows.
    expect(commands[last + 1]).toBe(`${ESC}_Ga=p,U=1,i=${id},p=1,c=6,r=3,C=1,q=2${ST}`);
    // The cells carry the id's low byte as their colour, three rows of six.
    const rows = viewer.split("\n").filter((l) => l.includes(PLACEHOLDER));
    expect(rows.length).toBe(3);
    for (const row of rows) {
      expect(row).toContain(`${ESC}[38;5;${id & 0xff}m`);
      expect([...row].filter((ch) => ch === PLACEHOLDER).length).toBe(6);
    }

    // Esc closes it: the terminal is told to delete it, and the conversation is back.
    await ui.keys(ESC);
    await until(
      ui.lastFrame,
      (f) => !f.includes(PLACEHOLDER) && f.includes("sunset.png"),
      "the conversation",
    );
    await until(
      () => kittyCommands(ui.frames).at(-1),
      (c) => c === `${ESC}_Ga=d,d=I,i=${id},q=2${ST}`,
      "the delete command",
    );

    // A JPEG: kitty's protocol takes PNG only, so the file line stays and a notice says where it is.
    await ui.line("/save photo");
    await until(ui.lastFrame, (f) => /photo\.jpg · [\d.]+ B · saved/.test(f), "the JPEG saved");
    const before = ui.frames.length;
    await ui.line("/view photo");
    await until(ui.lastFrame, (f) => f.includes("kitty's graphics show PNG only"), "the refusal");
    expect(ui.lastFrame()).toContain(
      `photo.jpg is a JPEG: kitty's graphics show PNG only; it is at ${join(downloads, "photo.jpg")}`,
    );
    expect(kittyCommands(ui.frames.slice(before))).toEqual([]);
    ui.unmount();

    // A plain terminal: no graphics command at all, the file line, and why.
    const plain = { choice: chooseGraphics({ TERM: "xterm-256color" }) };
    const plainUi = renderUi(<Chat client={bob} localOnly={false} onQuit={() => {}} images={plain} />);
    made.cleanups.push(() => plainUi.unmount());
    await plainUi.line("/view sunset");
    const frame = await until(
      plainUi.lastFrame,
      (f) => f.includes("no pictures in this terminal"),
      "the notice",
    );
    expect(frame).toContain("TERM=xterm-256color is not kitty, Ghostty, iTerm2 or WezTerm");
    expect(frame).toMatch(/\[file\] sunset\.png · [\d.]+ KiB · saved/);
    expect(frame).not.toContain(PLACEHOLDER);
    expect(plainUi.frames.some((f) => f.includes(`${ESC}_G`) || f.includes(`${ESC}]1337;`))).toBe(false);
  });

  it("a saved picture changed on disk is not shown", { timeout: 120_000 }, async () => {
    const relay = await startRelay(["--storage", "memory"]);
    made.cleanups.push(() => relay.stop());
    const url = `ws://127.0.0.1:${relay.port}`;
    const alice = made.client(url, "Alice");
    const bob = made.client(url, "Bob");
    await bob.accept((await alice.invite()).code, { name: "Alice" });
    await alice.sync();
    const downloads = join(made.dir(), "in");
    mkdirSync(downloads);
    bob.settings.downloads = downloads;
    const folder = made.dir();
    writeFileSync(join(folder, "map.png"), makePng(8, 8));
    await alice.sendFile("Bob", join(folder, "map.png"));
    await bob.sync();
    const id = bob.files()[0]!.id;
    await bob.fetchFile(id, downloads);
    // Someone puts another picture in its place after it was checked.
    writeFileSync(join(downloads, "map.png"), makePng(8, 8));

    const kitty = { choice: chooseGraphics({ KITTY_WINDOW_ID: "1" }) };
    const ui = renderUi(<Chat client={bob} localOnly={false} onQuit={() => {}} images={kitty} />);
    made.cleanups.push(() => ui.unmount());
    await ui.line("/view");
    const frame = await until(ui.lastFrame, (f) => f.includes("changed since"), "the refusal");
    expect(frame).toContain(
      `map.png: ${join(downloads, "map.png")} changed since it was fetched and checked; not shown`,
    );
    expect(kittyCommands(ui.frames)).toEqual([]);
  });
});
