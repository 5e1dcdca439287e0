// The kernel judges our output: every compiled policy loads with iptables-restore in a
// throwaway namespace, and ferm's compilation of our ferm.conf loads to exactly the same
// state as our iptables-restore output. What the kernel prints back is, to `dockwall diff`'s
// normaliser, what was loaded (diff.test.ts proves the same for the captures of real dockerds):
// checked on the same loads, not on loads of their own.
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { describeKernel, fermCompile, fermRestoreTool, normalizeSave, withScratchNetnsSync, type Family, type Netns } from "../lab/kernel.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allPolicies, ipsetCommands, root } from "../support/policies.js";
import { canonicalSave, undeclaredLeftOut } from "../support/save.js";
import { normalise } from "../../src/live/save.js";

const policies = allPolicies();

function out(text: string, format: "ferm" | "iptables" | "ip6tables"): string {
  const r = compile(text, { format });
  if (!r.ok) throw new Error(`does not compile: ${r.diagnostics.map((d) => d.message).join("; ")}`);
  return r.output!;
}

/** Docker's own chains for a policy, as dockerd would write them with iptables on. */
function dockerSeed(text: string, family: Family): string {
  const asOff = text.replace(/iptables\s+(on|yes)\s*;/, "iptables off; published open;").replace(/host\s*\{[\s\S]*?\n\}/, "");
  return out(asOff, family === 4 ? "iptables" : "ip6tables");
}

const coexisting = (text: string) => /\biptables\s+(on|yes)\s*;/.test(text);

describeKernel("kernel", () => {
  // What the kernel holds after the iptables output is loaded, per policy and family: the ferm test
  // compares with the load the first tests made (it loads again only when run without them).
  const loaded = new Map<string, string>();
  describe.each(policies)("$name", ({ name, text }) => {
    for (const family of [4, 6] as const) {
      test(`iptables-restore loads the IPv${family} output`, () => {
        const rules = out(text, family === 4 ? "iptables" : "ip6tables");
        withScratchNetnsSync((ns) => {
          for (const cmd of ipsetCommands(rules)) expect(ns.run(cmd).status).toBe(0);
          if (coexisting(text)) {
            const seed = dockerSeed(text, family);
            const s = ns.restore(family, seed);
            expect(s.ok, s.stderr).toBe(true);
            const before = ns.save(family);
            const r = ns.restore(family, rules, { noflush: true });
            expect(r.ok, r.stderr).toBe(true);
            // Loading twice gives the same state (the deploy is repeatable).
            const once = ns.save(family);
            expect(ns.restore(family, rules, { noflush: true }).ok).toBe(true);
            expect(ns.save(family)).toBe(once);
            loaded.set(`${name} ${family}`, once);
            // Docker's chains are untouched.
            const owned = ["DOCKER-USER", "DOCKWALL-PROXY", "INPUT"];
            expect(canonicalSave(once, owned)).toEqual(canonicalSave(before, owned));
          } else {
            const r = ns.restore(family, rules);
            expect(r.ok, r.stderr).toBe(true);
            // What the kernel prints back is what we wrote (modulo per-port run order)…
            const saved = ns.save(family);
            loaded.set(`${name} ${family}`, saved);
            expect(canonicalSave(saved)).toEqual(canonicalSave(rules));
            // …and `dockwall diff` reads the two as the same rules.
            expect(normalise(saved)).toBe(normalise(rules));
          }
        });
      });
    }

    test("ferm.conf compiles with ferm to the same kernel state as the iptables output (and ferm's --lines, long options in its own order, normalise as the kernel prints them)", () => {
      const ferm = out(text, "ferm");
      const seeds = coexisting(text) ? { v4: dockerSeed(text, 4), v6: dockerSeed(text, 6) } : undefined;
      const ours = { 4: out(text, "iptables"), 6: out(text, "ip6tables") };
      // Without Docker's rules to seed, ferm (--noexec) and both families' loads share one namespace: each family's tables are
      // its own, and each load is a full restore of the tables it names. With a seed (loaded with the legacy tools, which ferm
      // reads), each in a namespace of its own.
      const compare = (shared: Netns | undefined) => {
        const compiled = fermCompile(ferm, shared ? { ns: shared } : { seed: seeds });
        expect(compiled.ok, compiled.stderr).toBe(true);
        for (const family of [4, 6] as const) {
          const fromFerm = family === 4 ? compiled.v4 : compiled.v6;
          const seed = seeds?.[family === 4 ? "v4" : "v6"];
          const viaIptables = loaded.get(`${name} ${family}`) ?? withScratchNetnsSync((ns) => {
            for (const cmd of ipsetCommands(ours[family])) expect(ns.run(cmd).status).toBe(0);
            if (seed) expect(ns.restore(family, seed).ok).toBe(true);
            const r = ns.restore(family, ours[family], { noflush: Boolean(seed) });
            expect(r.ok, r.stderr).toBe(true);
            return ns.save(family);
          });
          const load = (ns: Netns) => {
            for (const cmd of ipsetCommands(ours[family])) expect(ns.run(cmd).status).toBe(0);
            if (seed) expect(ns.restore(family, seed).ok).toBe(true);
            if (fromFerm.trim()) {
              const r = ns.restore(family, fromFerm);
              expect(r.ok, r.stderr).toBe(true);
              if (!seed) expect(normalise(undeclaredLeftOut(ns.save(family), fromFerm))).toBe(normalise(fromFerm));
            }
            return ns.save(family);
          };
          const viaFerm = shared ? load(shared) : withScratchNetnsSync(load);
          expect(canonicalSave(viaFerm)).toEqual(canonicalSave(viaIptables));
        }
      };
      if (seeds) compare(undefined);
      else withScratchNetnsSync((ns) => compare(ns));
    });
  });
});

describeKernel("iptables on, over rules a real dockerd wrote", () => {
  // The corpus capture of dockerd 20.10.24 (three networks, a publishing container on each).
  const captured = readFileSync(join(root, "test/parity/corpus/isolation/expected.v4"), "utf8");
  const policy = readFileSync(join(root, "test/parity/corpus/isolation/policy.dw"), "utf8")
    .replace("iptables off;", "iptables on;")
    .replace("published open;", "")
    .concat("\nzone lan { interface eth1; }\nallow lan to d1:8080, b1:8082;\nhost { allow lan tcp 22; }\n");

  test("only DOCKER-USER, INPUT and DOCKWALL-PROXY change; Docker's chains stay exactly as dockerd wrote them", () => {
    const ours = out(policy, "iptables");
    withScratchNetnsSync((ns) => {
      expect(ns.restore(4, captured).ok).toBe(true);
      const before = ns.save(4);
      const r = ns.restore(4, ours, { noflush: true });
      expect(r.ok, r.stderr).toBe(true);
      const after = ns.save(4);
      expect(canonicalSave(after, ["DOCKER-USER", "INPUT", "DOCKWALL-PROXY"])).toEqual(canonicalSave(before, ["DOCKER-USER", "INPUT", "DOCKWALL-PROXY"]));
      expect(canonicalSave(after, ["DOCKER-USER", "INPUT", "DOCKWALL-PROXY"])).toEqual(canonicalSave(captured, ["DOCKER-USER", "INPUT", "DOCKWALL-PROXY"]));
      expect(after).toContain("-A DOCKER-USER -d 172.17.0.2/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN");
      expect(after).toContain(":INPUT DROP");
    });
  });
});

describeKernel("iptables on, FORWARD's policy ACCEPT (forwarding was on before dockerd started)", () => {
  // dockerd 20.10.24's rules as it wrote them, but for the policy it leaves when forwarding was already on.
  const captured = readFileSync(join(root, "test/parity/corpus/isolation/expected.v4"), "utf8").replace(":FORWARD DROP [0:0]", ":FORWARD ACCEPT [0:0]");
  const policy = readFileSync(join(root, "test/parity/corpus/isolation/policy.dw"), "utf8").replace("iptables off;", "iptables on;").replace("published open;", "").concat("\nzone lan { interface eth1; }\nallow lan to d1:8080;\n");
  const forward = (save: string) => save.split("\n").filter((l) => l.startsWith("-A FORWARD "));

  test("the iptables output sets it to DROP, and dockerd's rules in FORWARD stay as they are", () => {
    withScratchNetnsSync((ns) => {
      expect(captured).toContain(":FORWARD ACCEPT [0:0]");
      expect(ns.restore(4, captured).ok).toBe(true);
      const before = ns.save(4);
      const r = ns.restore(4, out(policy, "iptables"), { noflush: true });
      expect(r.ok, r.stderr).toBe(true);
      const after = ns.save(4);
      expect(after).toContain(":FORWARD DROP [0:0]");
      expect(forward(after)).toEqual(forward(before));
      expect(forward(after).length).toBeGreaterThan(4);
    });
  });

  test("ferm loads the ferm.conf and its hook sets it to DROP, dockerd's rules in FORWARD kept", () => {
    const dir = mkdtempSync(join(tmpdir(), "dockwall-ferm-fwd-"));
    try {
      const file = join(dir, "ferm.conf");
      writeFileSync(file, out(policy, "ferm"));
      withScratchNetnsSync((ns) => {
        const tool = fermRestoreTool(4);
        expect(ns.run([tool], captured).status).toBe(0);
        const save = () => normalizeSave(ns.run([tool.replace("-restore", "-save")]).stdout);
        const before = save();
        const r = ns.run(["ferm", file]);
        expect(r.status, r.stderr).toBe(0);
        const after = save();
        expect(before).toContain(":FORWARD ACCEPT [0:0]");
        expect(after).toContain(":FORWARD DROP [0:0]");
        expect(forward(after)).toEqual(forward(before));
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
