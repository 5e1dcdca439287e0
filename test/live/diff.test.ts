// dockwall diff without a kernel: the normaliser's spellings, and each kind of change.
// (test/kernel/diff.test.ts proves the same against a live namespace.)
import { describe, expect, test } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { canonicalRule, normalise, words } from "../../src/live/save.js";
import { memoryIo } from "../support/io.js";
import { root } from "../support/policies.js";

const canon = (rule: string) => canonicalRule(words(rule));

describe("one canonical spelling", () => {
  test.each([
    ["-s 10.0.0.1 -p tcp --dport 22 -j ACCEPT", "--source 10.0.0.1/32 --protocol tcp -m tcp --dport 22 --jump ACCEPT"],
    ["! -i docker0 -o docker0 -j DROP", "-i ! docker0 --out-interface docker0 -j DROP"],
    ["-d 172.17.0.5/16 -j RETURN", "-d 172.17.0.0/16 -j RETURN"],
    ["-s 10.0.0.0/255.255.255.0 -j ACCEPT", "-s 10.0.0.0/24 -j ACCEPT"],
    ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"],
    ["-p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN", "--protocol tcp --match conntrack --ctorigdstport 8080 --ctstate DNAT --dport 80 --jump RETURN"],
    ["-p tcp -m multiport --dports 22,80 -j ACCEPT", '-p tcp -m multiport --dports 22,80 -m comment --comment "ssh and web" -j ACCEPT'],
    ["-d 2001:db8::1/128 -j DROP", "-d 2001:0db8:0:0::1 -j DROP"],
    ["-p tcp --dport 8000:8002 -j ACCEPT", "-p tcp -m tcp --destination-port 8000-8002 -j ACCEPT"],
    ["-p tcp -j REJECT --reject-with icmp-port-unreachable", "-p tcp -j REJECT"],
  ])("%s", (a, b) => {
    expect(canon(a)).toBe(canon(b));
  });

  test("different rules stay different", () => {
    expect(canon("-s 10.0.0.1 -j ACCEPT")).not.toBe(canon("-s 10.0.0.2 -j ACCEPT"));
    expect(canon("! -i eth0 -j DROP")).not.toBe(canon("-i eth0 -j DROP"));
    // A match module without options (a review: dropped, so `-m socket -j ACCEPT` read as `-j ACCEPT`); a protocol's own is nothing.
    expect(canon("-m socket -j ACCEPT")).not.toBe(canon("-j ACCEPT"));
    expect(canon("-p tcp -m tcp -j DROP")).toBe(canon("-p tcp -j DROP"));
  });

  test("counters, comments, table order and chain order do not matter", () => {
    const a = "*filter\n:INPUT ACCEPT [10:200]\n:FOO - [0:0]\n[3:120] -A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
    const b = "# saved\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:FOO - [0:0]\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    expect(normalise(a)).toBe(normalise(b));
  });
});

describe("each kind of change, from a dump", () => {
  const policy = readFileSync(join(root, "examples/web-host.dw"), "utf8");
  const v4 = compile(policy, { format: "iptables" }).output!;

  async function diff(live: string, extra: string[] = []) {
    const io = memoryIo({ "p.dw": policy, "live.v4": live });
    const code = await run(["diff", "p.dw", "--live", "live.v4", ...extra], io);
    return { code, out: io.out.join(""), err: io.err.join("") };
  }

  test("the compiled rules themselves: exit 0", async () => {
    const d = await diff(v4);
    expect(d.code).toBe(0);
    expect(d.out).toBe("dockwall diff: no changes; 0 rules added, 0 removed, 0 moved, 0 chains added, 0 removed, 0 policies changed\n");
  });

  test("a missing rule, an extra rule, a moved rule, a policy, a new chain", async () => {
    const lines = v4.split("\n");
    const drop = "-A DOCKER-USER -o docker0 -j DROP";
    const edited = lines
      .filter((l) => l !== drop)
      .map((l) => (l === ":FORWARD DROP [0:0]" ? ":FORWARD ACCEPT [0:0]" : l))
      .flatMap((l) => (l === "-A DOCKER-USER -j RETURN" ? ["-A DOCKER-USER -s 10.9.9.9/32 -j ACCEPT", l] : [l]))
      .join("\n")
      .replace("-A DOCKER-USER -i docker0 -j RETURN\n-A DOCKER-USER -i br-app -j RETURN", "-A DOCKER-USER -i br-app -j RETURN\n-A DOCKER-USER -i docker0 -j RETURN")
      .replace(":DOCKWALL-PROXY - [0:0]\n", "")
      .replace(/-A DOCKWALL-PROXY .*\n/g, "");
    const d = await diff(edited);
    expect(d.code).toBe(1);
    expect(d.out).toContain("@@ ip filter FORWARD @@\n! policy ACCEPT -> DROP\n");
    expect(d.out).toContain(`\n+ ${drop}\n`);
    expect(d.out).toContain("\n- -A DOCKER-USER -s 10.9.9.9/32 -j ACCEPT\n");
    expect(d.out).toMatch(/\n~ -A DOCKER-USER -i (docker0|br-app) -j RETURN {3}\(moved from position \d to \d\)\n/);
    expect(d.out).toContain("@@ ip filter DOCKWALL-PROXY (new chain) @@\n");
    expect(d.out.trimEnd().split("\n").at(-1)).toMatch(/^dockwall diff: \d+ rules added, 1 removed, 1 moved, 1 chain added, 0 removed, 1 policy changed$/);
  });

  test("--live - reads the dump from standard input", async () => {
    const io = memoryIo({ "p.dw": policy, "-": v4 });
    expect(await run(["diff", "p.dw", "--live", "-"], io)).toBe(0);
    const io2 = memoryIo({ "p.dw": policy, "-": v4.replace(":FORWARD DROP", ":FORWARD ACCEPT") });
    expect(await run(["compile", "p.dw", "--diff", "--live", "-"], io2)).toBe(1);
  });

  test("--json and --color", async () => {
    const edited = v4.replace(":FORWARD DROP [0:0]", ":FORWARD ACCEPT [0:0]");
    const j = await diff(edited, ["--json"]);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out)).toMatchObject({ changed: true, summary: { policiesChanged: 1 }, compared: ["IPv4"] });
    const c = await diff(edited, ["--color"]);
    expect(c.out).toContain("\x1b[33m! policy ACCEPT -> DROP\x1b[0m");
  });

  test("a dump that is not iptables-save output: exit 2", async () => {
    const d = await diff("-A INPUT -j ACCEPT\n");
    expect(d.code).toBe(2);
    expect(d.err.split("\n").at(-2)).toBe("dockwall: live.v4: line 1: '-A INPUT -j ACCEPT' outside a table (a table starts with *filter, *nat, …)");
  });
});
