// How a group's changes and an outgoing group message's counts read, the same in the CLI and in
// the terminal UI.
import type { GroupNote } from "./client.js";
import { displayText } from "./text.js";

/** "delivered to 1 of 2, read by 0": an outgoing group message's counts. */
export function groupCounts(s: { recipients?: number; delivered?: number; read?: number }): string {
  return `delivered to ${s.delivered ?? 0} of ${s.recipients ?? 0}, read by ${s.read ?? 0}`;
}

/** A group change in words ("Ann added Carol"), by the names members had when it happened. */
export function groupChangeWords(n: Readonly<GroupNote>): string {
  const by = displayText(n.by ?? "someone");
  const member = displayText(n.member ?? "someone");
  const change = `${n.op ?? "change"}${n.member === undefined ? "" : ` ${member}`}`;
  switch (n.event) {
    case "created":
      return `group created, ${n.members} members`;
    case "joined":
      return `${by} added you (${n.members} members)`;
    case "added":
      return `${by} added ${member}`;
    case "removed":
      return n.active ? `${by} removed ${member}` : `${by} removed you: nothing more is sent or received`;
    case "left":
      return n.active ? `${member} left` : "you left: nothing more is sent or received";
    case "renamed":
      return `${by} renamed the group${n.previousName === undefined ? "" : ` (was ${displayText(n.previousName)})`}`;
    case "promoted":
      return `${by} made ${member} an admin`;
    case "fork":
      return `${by}'s ${change} lost to a change made at the same time`;
    case "rejected":
      return `${by}'s ${change} was refused: ${n.reason ?? "not allowed"}`;
  }
}
