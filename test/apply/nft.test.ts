// The pure parts of apply --format nft (apply/nft.ts): the tables a file replaces, what puts
// them back, and which input chains the lockout guard reads. (test/apply/apply-nft.test.ts: the
// command with the real nft.)
import { expect, test } from "vitest";
import { inputChains, restoreText, rollbackToText, tablesOfFile, unreadNote } from "../../src/apply/nft.js";

const FILE = `# header\ntable inet dockwall\ndelete table inet dockwall\ntable inet dockwall {\n\tchain input {\n\t}\n}\ntable ip docker-bridges\ndelete table ip docker-bridges\ntable ip docker-bridges {\n}\n`;

test("the tables a file replaces, in its order, each once", () => {
  expect(tablesOfFile(FILE)).toEqual(["inet dockwall", "ip docker-bridges"]);
});

test("restoring: a table that was there comes back as listed; one that was not is deleted; Docker's are never put back from then", () => {
  const listed = { "inet dockwall": "table inet dockwall {\n\tchain x {\n\t}\n}\n", "ip docker-bridges": "table ip docker-bridges {\n}\n", "ip6 docker-bridges": null };
  expect(restoreText(["inet dockwall", "ip docker-bridges", "ip6 docker-bridges"], listed)).toBe(
    "table inet dockwall\ndelete table inet dockwall\ntable inet dockwall {\n\tchain x {\n\t}\n}\ntable ip docker-bridges\ndelete table ip docker-bridges\ntable ip6 docker-bridges\ndelete table ip6 docker-bridges\n",
  );
});

test("rolling back to a policy: its file, after deleting what the rolled-back apply made that it does not write and that was not there before", () => {
  const prevFile = "table inet dockwall\ndelete table inet dockwall\ntable inet dockwall {\n}\n";
  expect(rollbackToText(prevFile, ["inet dockwall", "ip docker-bridges"], { "inet dockwall": "x", "ip docker-bridges": null })).toBe(`table ip docker-bridges\ndelete table ip docker-bridges\n${prevFile}`);
  // Docker 29's own table (iptables on, its nftables backend) was there before: dockerd's, left alone.
  expect(rollbackToText(prevFile, ["inet dockwall", "ip docker-bridges"], { "inet dockwall": "x", "ip docker-bridges": "table ip docker-bridges {\n}\n" })).toBe(prevFile);
});

test("input chains: every table's base chains on the input hook, but iptables-nft's and the file's own, with their rules counted", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { chain: { family: "ip", table: "filter", name: "INPUT", hook: "input", prio: 0, policy: "drop" } },
      { chain: { family: "inet", table: "dockwall", name: "input", hook: "input", prio: -1, policy: "accept" } },
      { chain: { family: "inet", table: "filter", name: "input", hook: "input", prio: 0, policy: "accept" } },
      { chain: { family: "inet", table: "filter", name: "forward", hook: "forward", prio: 0, policy: "drop" } },
      { chain: { family: "ip6", table: "fw", name: "in6", hook: "input", prio: 5, policy: "drop" } },
      { chain: { family: "inet", table: "filter", name: "helper" } },
      { rule: { family: "inet", table: "filter", chain: "input", expr: [] } },
      { rule: { family: "inet", table: "filter", chain: "input", expr: [] } },
      { rule: { family: "inet", table: "filter", chain: "helper", expr: [] } },
    ],
  });
  const chains = inputChains(json, ["inet dockwall"]);
  expect(chains).toEqual([
    { family: "inet", table: "filter", name: "input", policy: "accept", priority: 0, rules: 2 },
    { family: "ip6", table: "fw", name: "in6", policy: "drop", priority: 5, rules: 0 },
  ]);
  expect(unreadNote(chains, 4)).toBe("the lockout guard did not read table inet filter chain input (hook input, priority 0) (nftables rules of other tables): loading the file does not change what it decides");
  expect(unreadNote(chains.slice(1), 6)).toBeUndefined();
});
