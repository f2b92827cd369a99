// Expiry of what waits in a group (PROTOCOL.md §13.3, §13.4), after as long as a relay may keep a
// message (the most retention this client accepts, settings.maxRetentionSeconds): a relay would
// have dropped it by then anyway. A text of mine held for a member I never had a route to is
// given up for that member, and its status says so (failed, when no member got it at all); an
// item received and kept for entries (or a session) that never came is dropped.
import type { WaitingItemsTable } from "../store/groups.js";
import { type Context, warn } from "./context.js";
import type { InternalEvent } from "./events.js";
import { short } from "./group-peers.js";
import { groupStatusEvent } from "./group-views.js";
import type { Groups } from "./groups.js";
import type { Messages } from "./messages.js";

export class GroupExpiry {
  constructor(
    private readonly ctx: Context,
    private readonly groups: Pick<Groups, "all" | "put">,
    private readonly waiting: Pick<WaitingItemsTable, "all" | "remove">,
    private readonly messages: Pick<Messages, "bySeq" | "update">,
  ) {}

  /** Gives up what waited longer than a relay keeps a message; the status events. In a transaction. */
  expire(now = Date.now()): InternalEvent[] {
    const cutoff = now - this.ctx.settings.maxRetentionSeconds * 1000;
    const out: InternalEvent[] = [];
    for (const r of this.groups.all()) {
      const g = r.value;
      if (!g.held?.length) continue;
      const dropped = new Map<number, string[]>();
      const keep = g.held.filter((h) => {
        const m = this.messages.bySeq(r.key, h.row);
        if (m?.group && m.sentAt > cutoff) return true;
        dropped.set(h.row, [...(dropped.get(h.row) ?? []), short(h.member)]);
        return false;
      });
      if (dropped.size === 0) continue;
      g.held = keep;
      this.groups.put(r.key, g);
      for (const [row, members] of dropped) {
        const m = this.messages.bySeq(r.key, row);
        if (!m?.group) continue;
        m.group.unsent = [...new Set([...(m.group.unsent ?? []), ...members])];
        if ((m.group.queued ?? []).length === 0) m.status = "failed";
        this.messages.update(r.key, row, m);
        out.push(groupStatusEvent(this.ctx.name, g, m));
      }
    }
    let stale = 0;
    for (const item of this.waiting.all()) {
      if (item.value.receivedAt > cutoff) continue;
      this.waiting.remove(item.seq);
      stale++;
    }
    if (stale > 0)
      warn(this.ctx, `dropped ${stale} group item(s) that waited longer than a relay keeps a message`);
    return out;
  }
}
