// The evaluator passes by the rules of a long chain that are addressed to another address or
// port (its index): the answer must be exactly the one a walk of every rule gives, the path
// (each rule that changed or decided the packet) and "unknown" included. Compared here for
// every matrix probe of the shipped policies and of a 40-container policy, for packets from
// the host, and for a chain built to trip an index: rules the walk cannot evaluate before and
// after indexed ones, address masks, negations, ranges, ports that DNAT changes.
import { describe, expect, test } from "vitest";
import { evaluate, type Packet } from "../../src/analysis/evaluate.js";
import { buildMatrix } from "../../src/analysis/matrix.js";
import { formatIp } from "../../src/model/values.js";
import { compile } from "../../src/compile.js";
import type { Ruleset } from "../../src/ir/ruleset.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { shippedPolicies } from "../lab/policylab.js";
import { policyOf } from "../../bench/generate.js";
import { probePacket } from "../support/probe.js";

function same(rs: Ruleset, pk: Packet) {
  const fast = evaluate(rs, pk, { trace: true });
  const slow = evaluate(rs, pk, { trace: true, noIndex: true });
  expect(fast, JSON.stringify(pk)).toEqual(slow);
  return fast;
}

/** Every matrix cell's packet, walked both ways. */
async function probesOf(text: string) {
  const r = await compile(text, { noRender: true });
  expect(r.ok).toBe(true);
  const families = ([4, 6] as const).filter((f) => r.generated!.rulesets[f]!.tables.length > 0);
  const m = buildMatrix({ policy: r.policy!, rulesets: r.generated!.rulesets }, families);
  const n = { cells: 0, indexed: 0 };
  const routes = r.policy!.networks.flatMap((x) => x.subnets.map((s) => ({ dst: `${formatIp(s.value)}/${s.value.prefix}`, dev: x.bridge.value })));
  // (A neighbour's packets: the rows of containers and of the host send theirs from the bridges and the host itself.)
  const neighbours = new Set(m.rows.filter((x) => x.kind === "zone" || x.kind === "other").map((x) => x.id));
  for (const c of m.cells) {
    if (!neighbours.has(c.row)) continue;
    const rs = r.generated!.rulesets[c.family]!;
    same(rs, probePacket(c.probe, c.family, ["192.0.2.1", "2001:db8:ffff::1"], routes));
    n.cells++;
    if (rs.tables.some((t) => t.chains.some((ch) => ch.rules.length >= 16))) n.indexed++;
  }
  return n;
}

describe("the index passes by only what could not match", () => {
  test.each(shippedPolicies())("%s: every matrix probe", async (_name, text) => {
    expect((await probesOf(text)).cells).toBeGreaterThan(0);
  });

  test("a 40-container policy (chains of 120 DNAT and 80 allow rules): every matrix probe", async () => {
    const n = await probesOf(policyOf({ containers: 40, hostRules: 4 }));
    expect(n.indexed).toBeGreaterThan(10_000);
    expect(n.cells).toBeGreaterThan(10_000);
  });

  test("a chain built to trip it: unknown matches, masks, negations, ranges, DNAT'd ports", () => {
    const filler = Array.from({ length: 40 }, (_, i) => `-A DOCKER-USER -d 10.0.${i}.2/32 -p tcp -m tcp --dport ${1000 + i} -j RETURN`);
    const save = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
${Array.from({ length: 30 }, (_, i) => `-A DOCKER ! -i docker0 -p tcp -m tcp --dport ${8000 + i} -j DNAT --to-destination 10.0.${i}.2:${1000 + i}`).join("\n")}
-A DOCKER -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.7.2:53
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -d 10.0.3.2/32 -j ACCEPT
${filler.slice(0, 10).join("\n")}
-A DOCKER-USER -d 10.0.6.2/32 -m recent --rcheck --name x -j ACCEPT
-A DOCKER-USER -m recent --rcheck --name y -p tcp -m tcp --dport 1020 -j ACCEPT
-A DOCKER-USER ! -d 10.0.8.2/32 -p tcp -m tcp --dport 1008 -j DROP
-A DOCKER-USER -m iprange --dst-range 10.0.9.0-10.0.9.255 -j DROP
-A DOCKER-USER -d 10.0.10.0/24 -j REJECT
-A DOCKER-USER -p tcp -m tcp ! --dport 1011 -d 10.0.11.2 -j DROP
-A DOCKER-USER -p udp -m udp --dport 1012 -j DROP
-A DOCKER-USER -d 10.0.12.2/32 -p tcp -m tcp --dport 1012 -j LOG
${filler.slice(10).join("\n")}
-A DOCKER-USER -s 198.51.100.0/255.255.0.255 -d 10.0.25.2/32 -j ACCEPT
-A DOCKER-USER -s 203.0.113.9/32 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
`;
    const rs = toRuleset(parseSave(save), 4);
    const verdicts = new Set<string>();
    for (const src of ["203.0.113.9", "198.51.100.7", "192.0.2.50"]) {
      for (let i = 0; i < 32; i++) {
        for (const [dst, dport] of [[`10.0.${i}.2`, 1000 + i], ["192.0.2.1", 8000 + i], [`10.0.${i}.2`, 9999]] as const) {
          for (const proto of ["tcp", "udp"] as const) {
            const v = same(rs, { family: 4, in: "eth0", src, dst, proto, sport: 40000, dport, state: "NEW", local: ["192.0.2.1"], routes: [{ dst: "10.0.0.0/16", dev: "docker0" }] });
            verdicts.add(v.verdict === "unknown" ? `unknown ${v.why}` : v.verdict);
          }
        }
      }
    }
    // Every kind of answer came up, the unknown ones included.
    expect([...verdicts].sort()).toEqual(["ACCEPT", "DROP", "REJECT", "unknown -m recent --rcheck", "unknown the address mask 198.51.100.0/255.255.0.255"]);
  });

  test("from the host (its source unknown: the index is not used, rules that look at the source say unknown)", async () => {
    const r = await compile(policyOf({ containers: 20, hostRules: 2 }), { noRender: true });
    const rs = r.generated!.rulesets[4]!;
    for (const dport of [10000, 10001, 10002, 10030, 1000, 22]) {
      for (const dst of ["127.0.0.1", "192.0.2.1", "10.100.0.5", "198.51.100.7"]) {
        same(rs, { family: 4, in: "lo", src: "192.0.2.1", dst, proto: "tcp", sport: 40000, dport, state: "NEW", local: ["192.0.2.1"], routes: [{ dst: "10.100.0.0/24", dev: "br-n0" }], fromHost: true, srcUnknown: dst === "198.51.100.7" });
      }
    }
  });
});

describe("a cell's verdict taken from an earlier walk that answered the same tests of the source (sameWay) is the one its own walk gives", () => {
  const both = (ctx: Parameters<typeof buildMatrix>[0], families: (4 | 6)[]) => {
    const reused = buildMatrix(ctx, families);
    const each = buildMatrix({ ...ctx, walkEach: true }, families);
    expect(reused).toEqual(each);
    return reused;
  };
  test.each(shippedPolicies())("%s: every cell", async (_name, text) => {
    const r = await compile(text, { noRender: true });
    both({ policy: r.policy!, rulesets: r.generated!.rulesets }, ([4, 6] as const).filter((f) => r.generated!.rulesets[f]!.tables.length > 0));
  });

  test("loaded rules that test the source every way the evaluator can (-s, ! -s, iprange, addrtype --src-type LOCAL), before and after a change", () => {
    const text = shippedPolicies().find(([n]) => n === "examples/web-host.dw")![1];
    const r = compile(text, { noRender: true });
    const v4 = compile(text, { format: "iptables" }).output!;
    const loaded = v4
      .replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "$1-A DOCKER-USER -m iprange --src-range 203.0.113.10-203.0.113.20 -j ACCEPT\n-A DOCKER-USER ! -s 198.51.100.0/25 -i eth0 -p tcp -m tcp --dport 8443 -j DROP\n-A DOCKER-USER -s 203.0.113.64/26 -i eth0 -j ACCEPT\n")
      .replace(/^(-A INPUT -i lo)/m, "-A INPUT -m addrtype --src-type LOCAL -j ACCEPT\n-A INPUT -s 192.168.1.0/28 -p tcp -m tcp --dport 22 -j DROP\n$1");
    expect(loaded).not.toBe(v4);
    const live = toRuleset(parseSave(loaded), 4);
    const m = both({ policy: r.policy!, rulesets: { 4: live, 6: r.generated!.rulesets[6] }, before: r.generated!.rulesets }, [4, 6]);
    // The hand-made rules tell sources apart: some cells are mismatches, and some differ from before.
    expect(m.cells.filter((c) => c.mismatch).length).toBeGreaterThan(3);
    expect(m.cells.filter((c) => c.before !== undefined && c.before !== c.verdict).length).toBeGreaterThan(3);
  });

  test("a container the loaded rules treat apart from the others of its network: its cells its own", () => {
    const r = compile(policyOf({ containers: 12, hostRules: 2 }), { noRender: true });
    const v4 = compile(policyOf({ containers: 12, hostRules: 2 }), { format: "iptables" }).output!;
    const loaded = v4.replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "$1-A DOCKER-USER -s 10.100.0.5/32 -p tcp -m tcp --dport 80 -j DROP\n");
    expect(loaded).not.toBe(v4);
    const m = both({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4), 6: r.generated!.rulesets[6] } }, [4]);
    // c3 (10.100.0.5) is a row of its own, closed where the other containers are open.
    const rows = m.rows.filter((x) => x.kind === "containers").map((x) => x.sources.join(" "));
    expect(rows).toContain("10.100.0.5/32");
    expect(m.cells.filter((c) => c.row.endsWith(":10.100.0.5") && c.verdict === "closed" && c.column.endsWith("/tcp")).length).toBeGreaterThan(5);
  });
});
