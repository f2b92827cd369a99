// `parley` with no command: the terminal UI, until /quit or Ctrl+C.
import { render } from "ink";
import type { Client } from "../client.js";
import type { Paths } from "../paths.js";
import type { Settings } from "../settings.js";
import { App } from "./app.js";
import { KeyRouter, terminalModes } from "./use-keys.js";

export async function runUi(paths: Paths, settings: Settings): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    process.stderr.write("parley: the terminal UI needs a terminal; for scripts see `parley --help`\n");
    return 2;
  }
  let client: Client | null = null;
  const logN = process.env.PARLEY_SCRYPT_LOG_N ? Number(process.env.PARLEY_SCRYPT_LOG_N) : undefined;
  const app = render(
    <KeyRouter>
      <App
        paths={paths}
        settings={settings}
        logN={logN}
        onClient={(c) => {
          client = c;
        }}
      />
    </KeyRouter>,
    { exitOnCtrlC: false },
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
  const endModes = terminalModes(process.stdout);
  try {
    await app.waitUntilExit();
  } finally {
    endModes();
  }
  return 0;
}
