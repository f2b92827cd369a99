// Regenerates vectors/kat.json. Run `pnpm vectors` only for a deliberate protocol change: the
// committed file is what other implementations and test/kat.test.ts check against.
import { writeFileSync } from "node:fs";
import { buildEdgeCases } from "./kat-edge-cases.js";
import { buildTranscript } from "./kat-transcript.js";

const path = new URL("../vectors/kat.json", import.meta.url);
writeFileSync(path, `${JSON.stringify({ ...buildTranscript(), ...buildEdgeCases() }, null, 2)}\n`);
console.log(`wrote ${path.pathname}`);
