// Reachability in `diff -f nft` and `apply -f nft` (issue 23, item 5, on an nftables host; issue
// 24): before the tables' diff, what loading the file does to who reaches what. Proven as the
// issue asks: in the policy's world built in namespaces, with one version of a policy loaded,
// `dockwall diff` of the next version lists the cells whose verdict changes, and every cell of
// that matrix is what real connections find, IPv4 and IPv6, before the change (its `before`) and
// after it (its verdict); `apply` prints the same before it loads.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { asLoaded } from "../../src/analysis/loaded.js";
import type { MatrixCell, MatrixContext } from "../../src/analysis/matrix.js";
import { nftMatrixWalk, parseNftJson } from "../../src/analysis/nfteval.js";
import { compile } from "../../src/compile.js";
import { formatIp, readIp } from "../../src/ir/address.js";
import { describeKernel } from "../lab/kernel.js";
import { planPolicyLab, probeMatrix, startPolicyLab, type PolicyLab } from "../lab/policylab.js";

const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

const A = `docker { version 29.7; iptables off; userland-proxy off; ip6tables on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; from fd00:1::/64; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container a { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
container b { network bridge 172.17.0.3, fd00:17::3; publish 8081:80; }
allow lan to a, b;
allow wan to a:8080;
host { allow lan tcp 22; }
`;
/** The next version: the wan moved from a to b, and let in to the host's port 25. */
const B = A.replace("allow wan to a:8080;", "allow wan to b:8081;").replace("host { allow lan tcp 22; }", "host { allow lan tcp 22; allow wan tcp 25; }");

function nftWalk(lab: PolicyLab): NonNullable<MatrixContext["nft"]> {
  const w = nftMatrixWalk(parseNftJson(lab.host.run(["nft", "-j", "list", "ruleset"]).stdout));
  if ("gap" in w) throw new Error(`the ruleset's classes cannot be cut: ${w.gap}`);
  return w;
}

/** A cell by its packet and path (IPv6 addresses spelled one way: the lab's plan and \`ip\` may differ). */
const key = (c: { probe: string; path: string }) => `${c.probe.replace(/\[([0-9a-f:]+)\]/g, (_, a: string) => `[${formatIp(readIp(a)!)}]`)} (${c.path})`;

describeKernel("diff -f nft and apply -f nft: who reaches what after the change, as real connections find it before and after", () => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-nftreach-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("each changed cell, and every cell of the matrix it comes from, probed with A loaded and with B", async () => {
    expect(B).not.toBe(A);
    const r = compile(B, { noRender: true, file: "b.dw" });
    const p = r.policy!;
    const plan = planPolicyLab(p);
    const lab = await startPolicyLab(plan);
    try {
      const fileA = compile(A, { format: "nft" }).output!;
      const fileB = compile(B, { format: "nft" }).output!;
      expect(lab.host.run(["nft", "-f", "-"], fileA).stderr).toBe("");
      writeFileSync(join(dir, "b.dw"), B);
      const dockwall = (...args: string[]) => spawnSync("nsenter", [`--net=${lab.host.path}`, bin, ...args], { encoding: "utf8", env: { ...process.env, DOCKWALL_STATE_DIR: join(dir, "state") } });
      const d = dockwall("diff", join(dir, "b.dw"), "-f", "nft", "--json");
      expect(d.status, d.stderr).toBe(1);
      expect(d.stderr).not.toContain("was not worked out");
      const said = (JSON.parse(d.stdout) as { reachability: { probe: string; path: string; before: string; after: string; column: string; family: number }[] }).reachability;
      // As text, before the tables' diff.
      const text = dockwall("diff", join(dir, "b.dw"), "-f", "nft");
      expect(text.stdout.split("\n")[0]).toBe("reachability (IPv4):");
      expect(text.stdout.indexOf("reachability (IPv6):")).toBeLessThan(text.stdout.indexOf("--- live:"));

      // The matrix the diff walks: B's tables over what is loaded, each cell over A's too.
      const before = nftWalk(lab);
      expect(lab.host.run(["nft", "-f", "-"], fileB).stderr).toBe("");
      const after = nftWalk(lab);
      const rulesets = asLoaded(p, r.generated!.rulesets);
      const withB = await probeMatrix(lab, plan, p, rulesets, (c) => c.verdict === "open", after, { nftBefore: before });
      expect(lab.host.run(["nft", "-f", "-"], fileA).stderr).toBe("");
      const withA = await probeMatrix(lab, plan, p, rulesets, (c) => c.before === "open", after, { nftBefore: before });
      expect(withA.sendable.map(key)).toEqual(withB.sendable.map(key));
      const wrong: string[] = [];
      withB.sendable.forEach((c: MatrixCell, i) => {
        if (c.verdict === "unknown" || c.before === undefined || c.before === "unknown") wrong.push(`${key(c)}: unknown`);
        if ((c.verdict === "open") !== withB.open[i]) wrong.push(`${key(c)} with B: said ${c.verdict}, kernel ${withB.open[i] ? "open" : "closed"}`);
        if ((c.before === "open") !== withA.open[i]) wrong.push(`${key(c)} with A: said ${c.before}, kernel ${withA.open[i] ? "open" : "closed"}`);
      });
      expect(wrong, wrong.join("\n")).toEqual([]);
      // What the diff said: exactly the cells whose verdict changed (those a neighbour here can send, probed above).
      const changed = withB.cells.filter((c) => c.before !== c.verdict);
      const sent = new Set(withB.sendable.map(key));
      expect(said.filter((c) => sent.has(key(c))).map((c) => `${key(c)} ${c.before} -> ${c.after}`).sort()).toEqual(changed.filter((c) => sent.has(key(c))).map((c) => `${key(c)} ${c.before} -> ${c.verdict}`).sort());
      // The change itself: the wan's way to a:8080 closed, to b:8081 and the host's port 25 opened; IPv4 and IPv6.
      const what = [...new Set(said.map((c) => `${c.column} ${c.path} IPv${c.family} ${c.after}`))].sort();
      expect(what).toEqual(expect.arrayContaining(["a:8080/tcp dnat IPv4 closed", "a:8080/tcp dnat IPv6 closed", "b:8081/tcp dnat IPv4 open", "b:8081/tcp dnat IPv6 open", "host:25/tcp host IPv4 open", "host:25/tcp host IPv6 open"]));
      expect(said.filter((c) => sent.has(key(c))).length).toBeGreaterThan(5);

      // apply prints the same before it loads (standard error), and in --json.
      const applied = dockwall("apply", join(dir, "b.dw"), "-f", "nft", "--json");
      expect(applied.status, applied.stderr).toBe(0);
      expect(applied.stderr).toContain("reachability (IPv4):");
      const aj = JSON.parse(applied.stdout) as { reachability: { probe: string; path: string; before: string; after: string }[] };
      expect(aj.reachability.map((c) => `${key(c)} ${c.before} -> ${c.after}`).sort()).toEqual(said.map((c) => `${key(c)} ${c.before} -> ${c.after}`).sort());
      // Loaded now: nothing changes, nothing said.
      const again = dockwall("diff", join(dir, "b.dw"), "-f", "nft");
      expect([again.status, again.stdout.includes("reachability")]).toEqual([0, false]);
    } finally {
      await lab.stop();
    }
  }, 180_000);
});
