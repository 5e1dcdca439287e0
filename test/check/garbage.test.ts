// Garbage in, a terminal that stays usable: a binary file or a huge line is reported in a
// bounded amount of plain text.
import { expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";

/** Random bytes, the same every run, read as a policy is (UTF-8, invalid bytes as U+FFFD). */
function garbage(seed: number, n: number): string {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = Math.floor(((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) * 256);
  return bytes.toString("utf8");
}

/** What a terminal would act on rather than print (controls other than the line break), or show as an invalid byte. */
const DISTURBING = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffd]/;

test.each([17, 4242, 99])("2 KB of random bytes (seed %i): at most 50 errors, the rest counted, nothing a terminal acts on", async (seed) => {
  const io = memoryIo({ "p.dw": garbage(seed, 2048) });
  expect(await run(["check", "p.dw"], io)).toBe(2);
  const err = io.err.join("");
  const errors = err.split("\n").filter((l) => / error: /.test(l) && l.startsWith("p.dw:"));
  expect(errors.length).toBeLessThanOrEqual(50);
  const more = /= note: (\d+) more syntax errors? not shown: dockwall stops after 50 \(is this a dockwall policy\?\)\n/.exec(err);
  expect(more).not.toBeNull();
  // The summary counts them all.
  expect(err.endsWith(`\ndockwall: ${50 + Number(more![1])} errors (50 shown)\n`)).toBe(true);
  expect(err).not.toMatch(DISTURBING);
  expect(err.length).toBeLessThan(24_000);
  for (const line of err.split("\n")) expect(line.length).toBeLessThan(300);
});

test("a 1.4 MB one-line policy: each diagnostic shows a window of the line around the caret", async () => {
  const zones: string[] = [];
  for (let i = 0; i < 50_000; i++) zones.push(i === 25_000 ? `zone bad { interfacee eth0; }` : `zone z${i} { interface eth0; }`);
  const line = `docker { version 20.10; userland-proxy off; published open; } ${zones.join(" ")}`;
  expect(line.length).toBeGreaterThan(1_400_000);
  const io = memoryIo({ "p.dw": line + "\n" });
  expect(await run(["check", "p.dw"], io)).toBe(2);
  const err = io.err.join("");
  expect(err.length).toBeLessThan(1_000);
  const [head, src, caret] = err.split("\n");
  const col = line.indexOf("interfacee") + 1;
  expect(head).toBe(`p.dw:1:${col}: error: unknown option 'interfacee' in zone 'bad'`);
  expect(src).toBe(`1 | …${line.slice(col - 1 - 60, col - 1 + 60)}…`);
  expect(caret).toBe(`  | ${" ".repeat(61)}${"^".repeat("interfacee".length)}`);
});
