// npm run bench: speed and memory. Tests never assert timings; this prints them.
import { benchParseCheck } from "./parse-check.js";

const pc = benchParseCheck();
console.log(`parse + check, ${pc.statements} statements, in process: median ${pc.medianMs.toFixed(1)} ms (min ${pc.minMs.toFixed(1)} ms; target < 100 ms): parse ${pc.parseMs.toFixed(0)}, model ${pc.buildMs.toFixed(0)}, check ${pc.checkMs.toFixed(0)} ms`);
