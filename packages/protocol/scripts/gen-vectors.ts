// Regenerates vectors/kat.json. Run `pnpm vectors` only for a deliberate protocol change: the
// committed file is what other implementations and test/kat.test.ts check against.
import { writeFileSync } from "node:fs";
import { buildBlobs } from "./kat-blobs.js";
import { buildEdgeCases } from "./kat-edge-cases.js";
import { buildFiles } from "./kat-files.js";
import { buildGroups } from "./kat-groups.js";
import { buildPostQuantum } from "./kat-pq.js";
import { buildPqRatchet } from "./kat-pq-ratchet.js";
import { buildTranscript } from "./kat-transcript.js";

const path = new URL("../vectors/kat.json", import.meta.url);
// DEL, C1 controls and bidi controls (in the relay URL vectors) are written as \u escapes, so the
// file shows no invisible or reordering characters; JSON.stringify already escapes C0 controls.
const json = JSON.stringify(
  {
    ...buildTranscript(),
    ...buildEdgeCases(),
    ...buildGroups(),
    ...buildFiles(),
    ...buildBlobs(),
    ...buildPostQuantum(),
    ...buildPqRatchet(),
  },
  null,
  2,
).replace(
  /[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
  (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
);
writeFileSync(path, `${json}\n`);
console.log(`wrote ${path.pathname}`);
