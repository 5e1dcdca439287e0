// `dockwall diff` against a real kernel: the normaliser is proven against what the kernel
// prints back, and each kind of change on a live host is reported as exactly that change.
import { describe, expect, test } from "vitest";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { normalise } from "../../src/live/save.js";
import { describeKernel, withScratchNetnsSync, type Netns } from "../lab/kernel.js";
import { memoryIo } from "../support/io.js";
import { ipsetCommands, parityGroups, root, skipped } from "../support/policies.js";

function captures(): { name: string; text: string; family: 4 | 6 }[] {
  const out: { name: string; text: string; family: 4 | 6 }[] = [];
  for (const group of parityGroups()) {
    const dir = join(root, "test/parity", group);
    for (const d of readdirSync(dir)) {
      if (skipped(join(dir, d))) continue;
      for (const [file, family] of [["expected.v4", 4], ["expected.v6", 6], ["expected-23.v6", 6]] as const) {
        const p = join(dir, d, file);
        if (existsSync(p)) out.push({ name: `${group}/${d}/${file}`, text: readFileSync(p, "utf8"), family });
      }
    }
  }
  return out;
}

describeKernel("the normaliser agrees with the kernel", () => {
  const back = (family: 4 | 6, text: string) =>
    withScratchNetnsSync((ns) => {
      for (const cmd of ipsetCommands(text)) expect(ns.run(cmd).status).toBe(0);
      const r = ns.restore(family, text);
      expect(r.ok, r.stderr).toBe(true);
      return ns.save(family);
    });

  test.each(captures())("captured $name", ({ text, family }) => {
    expect(normalise(back(family, text))).toBe(normalise(text));
  });

  // Every compiled policy and ferm's --lines of it: test/kernel/kernel.test.ts, on the loads it makes anyway.
});

describeKernel("dockwall diff on a live namespace", () => {
  const policyText = readFileSync(join(root, "examples/web-host.dw"), "utf8");
  const v4 = compile(policyText, { format: "iptables" }).output!;

  async function diffAgainst(ns: Netns, extra: string[] = []): Promise<{ code: number; json: any; text: string }> {
    const live = ns.save(4);
    const io = memoryIo({ "p.dw": policyText, "live.v4": live });
    const code = await run(["diff", "p.dw", "--live", "live.v4", "--json", ...extra], io);
    const io2 = memoryIo({ "p.dw": policyText, "live.v4": live });
    await run(["compile", "p.dw", "--diff", "--live", "live.v4", ...extra], io2);
    return { code, json: JSON.parse(io.out.join("")), text: io2.out.join("") };
  }

  const ipt = (ns: Netns, args: string) => {
    const r = ns.run(["iptables", ...args.split(" ")]);
    expect(r.status, r.stderr).toBe(0);
  };

  test("freshly loaded: no difference, exit 0", async () => {
    const ns = await import("../lab/kernel.js").then((k) => k.createNetns());
    try {
      expect(ns.restore(4, v4).ok).toBe(true);
      const d = await diffAgainst(ns);
      expect(d.code).toBe(0);
      expect(d.json.changed).toBe(false);
      expect(d.text).toMatch(/^dockwall diff: no changes; 0 rules added/);
    } finally {
      (await import("../lab/kernel.js")).deleteNetns(ns.name);
    }
  });

  async function scenario(mutate: (ns: Netns) => void, extra: string[] = []) {
    const k = await import("../lab/kernel.js");
    const ns = k.createNetns();
    try {
      expect(ns.restore(4, v4).ok).toBe(true);
      mutate(ns);
      return await diffAgainst(ns, extra);
    } finally {
      k.deleteNetns(ns.name);
    }
  }

  test("a deleted rule is shown as one to add", async () => {
    const d = await scenario((ns) => ipt(ns, "-D DOCKER-USER -o docker0 -j DROP"));
    expect(d.code).toBe(1);
    expect(d.json.summary).toEqual({ rulesAdded: 1, rulesRemoved: 0, rulesMoved: 0, chainsAdded: 0, chainsRemoved: 0, policiesChanged: 0 });
    expect(d.json.chains.map((c: any) => `${c.table} ${c.chain}`)).toEqual(["filter DOCKER-USER"]);
    expect(d.text).toContain("\n+ -A DOCKER-USER -o docker0 -j DROP\n");
  });

  test("an added rule is shown as one to remove", async () => {
    const d = await scenario((ns) => ipt(ns, "-I DOCKER-USER 2 -s 10.9.9.9/32 -j ACCEPT"));
    expect(d.code).toBe(1);
    expect(d.json.summary.rulesRemoved).toBe(1);
    expect(d.json.summary.rulesAdded).toBe(0);
    expect(d.text).toContain("\n- -A DOCKER-USER -s 10.9.9.9/32 -j ACCEPT\n");
  });

  test("a changed policy", async () => {
    const d = await scenario((ns) => ipt(ns, "-P FORWARD ACCEPT"));
    expect(d.code).toBe(1);
    expect(d.json.chains).toEqual([expect.objectContaining({ table: "filter", chain: "FORWARD", policy: { live: "ACCEPT", wanted: "DROP" }, lines: expect.any(Array) })]);
    expect(d.json.summary).toEqual({ rulesAdded: 0, rulesRemoved: 0, rulesMoved: 0, chainsAdded: 0, chainsRemoved: 0, policiesChanged: 1 });
    expect(d.text).toContain("! policy ACCEPT -> DROP");
  });

  test("two rules swapped: a move, not a delete plus an add", async () => {
    const d = await scenario((ns) => {
      ipt(ns, "-D DOCKER-USER -o docker0 -j DROP");
      ipt(ns, "-I DOCKER-USER 1 -o docker0 -j DROP");
    });
    expect(d.code).toBe(1);
    expect(d.json.summary).toEqual({ rulesAdded: 0, rulesRemoved: 0, rulesMoved: 1, chainsAdded: 0, chainsRemoved: 0, policiesChanged: 0 });
    expect(d.text).toMatch(/~ -A DOCKER-USER -o docker0 -j DROP {3}\(moved from position 1 to \d+\)/);
  });

  test("another tool's chain (fail2ban) is ignored, unless --all", async () => {
    const f2b = (ns: Netns) => {
      ipt(ns, "-N f2b-sshd");
      ipt(ns, "-A f2b-sshd -j RETURN");
      ipt(ns, "-I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd");
    };
    const d = await scenario(f2b);
    expect(d.code).toBe(0);
    expect(d.json.ignored).toEqual(["ip filter f2b-sshd"]);
    const all = await scenario(f2b, ["--all"]);
    expect(all.code).toBe(1);
    expect(all.json.summary.chainsRemoved).toBe(1);
    expect(all.json.summary.rulesRemoved).toBe(2);
  });

  test("a chain of another tool named on the command line is ignored too", async () => {
    const d = await scenario((ns) => {
      ipt(ns, "-N MYTOOL-in");
      ipt(ns, "-A MYTOOL-in -j RETURN");
    }, ["--ignore-chain", "MYTOOL-*"]);
    expect(d.code).toBe(0);
  });

  test("iptables on: only dockwall's chains count; Docker's chains drifting is a warning", async () => {
    const text = readFileSync(join(root, "examples/coexist.dw"), "utf8");
    const docker = compile(text.replace("iptables on;", "iptables off; published open;").replace(/host \{[\s\S]*?\n\}/, ""), { format: "iptables" }).output!;
    const ours = compile(text, { format: "iptables" }).output!;
    const k = await import("../lab/kernel.js");
    const ns = k.createNetns();
    try {
      expect(ns.restore(4, docker).ok).toBe(true);
      expect(ns.restore(4, ours, { noflush: true }).ok).toBe(true);
      const diff = async () => {
        const io = memoryIo({ "p.dw": text, "live.v4": ns.save(4) });
        const code = await run(["diff", "p.dw", "--live", "live.v4", "--json"], io);
        return { code, json: JSON.parse(io.out.join("")) };
      };
      const clean = await diff();
      expect(clean.code).toBe(0);
      expect(clean.json.warnings).toEqual([]);
      // Docker changes its own rules (an upgrade, a container that is not in the policy): not ours to diff, but said.
      ipt(ns, "-t nat -D DOCKER -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.24.0.2:9090");
      const drift = await diff();
      expect(drift.code).toBe(0);
      expect(drift.json.warnings).toHaveLength(1);
      expect(drift.json.warnings[0]).toMatch(/^Docker's own chains \(IPv4\) are not what dockerd 20\.10 writes for this policy: nat DOCKER differ \(1 rule missing, 0 unexpected, 0 moved\)/);
      // A change to DOCKER-USER is ours: exit 1.
      ipt(ns, "-D DOCKER-USER -o br-mon -j DROP");
      expect((await diff()).code).toBe(1);
    } finally {
      k.deleteNetns(ns.name);
    }
  });
});
