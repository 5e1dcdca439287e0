// watch -f nft compares the file's tables with what is loaded at each reconcile; it takes them
// from the compile (nftState: Docker's tables from their maps and chains, docker/nft29.ts
// tableParts; dockwall's read from its text), and makes the file's text only to load it whole.
// Held here: the tables are exactly what parseNftList reads of the text, and the text, made
// when asked, is the file a compile without nftState writes — for every Docker 29 capture's
// policy, every shipped policy, and a host of many containers.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { parseNftList } from "../../src/live/nftdiff.js";
import type { RawFacts } from "../../src/facts/read.js";
import { shippedPolicies } from "../lab/policylab.js";

const parity = new URL("../parity/v29-nftables", import.meta.url).pathname;
const many = (n: number) =>
  "docker { version 29.7; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.0.0/16; }\nnetwork back { bridge br-back; subnet 172.30.0.0/16; subnet fd00:30::/64; internal; }\n" +
  Array.from({ length: n }, (_, i) => `container c${i} { network bridge 172.17.${i >> 8}.${(i & 255) + 2}, fd00:17::${i + 2}; ${i % 3 ? "" : `network back 172.30.0.${i + 2}; `}publish ${7000 + i}:80; ${i % 5 ? "" : `publish 127.0.0.1:${9000 + i}:81/udp; `}}\n`).join("") +
  "network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }\nallow lan to c0, c3, c7;\n";

const cases: [string, string][] = [
  ...readdirSync(parity)
    .sort()
    .map((d): [string, string] => [`parity/v29-nftables/${d}`, readFileSync(join(parity, d, "policy.dw"), "utf8")]),
  ...shippedPolicies(),
  ["300 containers on two networks, one internal", many(300)],
];

test.each(cases)("%s: the tables are what parseNftList reads of the file, and the file is the one compile writes", (_name, text) => {
  const plain = compile(text, { format: "nft" });
  const r = compile(text, { format: "nft", nftState: true });
  expect(r.diagnostics.map((d) => d.message)).toEqual(plain.diagnostics.map((d) => d.message));
  expect(r.ok).toBe(plain.ok);
  if (!plain.ok) return;
  expect(r.nftState).toEqual(parseNftList(plain.output!));
  expect(r.output).toBe(plain.output);
});

test("the cases hold Docker's tables, and policies beside Docker's own chains", () => {
  const states = cases.map(([, text]) => compile(text, { format: "nft", nftState: true }).nftState).filter((s) => s !== undefined);
  expect(states.filter((s) => s!.tables.includes("ip docker-bridges")).length).toBeGreaterThanOrEqual(19);
  expect(states.filter((s) => !s!.tables.includes("ip docker-bridges")).length).toBeGreaterThanOrEqual(2);
});

test("the nft compile's iptables rule sets, made when asked for (generateLazily), are what generate makes at once: rule sets, setup commands and @preserve lists alike", () => {
  const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as RawFacts;
  // Docker 28.0.0 keeps its bridges' subnets in an ipset: setup commands.
  const policy = "docker { version 28.0.0; iptables off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to web;\n";
  const lazy = compile(policy, { format: "nft", noRender: true, facts: { raw: corpus, source: "facts.json" } }).generated!;
  const eager = compile(policy, { format: "iptables", noRender: true, facts: { raw: corpus, source: "facts.json" } }).generated!;
  expect(lazy.setup[4]).toEqual(eager.setup[4]);
  expect(lazy.setup[4]!.length).toBe(2);
  expect(JSON.parse(JSON.stringify(lazy))).toEqual(JSON.parse(JSON.stringify(eager)));
});
