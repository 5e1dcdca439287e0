// Writes grammar/diagrams.html: railroad diagrams of the policy grammar, generated from
// the parser itself (Chevrotain's createSyntaxDiagramsCode). `npm run grammar`.
import { writeFileSync } from "node:fs";
import { createSyntaxDiagramsCode } from "chevrotain";
import { recoveringParser } from "../src/syntax/parser.js";

export function diagramsHtml(): string {
  return createSyntaxDiagramsCode(recoveringParser().getSerializedGastProductions());
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = new URL("../grammar/diagrams.html", import.meta.url);
  writeFileSync(out, diagramsHtml());
  console.log(`wrote ${out.pathname}`);
}
