// For the client core's module tests: a real store in a temporary home (SQLite, sealed records)
// and a context over it, with the warnings and events its emitter published.
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodePublicIdentity, Identity, MailboxKey, toHex } from "@parley/protocol";
import type { Context } from "../../src/core/context.js";
import type { ClientEvent, ClientEvents } from "../../src/core/types.js";
import type { ContactRecord } from "../../src/store.js";
import { Store } from "../../src/store.js";

const homes: string[] = [];
const stores: Store[] = [];

/** Closes every store made here and removes its home (call it in afterEach). */
export function cleanupStores(): void {
  for (const s of stores.splice(0)) s.close();
  for (const d of homes.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface Harness {
  readonly store: Store;
  readonly ctx: Context;
  readonly warnings: string[];
  readonly events: ClientEvent[];
}

/** A new store and a context over it (identity "Me", a default relay). */
export function harness(): Harness {
  const home = mkdtempSync(join(tmpdir(), "parley-core-"));
  homes.push(home);
  const identity = Identity.generate();
  const store = Store.create(home, join(home, "parley.db"), "pw", 10, (s) =>
    s.putIdentity({ name: "Me", secret: toHex(identity.serialize()), createdAt: 1 }),
  );
  stores.push(store);
  const emitter = new EventEmitter<ClientEvents>();
  const warnings: string[] = [];
  const events: ClientEvent[] = [];
  emitter.on("warning", (w) => warnings.push(w));
  emitter.on("event", (e) => events.push(e));
  const ctx: Context = {
    tx: (fn) => store.tx(fn),
    identity,
    name: "Me",
    settings: { relay: "ws://127.0.0.1:1", maxRetentionSeconds: 7 * 86400 },
    emitter,
  };
  return { store, ctx, warnings, events };
}

const key = () => {
  const k = MailboxKey.generate();
  return toHex(k.serialize());
};

/** A contact record with fresh mailbox keys and a real public identity; the session is a placeholder. */
export function contactRecord(name: string, patch: Partial<ContactRecord> = {}): ContactRecord {
  const them = Identity.generate();
  return {
    name,
    nameSource: "user",
    identity: toHex(encodePublicIdentity(them.publicIdentity)),
    session: "",
    verified: false,
    keyChanged: false,
    inbox: { relay: "ws://relay.example", key: key() },
    outbox: { relay: "ws://relay.example", address: "aa".repeat(32) },
    createdAt: 1,
    lastActivity: 1,
    unread: 0,
    awaiting: [],
    ...patch,
  };
}

export const mailboxKeyHex = key;
