// Everything the UI needs once a store is open: the client core (noble, SQLite, ws) and the chat
// screen. The app loads this module after its first frame is on screen, so the unlock or
// onboarding screen paints without waiting for it.
export { Client } from "../client.js";
export { ensureLocalRelay } from "../local-relay.js";
export { Chat } from "./chat.js";
