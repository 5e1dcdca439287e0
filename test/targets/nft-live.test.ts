// --format nft against real packets (issue 24, in part): on a host whose dockerd writes its own
// rules through iptables-nft, dockwall's table `inet dockwall` (loaded with nft -f) must let
// through exactly what the iptables output does in DOCKER-USER and INPUT. For every policy the
// repository ships that has `iptables on` (and, with `iptables on`, every other one that --format
// nft takes), in the policy's world built in namespaces: Docker's own rules loaded with
// iptables-restore as dockerd writes them, then the nft file; every matrix cell (the matrix of
// the iptables output: what the policy means) sent for real, IPv4 and IPv6, from a neighbour.
// The file replaces only its own table: loaded twice, and next to a table of the host's, it
// leaves the rest of the ruleset as it was.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { asLoaded } from "../../src/analysis/loaded.js";
import { compile } from "../../src/compile.js";
import { describeKernel } from "../lab/kernel.js";
import { dockersOwn, planPolicyLab, probeMatrix, shippedPolicies, startPolicyLab } from "../lab/policylab.js";

/**
 * The shipped policies with iptables on (and the others made so), then every one with iptables
 * off, for Docker 29.7 (whose nftables tables the file then holds); those --format nft refuses
 * are counted, not probed.
 */
const ON = shippedPolicies().map(([name, text]): [string, string] => [name, text.replace(/iptables off;/, "iptables on;")]);
const OFF = shippedPolicies()
  .filter(([, text]) => /iptables off;/.test(text))
  .map(([name, text]): [string, string] => [`${name} (iptables off)`, text.replace(/version [^;]+;/, "version 29.7;")]);
/**
 * A host with more containers than the shipped policies: each zone's allows to a network's
 * containers are alike rules, which --format nft writes as one rule and a set (SET_FROM or more).
 */
const LARGE = `docker { version 20.10; iptables off; userland-proxy off; ip6tables on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; from fd00:1::/64; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container a { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
container b { network bridge 172.17.0.3, fd00:17::3; publish 8081:80; }
container c { network bridge 172.17.0.4, fd00:17::4; publish 8082:80; publish 8444:443; }
container d { network bridge 172.17.0.5, fd00:17::5; publish 8083:80; }
container e { network app 172.20.0.2, fd00:20::2; publish 9090:90; }
container f { network app 172.20.0.3, fd00:20::3; publish 9091:90; }
container g { network app 172.20.0.4, fd00:20::4; publish 9092:90; }
container h { network app 172.20.0.5, fd00:20::5; publish 9093:90/udp; }
container i { network app 172.20.0.6, fd00:20::6; publish 9094:90; }
allow lan to a, b, c, d, e, f, g, h, i;
allow wan to a:8080, c:8444, e, f, g, i;
host { allow lan tcp 22; }
`;
const POLICIES = [...ON, ...OFF, ["a larger host (sets)", LARGE.replace("iptables off;", "iptables on;")], ["a larger host (sets, iptables off)", LARGE.replace("version 20.10;", "version 29.7;")]] as [string, string][];
/**
 * A table as nft lists it, a set's elements as a sorted one-line list (nft prints them in its own
 * order, wrapped), and its counters as loaded (a container's own IPv6 neighbour discovery counts
 * in Docker's ICC rule meanwhile: what made this test fail now and then).
 */
const setsSorted = (t: string) => t.replace(/counter packets \d+ bytes \d+/g, "counter packets 0 bytes 0").replace(/elements = \{ ([^}]*) \}/g, (_, e: string) => `elements = { ${e.split(",").map((x) => x.trim()).sort().join(", ")} }`);

const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

describeKernel("--format nft: dockwall's own table lets through what the iptables output does", () => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-nft-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let probed = 0;
  let opened = 0;
  let v6 = 0;
  let policies = 0;
  for (const [name, text] of POLICIES) {
    it(name, async () => {
      const nft = compile(text, { format: "nft", file: name });
      if (!nft.ok) {
        // Refused only for what it cannot do (a statement that lets traffic through DOCKER-USER), said at the statement.
        expect(nft.diagnostics.filter((d) => d.severity === "error").map((d) => d.code)).toEqual(expect.arrayContaining(["nft-format"]));
        expect(nft.diagnostics.filter((d) => d.severity === "error" && d.code !== "nft-format")).toEqual([]);
        return;
      }
      const r = compile(text, { noRender: true, file: name });
      const p = r.policy!;
      const plan = planPolicyLab(p);
      const lab = await startPolicyLab(plan);
      try {
        // iptables on: Docker's own rules, as dockerd writes them; then a table of the host's own (nftables.conf's), then dockwall's.
        // iptables off: no iptables rule at all; the file holds Docker's tables too.
        if (p.docker.iptables) {
          const own = dockersOwn(text, p);
          for (const f of [4, 6] as const) expect(lab.host.restore(f, compile(own, { format: f === 4 ? "iptables" : "ip6tables" }).output!).stderr).toBe("");
        }
        const saved = [lab.host.save(4), lab.host.save(6)];
        const hosts = "table inet host {\n\tchain input {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\ttcp dport 9 counter accept\n\t}\n}\n";
        expect(lab.host.run(["nft", "-f", "-"], hosts).stderr).toBe("");
        for (let i = 0; i < 2; i++) expect(lab.host.run(["nft", "-f", "-"], nft.output!).stderr).toBe("");
        // Nothing written into iptables, the host's table untouched, dockwall's table there once.
        expect([lab.host.save(4), lab.host.save(6)]).toEqual(saved);
        const ruleset = lab.host.run(["nft", "list", "ruleset"]).stdout;
        expect(ruleset).toContain("table inet host {\n\tchain input {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\ttcp dport 9 counter packets 0 bytes 0 accept\n");
        expect(ruleset.match(/^table inet dockwall \{$/gm)).toHaveLength(1);
        if (!p.docker.iptables) expect(ruleset.match(/^table ip6? docker-bridges \{$/gm)?.length).toBeGreaterThanOrEqual(1);
        // dockwall diff -f nft (as a user runs it): nothing to change now; a hand-made accept in dockwall's table is found, in its chain.
        const file = join(dir, "policy.dw");
        writeFileSync(file, text);
        const diff = () => spawnSync("nsenter", [`--net=${lab.host.path}`, bin, "diff", file, "-f", "nft"], { encoding: "utf8" });
        const clean = diff();
        expect([clean.status, clean.stdout.split("\n").at(-2)], clean.stderr).toEqual([0, expect.stringMatching(/^dockwall diff: no changes; /)]);
        const first = /^\tchain (\S+) \{$/m.exec(nft.output!.slice(nft.output!.indexOf("table inet dockwall {")))![1]!;
        expect(lab.host.run(["nft", "insert", "rule", "inet", "dockwall", first, "ip", "saddr", "203.0.113.0/24", "accept"]).stderr).toBe("");
        const drift = diff();
        expect(drift.status).toBe(1);
        expect(drift.stdout).toContain(`@@ inet dockwall chain ${first} @@\n- ip saddr 203.0.113.0/24 accept\n`);
        expect(lab.host.run(["nft", "-f", "-"], nft.output!).stderr).toBe("");
        // Each table as nft lists it back, exactly: the file is written in nft's own form (what diff compares).
        for (const block of nft.output!.match(/^table \S+ \S+ \{$[\s\S]*?^\}$/gm) ?? []) {
          const [, family, table] = /^table (\S+) (\S+)/.exec(block)!;
          expect(setsSorted(lab.host.run(["nft", "list", "table", family!, table!]).stdout)).toBe(setsSorted(`${block}\n`));
        }

        // Every cell a neighbour here can send, sent for real, against the matrix of the iptables output (what the policy means).
        // (The neighbours' cells: the containers' and the host's are sent in test/analysis/matrix-live.test.ts and nft-live-analysis.test.ts.)
        const { cells: all, sendable, open } = await probeMatrix(lab, plan, p, asLoaded(p, r.generated!.rulesets), (c) => c.verdict === "open", undefined, {}, { neighboursOnly: true });
        expect(sendable.length).toBeGreaterThanOrEqual(all.filter((c) => / in \S+$/.test(c.probe)).length / 3);
        const kernel = open.map((o) => ({ open: o }));
        const wrong = sendable.filter((c, i) => c.verdict === "unknown" || (c.verdict === "open") !== kernel[i]!.open).map((c) => `${c.probe} (${c.path}): iptables output ${c.verdict}, nft ${kernel[sendable.indexOf(c)]!.open ? "open" : "closed"}`);
        console.log(`${name} (nft): ${sendable.length} of ${all.length} cells probed (${sendable.filter((c) => c.verdict === "open").length} open, ${sendable.filter((c) => c.family === 6).length} IPv6)${wrong.length ? `; ${wrong.length} differ` : ", all as the iptables output"}`);
        expect(wrong, wrong.join("\n")).toEqual([]);
        probed += sendable.length;
        opened += sendable.filter((c) => c.verdict === "open").length;
        v6 += sendable.filter((c) => c.family === 6).length;
        policies++;
        // Sets, IPv4 and IPv6: the lan's allows on each network, and the wan's on app.
        if (name.startsWith("a larger host")) for (const set of ["docker-user-ip-1", "docker-user-ip-2", "docker-user-ip-3", "docker-user-ip6-1", "docker-user-ip6-2", "docker-user-ip6-3"]) expect(nft.output!).toMatch(new RegExp(`^\\t\\t.* @${set} (ct status dnat )?return$`, "m"));
      } finally {
        await lab.stop();
      }
    }, 120_000);
  }
  it("probed in all: several policies, open and closed cells, IPv4 and IPv6, with iptables on and off", () => {
    expect(policies).toBeGreaterThanOrEqual(5 + OFF.length - 2);
    expect(probed).toBeGreaterThan(100);
    expect(opened).toBeGreaterThan(15);
    expect(v6).toBeGreaterThan(10);
  });
});
