// What every module of the client core shares: transactions on the store, the identity, the
// settings and the emitter the client's users listen to. Each module is given the store tables
// it owns separately; this context gives access to none.
import type { EventEmitter } from "node:events";
import type { Identity } from "@parley/protocol";
import type { Settings } from "../settings.js";
import type { ClientEvents } from "./types.js";

export interface Context {
  /** Runs `fn` in one IMMEDIATE transaction (a savepoint inside another): all of it, or nothing. */
  tx<T>(fn: () => T): T;
  readonly identity: Identity;
  /** The display name this identity announces in its intros. */
  readonly name: string;
  readonly settings: Settings;
  readonly emitter: EventEmitter<ClientEvents>;
}

/** Something the user should know that is not an event (ClientEvents "warning"). */
export function warn(ctx: Context, text: string): void {
  ctx.emitter.emit("warning", text);
}
