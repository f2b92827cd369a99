/**
 * @parley/client: the client core used by the `parley` CLI and the terminal UI.
 * @module
 */
export { Client, type ClientEvent, type ContactView, type MessageView } from "./client.js";
export { ClientError, type ClientErrorCode, EXIT } from "./errors.js";
export { type Paths, resolvePaths } from "./paths.js";
export { RelayConnection, RelayRequestError, RelayUnreachableError } from "./relay-connection.js";
export { loadSettings, type Settings, saveSettings } from "./settings.js";
