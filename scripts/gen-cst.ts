// Writes src/syntax/cst.generated.ts: the CST node types, generated from the parser
// (Chevrotain's generateCstDts) so they can never drift from the grammar.
// test/syntax/generated.test.ts fails when the committed file is stale.
import { writeFileSync } from "node:fs";
import { cstTypesSource } from "./cst-source.js";

const out = new URL("../src/syntax/cst.generated.ts", import.meta.url);
writeFileSync(out, cstTypesSource());
console.log(`wrote ${out.pathname}`);
