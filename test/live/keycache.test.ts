// A watcher runs for months while containers come and go, each with new rule texts: the
// canonical spellings it keeps are those of its last two reconciles (issue 26: its RSS grew
// with container churn while the cache kept every text up to 200,000).
import { expect, test } from "vitest";
import { keyCacheSize, newKeyGeneration, parseSave } from "../../src/live/save.js";

/** A dump with 50 rules of its own (a container's rules, say): every text differs from another dump's. */
const dump = (n: number) => `*filter\n:INPUT ACCEPT [0:0]\n${Array.from({ length: 50 }, (_, i) => `-A INPUT -s 10.${n}.0.${i}/32 -j ACCEPT`).join("\n")}\nCOMMIT\n`;
const readKeys = (text: string) => {
  for (const c of parseSave(text).get("filter")!.chains.values()) for (const r of c.rules) void r.key;
};

test("a reconcile keeps what it and the one before used; the rest is let go", () => {
  newKeyGeneration();
  newKeyGeneration();
  expect(keyCacheSize()).toBe(0);
  for (let n = 0; n < 10; n++) {
    newKeyGeneration();
    readKeys(dump(n));
  }
  expect(keyCacheSize()).toBe(100); // 50 + 50, not 500
  newKeyGeneration();
  readKeys(dump(9)); // the same rules again: carried over
  expect(keyCacheSize()).toBe(100);
  newKeyGeneration();
  expect(keyCacheSize()).toBe(50);
});

test("one-shot commands start no generation: what they read stays for their run", () => {
  newKeyGeneration();
  newKeyGeneration();
  for (let n = 0; n < 4; n++) readKeys(dump(20 + n));
  expect(keyCacheSize()).toBe(200);
});
