// The terminal UI's top: onboarding on first run, then the unlock screen, then the chat. A
// locked store never shows content: nothing is read before the passphrase opened it.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { useApp } from "ink";
import { useEffect, useState } from "react";
import type { Client } from "../client.js";
import { ClientError } from "../errors.js";
import type { Paths } from "../paths.js";
import { type Settings, saveSettings } from "../settings.js";
import type { ChatProps } from "./chat.js";
import { Onboarding, type OnboardingResult } from "./onboarding.js";
import { Prompt } from "./prompt.js";

/** The home directory as a person writes it (~ for their home). */
function displayHome(dir: string): string {
  const h = homedir();
  return dir === h || dir.startsWith(`${h}/`) ? `~${dir.slice(h.length)}` : dir;
}

export interface AppProps {
  readonly paths: Paths;
  readonly settings: Settings;
  /** scrypt cost for a new store (tests lower it). */
  readonly logN?: number;
  readonly onClient?: (client: Client | null) => void;
  /** Desktop notifications for the chat (run.tsx makes one from the settings). */
  readonly notifier?: ChatProps["notifier"];
  /** Picture previews for the chat (run.tsx makes them from the terminal and the settings). */
  readonly images?: ChatProps["images"];
}

type Core = typeof import("./core.js");
let core: Promise<Core> | null = null;
/** The client core and chat screen, loaded once, on first use or just after the first frame. */
const loadCore = (): Promise<Core> => {
  core ??= import("./core.js");
  return core;
};

type Phase =
  | { kind: "onboarding" }
  | { kind: "unlock" }
  | { kind: "chat"; client: Client; localOnly: boolean; Chat: Core["Chat"] };

export function App({ paths, settings, logN, onClient, notifier, images }: AppProps) {
  const { exit } = useApp();
  const [phase, setPhase] = useState<Phase>(() =>
    existsSync(paths.database) ? { kind: "unlock" } : { kind: "onboarding" },
  );
  // The first frame is painted by now; load the rest while the user types.
  useEffect(() => {
    const t = setTimeout(() => void loadCore().catch(() => {}), 0);
    return () => clearTimeout(t);
  }, []);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const client = phase.kind === "chat" ? phase.client : null;
  useEffect(() => {
    onClient?.(client);
  }, [client, onClient]);

  const quit = () => {
    if (client) {
      void client.stop().finally(() => {
        client.close();
        exit();
      });
    } else exit();
  };

  /** Starts live mode, first bringing up the personal relay when that is the configured one. */
  const enter = async (c: Client, s: Settings) => {
    const { ensureLocalRelay, Chat } = await loadCore();
    const localOnly = Boolean(s.localRelay);
    if (localOnly) await ensureLocalRelay();
    await c.start();
    setPhase({ kind: "chat", client: c, localOnly, Chat });
  };

  const onboard = async (r: OnboardingResult) => {
    setBusy(r.relay === null ? "starting your personal relay…" : "creating your identity…");
    try {
      const { Client, ensureLocalRelay } = await loadCore();
      const next: Settings = { ...settings };
      if (r.relay === null) {
        const local = await ensureLocalRelay();
        next.relay = local.url;
        next.localRelay = true;
      } else {
        next.relay = r.relay;
        next.localRelay = false;
      }
      const c = Client.init(paths, r.passphrase, r.name, next, logN);
      saveSettings(paths.config, next);
      await enter(c, next);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(null);
    }
  };

  const unlock = async (passphrase: string) => {
    setBusy("unlocking…");
    setError(null);
    // Let the message paint before scrypt takes the thread.
    await new Promise((r) => setTimeout(r, 10));
    try {
      const { Client } = await loadCore();
      const c = Client.open(paths, passphrase, settings);
      await enter(c, settings);
    } catch (e) {
      setError(
        e instanceof ClientError && e.code === "WRONG_PASSPHRASE" ? "wrong passphrase" : (e as Error).message,
      );
    } finally {
      setBusy(null);
    }
  };

  switch (phase.kind) {
    case "onboarding":
      return <Onboarding onDone={(r) => void onboard(r)} onQuit={quit} busy={busy} error={error} />;
    case "unlock":
      return (
        <Prompt
          title="Parley is locked"
          hint={`The identity kept in ${displayHome(paths.home)}`}
          label="Passphrase:"
          masked
          error={error}
          busy={busy}
          onSubmit={(p) => void unlock(p)}
          onQuit={quit}
        />
      );
    case "chat":
      return (
        <phase.Chat
          client={phase.client}
          localOnly={phase.localOnly}
          notifier={notifier}
          images={images}
          onQuit={quit}
          onRelay={(url) => {
            phase.client.settings.relay = url;
            phase.client.settings.localRelay = false;
            saveSettings(paths.config, phase.client.settings);
          }}
        />
      );
  }
}
