// Per-author sequence numbers in a group (PROTOCOL.md §13.3): which of an author's messages have
// arrived, so that a gap can be shown ("2 messages from Ann not yet received") and a repeat dropped.
// Kept compactly: everything up to `through` has arrived, plus the numbers above it that have.

export interface SeqRecord {
  /** Every seq from 1 to `through` has arrived. */
  through: number;
  /** Seqs above `through` that have arrived, ascending. */
  above: number[];
}

export const emptySeqs = (): SeqRecord => ({ through: 0, above: [] });

/** Notes `seq` (≥ 1) as arrived; false if it already had (a repeat, to drop). */
export function noteSeq(r: SeqRecord, seq: number): boolean {
  if (!Number.isInteger(seq) || seq < 1) return false;
  if (seq <= r.through || r.above.includes(seq)) return false;
  r.above.push(seq);
  r.above.sort((a, b) => a - b);
  while (r.above[0] === r.through + 1) {
    r.through++;
    r.above.shift();
  }
  return true;
}

/** How many seqs below the highest that arrived have not: the gap to show. */
export function missingSeqs(r: SeqRecord): number {
  const highest = r.above.at(-1) ?? r.through;
  return highest - r.through - r.above.length;
}
