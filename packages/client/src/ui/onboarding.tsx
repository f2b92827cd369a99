// First run: display name, passphrase twice (hidden), relay URL (empty: the personal local relay).
import { relayUrlProblem } from "@parley/protocol/relay-url";
import { useState } from "react";
import { nameProblem } from "../text.js";
import { Prompt } from "./prompt.js";

export interface OnboardingResult {
  readonly name: string;
  readonly passphrase: string;
  /** null: use the personal relay on this machine. */
  readonly relay: string | null;
}

type Step = "name" | "passphrase" | "again" | "relay";

export function Onboarding(props: {
  readonly onDone: (r: OnboardingResult) => void;
  readonly onQuit: () => void;
  readonly busy?: string | null;
  readonly error?: string | null;
}) {
  const [step, setStep] = useState<Step>("name");
  const [name, setName] = useState("");
  const [passphrase, setPassphrase] = useState("");
  const [error, setError] = useState<string | null>(null);
  const title = "Welcome to Parley: end-to-end encrypted chat";
  const common = {
    title,
    onQuit: props.onQuit,
    error: error ?? props.error ?? null,
    busy: props.busy ?? null,
  };
  switch (step) {
    case "name":
      return (
        <Prompt
          {...common}
          label="Your display name:"
          hint="Shown to the people you invite; names are local, each side can rename."
          onSubmit={(v) => {
            const problem = nameProblem(v);
            if (problem) return setError(problem);
            setError(null);
            setName(v);
            setStep("passphrase");
          }}
        />
      );
    case "passphrase":
      return (
        <Prompt
          {...common}
          masked
          label="Passphrase:"
          hint="It encrypts everything Parley keeps on this machine. There is no way to recover it."
          onSubmit={(v) => {
            if (v.length < 8) return setError("use at least 8 characters");
            setError(null);
            setPassphrase(v);
            setStep("again");
          }}
        />
      );
    case "again":
      return (
        <Prompt
          {...common}
          masked
          label="Passphrase again:"
          onSubmit={(v) => {
            if (v !== passphrase) {
              setError("the two passphrases differ; enter it again");
              setPassphrase("");
              return setStep("passphrase");
            }
            setError(null);
            setStep("relay");
          }}
        />
      );
    case "relay":
      return (
        <Prompt
          {...common}
          label="Relay URL:"
          hint="Leave empty to use a personal relay on this machine (local-only: chat between terminals here)."
          onSubmit={(v) => {
            const url = v.trim();
            if (url !== "" && relayUrlProblem(url)) return setError(`relay URL: ${relayUrlProblem(url)}`);
            setError(null);
            props.onDone({ name, passphrase, relay: url === "" ? null : url });
          }}
        />
      );
  }
}
