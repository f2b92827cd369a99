// `parley` with no command: the terminal UI, until /quit or Ctrl+C.
import { render } from "ink";
import type { Client } from "../client.js";
import { ClientError } from "../errors.js";
import type { Paths } from "../paths.js";
import type { Settings } from "../settings.js";
import { App } from "./app.js";
import { ErrorBoundary } from "./error-boundary.js";
import { chooseGraphics } from "./graphics-detect.js";
import { type ImageSupport, reportFrames } from "./graphics-output.js";
import { Notifier } from "./notify.js";
import { KeyRouter, terminalModes } from "./use-keys.js";

export async function runUi(paths: Paths, settings: Settings): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    process.stderr.write("parley: the terminal UI needs a terminal; for scripts see `parley --help`\n");
    return 2;
  }
  let notifier: Notifier;
  let images: ImageSupport;
  try {
    notifier = new Notifier({ write: (s) => process.stdout.write(s), settings });
    images = { choice: chooseGraphics(process.env, settings.imagePreview) };
  } catch (e) {
    // A bad PARLEY_NOTIFY, PARLEY_IMAGE_PREVIEW or setting: said before the screen takes over.
    if (e instanceof ClientError) {
      process.stderr.write(`parley: ${e.message}\n`);
      return e.exitStatus;
    }
    throw e;
  }
  // iTerm2's pictures are drawn again after each of Ink's frames, so Ink writes through a reporter.
  let stdout: NodeJS.WriteStream = process.stdout;
  if (images.choice.protocol === "iterm2") {
    const reported = reportFrames(process.stdout);
    stdout = reported.stream;
    images = { ...images, frames: reported.frames };
  }
  let client: Client | null = null;
  const logN = process.env.PARLEY_SCRYPT_LOG_N ? Number(process.env.PARLEY_SCRYPT_LOG_N) : undefined;
  const app = render(
    <ErrorBoundary>
      <KeyRouter>
        <App
          paths={paths}
          settings={settings}
          logN={logN}
          notifier={notifier}
          images={images}
          onClient={(c) => {
            client = c;
          }}
        />
      </KeyRouter>
    </ErrorBoundary>,
    { exitOnCtrlC: false, stdout },
  );
  const stopClient = async () => {
    const c = client as Client | null;
    if (!c) return;
    await c.stop();
    c.close();
  };
  // A signal (the terminal closed, kill) quits as cleanly as Ctrl+C does.
  const onSignal = () => {
    void stopClient().finally(() => app.unmount());
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGHUP", onSignal);
  // Bracketed paste (a paste arrives whole) and focus reporting (notifications while away).
  const endModes = terminalModes(process.stdout);
  try {
    await app.waitUntilExit();
  } finally {
    endModes();
    notifier.close();
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
  }
  return 0;
}
