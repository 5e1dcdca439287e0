// Issue 22, the pure parts: what the rules say for networks dockwall has not seen, the jumps
// that must come first in chains dockwall does not own, and what diff says about them.
// (test/apply/failclosed.test.ts proves the same with a real dockerd and real connections.)
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { computeDiff } from "../../src/live/command.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { mergeForLoad } from "../../src/apply/merge.js";
import { evaluate, type Packet } from "../../src/analysis/evaluate.js";

const COEXIST = `docker { version 20.10; iptables on; }
zone wan { interface eth0; }
zone lan { interface eth1; }
zone home { interface br-lan; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
`;

/** What dockerd 20.10 writes for web (its FORWARD), with DOCKER-USER as dockwall left it. */
const DOCKERS = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
`;

const compiled = (text: string) => {
  const r = compile(text, { noRender: true });
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join("\n"));
  return r;
};

describe("coexist: a network dockwall has not seen is closed", () => {
  test("DOCKER-USER ends with bridged traffic returned, a zone's br- interface returned, every other br- interface dropped, in that order", () => {
    const v4 = compile(COEXIST, { format: "iptables" }).output!.split("\n").filter((l) => l.startsWith("-A DOCKER-USER"));
    expect(v4.slice(-5)).toEqual([
      "-A DOCKER-USER -o docker0 -j DROP",
      "-A DOCKER-USER -m physdev --physdev-is-bridged -j RETURN",
      "-A DOCKER-USER -o br-lan -j RETURN",
      "-A DOCKER-USER -o br-+ -j DROP",
      "-A DOCKER-USER -j RETURN",
    ]);
  });

  test("the evaluator: the wan into an unknown br- bridge is dropped; bridged traffic within it and traffic out of it go on to Docker's chains", () => {
    const r = compiled(COEXIST);
    // What the kernel holds once applied over Docker's own chains.
    const rs = toRuleset(parseSave(mergeForLoad(parseSave(DOCKERS), r.generated!.rulesets[4]!, { ownsInput: false }).text), 4);
    const base: Omit<Packet, "in" | "src" | "dst"> = { family: 4, proto: "tcp", dport: 80, sport: 40000, state: "NEW", local: ["198.51.100.1"], routes: [{ dst: "172.30.0.0/16", dev: "br-0123456789ab" }, { dst: "0.0.0.0/0", dev: "eth0" }] };
    const into = evaluate(rs, { ...base, in: "eth0", src: "198.51.100.2", dst: "172.30.0.2" });
    expect(into.verdict).toBe("DROP");
    expect(into.decided?.rule?.out?.value).toBe("br-+");
    const within = evaluate(rs, { ...base, in: "br-0123456789ab", src: "172.30.0.3", dst: "172.30.0.2", bridged: true });
    expect(within.decided?.rule?.out?.value).not.toBe("br-+");
  });

  test("published open is Docker's own behaviour: no catch-all", () => {
    const v4 = compile(COEXIST.replace("iptables on;", "iptables on; published open;"), { format: "iptables" }).output!;
    expect(v4).not.toContain("br-+");
  });
});

describe("jumps that must come first", () => {
  test("apply puts Docker's jump to DOCKER-USER back first in FORWARD, once, and keeps the rest as it was", () => {
    const r = compiled(COEXIST);
    const flushed = DOCKERS.replace("-A FORWARD -j DOCKER-USER\n", "").replace("-A FORWARD -o docker0 -j DOCKER\n", "-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -j DOCKER-USER\n");
    const merged = parseSave(mergeForLoad(parseSave(flushed), r.generated!.rulesets[4]!, { ownsInput: false }).text);
    expect(merged.get("filter")!.chains.get("FORWARD")!.rules.map((x) => x.text)).toEqual([
      "-A FORWARD -j DOCKER-USER",
      "-A FORWARD -o docker0 -j DOCKER",
      "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
    ]);
  });

  test("diff: a missing jump is a difference (exit 1's changed), named", () => {
    const r = compiled(COEXIST);
    const live = parseSave(DOCKERS.replace("-A FORWARD -j DOCKER-USER\n", ""));
    const d = computeDiff(r, { 4: live }, { all: false, ignore: [] });
    expect(d.changed).toBe(true);
    const fwd = d.chains.find((c) => c.chain === "FORWARD")!;
    expect(fwd.lines.filter((l) => l.kind !== "same").map((l) => `${l.kind} ${l.text}`)).toEqual(["added -A FORWARD -j DOCKER-USER"]);
  });

  test("IPv6 with ip6tables off: dockwall makes DOCKER-USER and asks for its jump (the file says how, by hand)", () => {
    const v6 = compile(COEXIST, { format: "ip6tables" }).output!;
    expect(v6).toContain("#   ip6tables -t filter -C FORWARD -j DOCKER-USER 2>/dev/null || ip6tables -t filter -I FORWARD -j DOCKER-USER\n");
    expect(v6).toContain("-A DOCKER-USER -o br-+ -j DROP\n");
    const r = compiled(COEXIST);
    // And, docker-proxy taking IPv6's published ports (no DNAT), its guard first in INPUT.
    expect(r.generated!.rulesets[6]!.firstJumps).toEqual([
      { table: "filter", chain: "FORWARD", target: "DOCKER-USER", dockerMakes: false },
      { table: "filter", chain: "INPUT", target: "DOCKWALL-PROXY" },
    ]);
    expect(r.generated!.rulesets[4]!.firstJumps).toEqual([{ table: "filter", chain: "FORWARD", target: "DOCKER-USER", dockerMakes: true }]);
    // The ferm output adds it after loading, with the tools ferm used.
    const ferm = compile(COEXIST).output!;
    expect(ferm).toMatch(/^@hook post "if command -v ip6tables-legacy >\/dev\/null; then ip6tables-legacy -t filter -C FORWARD -j DOCKER-USER 2>\/dev\/null \|\| ip6tables-legacy -t filter -I FORWARD -j DOCKER-USER; else ip6tables .*; fi";$/m);
  });

  // The random-policy fuzzer, proven with packets (matrix-live): dockerd before 23 writes ip6tables chains (ip6tables on) but
  // no IPv6 DOCKER-USER, nor a jump to one; dockwall took the jump for dockerd's, and asked for none: its IPv6 rules never ran,
  // and every IPv6 published port and container was open to all.
  test("IPv6 with ip6tables on before Docker 23 (no IPv6 DOCKER-USER of dockerd's): dockwall asks for its jump; from 23 on, dockerd makes it", () => {
    const text = (version: string) => `docker { version ${version}; iptables on; ip6tables on; }
zone lan { interface eth0; }
network n1 { bridge br-n1; subnet 172.21.0.0/24; subnet fd00:21::/64; }
container cache { network n1 172.21.0.10, fd00:21::a; publish 5000:443; }
`;
    for (const version of ["20.10"]) {
      const jumps = compiled(text(version)).generated!.rulesets[6]!.firstJumps;
      expect(jumps?.find((j) => j.target === "DOCKER-USER"), version).toEqual({ table: "filter", chain: "FORWARD", target: "DOCKER-USER", dockerMakes: false });
      expect(compile(text(version), { format: "ip6tables" }).output!).toContain("#   ip6tables -t filter -C FORWARD -j DOCKER-USER 2>/dev/null || ip6tables -t filter -I FORWARD -j DOCKER-USER\n");
      expect(compiled(text(version)).generated!.rulesets[4]!.firstJumps?.find((j) => j.target === "DOCKER-USER")?.dockerMakes, version).toBe(true);
    }
    for (const version of ["23.0", "28.5", "29.7"]) expect(compiled(text(version)).generated!.rulesets[6]!.firstJumps?.find((j) => j.target === "DOCKER-USER")?.dockerMakes, version).toBe(true);
  });

  test("diff: no drift warning about Docker's IPv6 chains when dockerd writes none (ip6tables off), nor for a FORWARD policy alone", () => {
    const r = compiled(COEXIST);
    const v6 = parseSave("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n");
    const live4 = parseSave(DOCKERS.replace(":FORWARD DROP", ":FORWARD ACCEPT"));
    const d = computeDiff(r, { 4: live4, 6: v6 }, { all: false, ignore: [] });
    expect(d.warnings.filter((w) => /Docker's own chains \(IPv6\)/.test(w))).toEqual([]);
  });

  test("diff warns that a plain iptables-restore --noflush of a host block drops fail2ban's jump in INPUT", () => {
    const r = compiled(`${COEXIST}host { allow lan tcp 22; }\n`);
    const live = parseSave(DOCKERS.replace(":DOCKER - [0:0]", ":DOCKER - [0:0]\n:f2b-sshd - [0:0]").replace("-A FORWARD -j DOCKER-USER", "-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n-A FORWARD -j DOCKER-USER"));
    const d = computeDiff(r, { 4: live }, { all: false, ignore: [] });
    expect(d.warnings).toContain(
      "IPv4 INPUT jumps to other tools' chains (f2b-sshd): 'dockwall apply' and the ferm output keep that jump, but loading the --format iptables output with iptables-restore --noflush flushes INPUT and drops it (until that tool adds it again)",
    );
  });

  test("a dump without a built-in chain (ferm --lines leaves out what it does not write): that chain is there, empty, not a new chain", () => {
    const r = compiled(`${COEXIST}host { allow lan tcp 22; }\n`);
    const d = computeDiff(r, { 4: parseSave(DOCKERS.replace(":INPUT ACCEPT [0:0]\n", "")) }, { all: false, ignore: [] });
    const input = d.chains.find((c) => c.chain === "INPUT")!;
    expect(input.status).toBe("changed");
    expect(input.policy).toEqual({ live: "ACCEPT", wanted: "DROP" });
    expect(d.chains.filter((c) => c.status === "added").map((c) => c.chain)).toEqual(["DOCKWALL-PROXY"]);
  });
});
