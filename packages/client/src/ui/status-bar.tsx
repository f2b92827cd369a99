// The status bar, in words: whether the relays are connected (or when the next try is), the
// retention in force, what waits in the outbox, local-only mode.
import { Box, Text } from "ink";
import { humanDuration } from "../text.js";

export interface RelayStatus {
  readonly url: string;
  readonly connected: boolean;
  readonly retentionSeconds: number | null;
  /** In live mode: connecting (an attempt under way) or offline until nextRetryAt. */
  readonly state?: "connected" | "connecting" | "offline";
  readonly nextRetryAt?: number | null;
}

export interface StatusInfo {
  readonly outbox: number;
  readonly relays: readonly RelayStatus[];
  readonly localOnly: boolean;
  /** The time the retry countdown counts from. */
  readonly now?: number;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** What the relays' state is, in words: "1 relay connected", "offline: retrying in 12 s". */
export function relaySummary(relays: readonly RelayStatus[], now = Date.now()): string {
  if (relays.length === 0) return "no relay set: /relay URL";
  const down = relays.filter((r) => !r.connected);
  if (down.length === 0) return `● ${plural(relays.length, "relay", "relays")} connected`;
  const which = relays.length === 1 ? "" : `${down.length} of ${relays.length} relays `;
  if (down.some((r) => r.state === "connecting")) return `○ ${which}connecting…`;
  const next = Math.min(...down.map((r) => r.nextRetryAt ?? Number.POSITIVE_INFINITY));
  if (!Number.isFinite(next)) return `○ ${which}offline`;
  const seconds = Math.max(0, Math.ceil((next - now) / 1000));
  return `○ ${which}offline: ${seconds === 0 ? "retrying now" : `retrying in ${seconds} s`}`;
}

export function statusText(info: StatusInfo): string {
  const one = info.relays.length === 1 ? info.relays[0]! : null;
  const where = one
    ? `${one.url.replace(/^wss?:\/\//, "")}${one.retentionSeconds === null ? "" : ` keeps ${humanDuration(one.retentionSeconds)}`}`
    : null;
  const parts = [
    ...(info.localOnly ? ["local-only"] : []),
    relaySummary(info.relays, info.now),
    ...(where ? [where] : []),
    info.outbox === 0 ? "outbox empty" : `${info.outbox} waiting to send`,
    "? help",
  ];
  return ` ${parts.join(" | ")}`;
}

export function StatusBar({ info, width }: { readonly info: StatusInfo; readonly width: number }) {
  return (
    <Box width={width}>
      <Text inverse wrap="truncate-end">
        {statusText(info).padEnd(width)}
      </Text>
    </Box>
  );
}
