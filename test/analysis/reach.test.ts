// Reachability in `diff` and `apply` (issue 23, item 5): before the rule diff, what loading the
// compiled rules does to who reaches what, in the policy's words — each changed cell with the
// statement that opens it or the rule that closes it; in diff --json too; apply prints it before
// it loads. Each cell is the matrix's (test/analysis/matrix*.test.ts prove those with packets).
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { runApply } from "../../src/apply/command.js";
import type { FactsNow, PolicyRecord } from "../../src/apply/rollback.js";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { memoryIo } from "../support/io.js";
import { machine } from "../support/memory-kernel.js";

const FILE = "examples/web-host.dw";
const TEXT = readFileSync(new URL(`../../${FILE}`, import.meta.url), "utf8");
const compiled = compile(TEXT, { format: "iptables" }).output!;
const allowLine = TEXT.split("\n").findIndex((l) => l.startsWith("allow lan to web:8080")) + 1;

/** What is loaded: the compiled rules, with lan's allow to web:8080 missing and a hand-made ACCEPT for one wan address. */
const loaded = compiled
  .replace(/^-A DOCKER-USER -s 192\.168\.1\.0\/24 -d 172\.17\.0\.2\/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 .*\n/m, "")
  .replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "$1-A DOCKER-USER -s 203.0.113.5/32 -i eth0 -j ACCEPT\n");

async function diff(args: string[]) {
  const io = memoryIo({ [FILE]: TEXT, "live.v4": loaded, "same.v4": compiled });
  const code = await run(["diff", FILE, ...args], io);
  return { code, out: io.out.join(""), err: io.err.join("") };
}

describe("dockwall diff: who reaches what, before the rule diff", () => {
  test("the allow that loading opens, with its line; what it closes, with the rule that closes it", async () => {
    expect(loaded).not.toBe(compiled);
    const r = await diff(["--live", "live.v4"]);
    expect(r.code).toBe(1);
    const [reach, rules] = r.out.split("\n\n--- live:");
    expect(rules).toBeDefined();
    const lines = reach!.split("\n");
    expect(lines[0]).toBe("reachability (IPv4):");
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^\\+ open   lan 192\\.168\\.1\\.0/24 in eth1 -> web:8080/tcp \\(dnat\\) +allow lan to web:8080, web:8443;   ${FILE.replace(".", "\\.")}:${allowLine}:1$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^- closed wan 203\.0\.113\.5\/32 in eth0 -> web:8080\/tcp \(dnat\) +dockwall: unpublished, not allowed, or addressed straight to a container$/));
    // Nothing that does not change: wan's 203.0.113.0/24 may reach web:8443 before and after.
    expect(lines.some((l) => /wan 203\.0\.113\.5\/32 .* web:8443\/tcp \(dnat\)/.test(l))).toBe(false);
  });

  test("--json: reachability, with the spec's fields", async () => {
    const r = await diff(["--live", "live.v4", "--json"]);
    const j = JSON.parse(r.out) as { reachability: Record<string, unknown>[] };
    expect(j.reachability.length).toBeGreaterThan(3);
    expect(Object.keys(j.reachability[0]!).slice(0, 6)).toEqual(["row", "column", "family", "path", "before", "after"]);
    expect(j.reachability).toContainEqual(expect.objectContaining({ column: "web:8080/tcp", family: 4, path: "dnat", before: "closed", after: "open", by: expect.objectContaining({ kind: "policy", line: allowLine }) }));
  });

  test("loaded rules that are what the policy compiles to: no reachability section, exit 0", async () => {
    const r = await diff(["--live", "same.v4"]);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain("reachability");
  });
});

test("dockwall apply prints it before it loads", async () => {
  const m = machine();
  m.kernel.restore(4, loaded, { noflush: false, test: false });
  const r = compile(TEXT, { noRender: true, file: FILE });
  const record: PolicyRecord = { file: FILE, text: TEXT, facts: { from: "none" }, applied: 0 };
  const factsNow: FactsNow = { facts: async () => undefined, dockerVersion: async () => "20.10.24" };
  const err: string[] = [];
  const code = await runApply(m.io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { force: false, policyName: FILE, record, factsNow });
  expect(code).toBe(0);
  const out = err.join("");
  const at = out.indexOf("reachability (IPv4):\n");
  expect(at).toBeGreaterThanOrEqual(0);
  expect(at).toBeLessThan(out.indexOf(`dockwall: applied ${FILE}`));
  expect(out).toMatch(/\+ open   lan 192\.168\.1\.0\/24 in eth1 -> web:8080\/tcp \(dnat\) +allow lan to web:8080, web:8443;/);
});

test("a host of 60 containers (three ports each, a source range per container): who reaches what is worked out, the one change and nothing else", async () => {
  const { policyOf } = await import("../../bench/generate.js");
  const before = policyOf({ containers: 60, hostRules: 4 });
  const after = before.replace("allow lan to c5:10015, c5:10016;", "allow lan to c5:10015;");
  expect(after).not.toBe(before);
  const io = memoryIo({ "big.dw": after, "live.v4": compile(before, { format: "iptables" }).output! });
  const code = await run(["diff", "big.dw", "--live", "live.v4", "--json"], io);
  expect(code).toBe(1);
  const j = JSON.parse(io.out.join("")) as { reachability: { column: string; path: string; before: string; after: string; from: string }[]; warnings: string[] };
  expect(j.warnings.filter((w) => w.includes("not worked out"))).toEqual([]);
  expect(j.reachability.map((c) => `${c.from} ${c.column} ${c.path} ${c.before} -> ${c.after}`)).toEqual(["lan 192.168.0.0/16 in eth1 c5:10016/tcp dnat open -> closed"]);
});

test("a host block's 'policy accept' added: every other port of the host opens, and a line says so (a review: with dumps, only the ports the host block names had a column)", async () => {
  const open = TEXT.replace(/^host \{\n/m, "host {\n  policy accept;\n");
  expect(open).not.toBe(TEXT);
  const io = memoryIo({ [FILE]: open, "same.v4": compiled });
  const code = await run(["diff", FILE, "--live", "same.v4"], io);
  expect(code).toBe(1);
  const lines = io.out.join("").split("\n\n")[0]!.split("\n");
  expect(lines).toContainEqual(expect.stringMatching(/^\+ open   wan .* in eth0 -> host:other\/tcp \(host\)/));
  expect(lines).toContainEqual(expect.stringMatching(/^\+ open   wan .* in eth0 -> host:other\/udp \(host\)/));
});

test("a cell that could not be told before (a match the evaluator does not understand) is said so, not called an opening or a closing (a review)", async () => {
  const unknown = compiled.replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "$1-A DOCKER-USER -i eth0 -m recent --rcheck --name x -j ACCEPT\n");
  expect(unknown).not.toBe(compiled);
  const io = memoryIo({ [FILE]: TEXT, "unknown.v4": unknown });
  expect(await run(["diff", FILE, "--live", "unknown.v4"], io)).toBe(1);
  const lines = io.out.join("").split("\n\n")[0]!.split("\n");
  expect(lines).toContainEqual(expect.stringMatching(/^- closed wan .* in eth0 -> web:8080\/tcp \(dnat\), could not be told before +dockwall: /));
  expect(lines.filter((l) => /^[-+] /.test(l)).every((l) => l.includes(", could not be told before"))).toBe(true);
});

test("diff -f nft / apply -f nft on a large host: too many cells is said before anything is loaded or listed (the bound of the iptables reachability)", async () => {
  const { policyOf } = await import("../../bench/generate.js");
  const { nftReachabilityOf } = await import("../../src/analysis/command.js");
  const r = compile(policyOf({ containers: 300, hostRules: 4 }), { noRender: true });
  const ran: string[] = [];
  const said = nftReachabilityOf((cmd) => (ran.push(cmd), ""), r.policy!, "", ["inet dockwall"], [4, 6], { compiled: r.generated!.rulesets });
  expect(ran).toEqual([]);
  expect(said.changes).toEqual([]);
  expect(said.note).toMatch(/^who reaches what was not worked out \(\d+ cells, more than 400000\)/);
});

// A review, in the policy lab with real packets: going to `published open` opened the container's own address (a port
// published on 127.0.0.1 only too) and 127.0.0.1 to the wan, and diff listed only the dnat cells; a port published on one
// host address had no reachability line at all (the matrix did not take a bound address for the host's own).
describe("reachability of the paths `published open` leaves to Docker, and of a port bound to one host address", () => {
  const reach = async (before: string, after: string) => {
    const io = memoryIo({ "new.dw": after, "old.v4": compile(before, { format: "iptables" }).output!, "old.v6": compile(before, { format: "ip6tables" }).output! });
    const code = await run(["diff", "new.dw", "--live", "old.v4", "--live6", "old.v6"], io);
    const out = io.out.join("");
    return { code, lines: out.slice(0, out.indexOf("\n\n--- live:")).split("\n").map((l) => l.replace(/ +/g, " ")) };
  };
  test("published closed → open: the dnat cells, and the container's own address and 127.0.0.1, IPv4 and IPv6", async () => {
    const OPEN = `docker { version 20.10; iptables off; userland-proxy off; published open; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container web { network app 172.20.0.10, fd00:20::10; publish 8080:80; publish 127.0.0.1:9000:9000; }
allow lan to web:8080;
`;
    const r = await reach(OPEN.replace(" published open;", ""), OPEN);
    expect(r.code).toBe(1);
    const wan = r.lines.filter((l) => l.includes(" wan "));
    expect(wan).toEqual([
      "+ open wan 0.0.0.0/0 in eth0 -> web:8080/tcp (dnat) Docker's rule for container web",
      "+ open wan 0.0.0.0/0 in eth0 -> web:8080/tcp (direct) Docker's rule for container web",
      "+ open wan 0.0.0.0/0 in eth0 -> web:8080/tcp (loopback) Docker's rule for container web",
      "+ open wan 0.0.0.0/0 in eth0 -> web:127.0.0.1:9000/tcp (direct) Docker's rule for container web",
      "+ open wan 0.0.0.0/0 in eth0 -> web:127.0.0.1:9000/tcp (loopback) Docker's rule for container web",
      "+ open wan ::/0 in eth0 -> web:8080/tcp (direct) Docker's rule for network app",
    ]);
    // And back: the same cells close (the two directions agree).
    const back = await reach(OPEN, OPEN.replace(" published open;", ""));
    expect(back.lines.filter((l) => l.includes(" wan ")).map((l) => l.replace(/^- closed (.*?\)) .*$/, "$1"))).toEqual(wan.map((l) => l.replace(/^\+ open (.*?\)) .*$/, "$1")));
  });
  test("an allow of a port published on one host address: its line", async () => {
    const BOUND = `docker { version 28; iptables off; userland-proxy off; }
zone wan { interface eth0; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container web { network app 172.20.0.10, fd00:20::10; publish 203.0.113.10:8080:80; publish [2001:db8::10]:8080:80; }
allow wan to web:8080;
`;
    const r = await reach(BOUND.replace("allow wan to web:8080;\n", ""), BOUND);
    expect(r.lines.filter((l) => /^[+-] /.test(l))).toEqual([
      "+ open wan 0.0.0.0/0 in eth0 -> web:203.0.113.10:8080/tcp (dnat) allow wan to web:8080; new.dw:5:1",
      "+ open wan ::-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff fec0::/10, ff00::/8 in eth0 -> web:2001:db8::10:8080/tcp (dnat) allow wan to web:8080; new.dw:5:1",
    ]);
  });
  test("a zone taken away: what its interface reached closes, and says so (the rules before name the interface)", async () => {
    const BEFORE = `docker { version 28; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow wan from 203.0.113.0/24 to web:8080;
allow lan to web:8080;
`;
    const r = await reach(BEFORE, BEFORE.replace("zone lan { interface eth1; }\n", "").replace("allow lan to web:8080;\n", ""));
    expect(r.lines.filter((l) => /^[+-] /.test(l))).toEqual(["- closed any other source 0.0.0.0/0 in eth1 -> web:8080/tcp (dnat) dockwall: unpublished, not allowed, or addressed straight to a container"]);
  });
  test("a host port that closes with its rule taken away: the host block that drops it, said as such (a review: 'host {' alone)", async () => {
    const BEFORE = `docker { version 28; iptables off; userland-proxy off; }
zone wan { interface eth0; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow wan to web:8080;
host {
  allow wan tcp 22;
  allow wan tcp 443;
}
`;
    const r = await reach(BEFORE, BEFORE.replace("  allow wan tcp 22;\n", ""));
    expect(r.lines.filter((l) => /^[+-] /.test(l))).toEqual([
      "- closed wan 0.0.0.0/0 in eth0 -> host:22/tcp (host) host { … } drops what it does not allow new.dw:5:1",
      "- closed wan ::/0 in eth0 -> host:22/tcp (host) host { … } drops what it does not allow new.dw:5:1",
    ]);
  });
  // A review: a zone on a wildcard (`wg+`) taken away said nothing, while adding it back listed the opening.
  test("a zone on a wildcard taken away: the closing on an interface of the wildcard's own, as adding it back lists the opening", async () => {
    const BEFORE = `docker { version 28; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface wg+; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow wan from 203.0.113.0/24 to web:8080;
allow lan to web:8080;
`;
    const AFTER = BEFORE.replace("zone lan { interface wg+; }\n", "").replace("allow lan to web:8080;\n", "");
    const gone = (await reach(BEFORE, AFTER)).lines.filter((l) => /^[+-] /.test(l));
    const back = (await reach(AFTER, BEFORE)).lines.filter((l) => /^[+-] /.test(l));
    expect(back).toEqual(["+ open lan 0.0.0.0/0 in wg0 -> web:8080/tcp (dnat) allow lan to web:8080; new.dw:6:1"]);
    expect(gone).toEqual(["- closed any other source 0.0.0.0/0 in wg0 -> web:8080/tcp (dnat) dockwall: unpublished, not allowed, or addressed straight to a container"]);
  });
});

