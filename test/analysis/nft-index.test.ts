// The nftables evaluator's index (nfteval.ts ChainIndex: a long chain's rules passed by when they
// require another destination address or port) and the matrix's reuse of nftables walks
// (NftRecord: a walk's tests of the source, sameWay), each held to what it stands in for. The
// rulesets are loaded with nft in a scratch network namespace (unshare --net) and listed back with
// `nft -j`, as verify and diff read them. The index against a walk of every rule: the same
// verdict, path, steps and reply, "unknown" included, for
// - every matrix probe of every shipped policy that compiles with --format nft, and of a
//   40-container policy (chains of 120 DNAT, 120 forward and 120 allow rules);
// - a table built to trip an index: matches the walk cannot tell before and after an indexed
//   address, negations, prefixes, ranges, sets, a jump, ports a DNAT changes.
// The reuse against a matrix with every cell walked on its own (walkEach), with hand-made rules
// that read the source every way the classes follow: prefixes, ranges, sets, a verdict map,
// fib saddr type local, ct original ip saddr; before and after a change.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { nftScratch } from "../../src/analysis/command.js";
import { buildMatrix, type MatrixContext } from "../../src/analysis/matrix.js";
import { evaluateNft, nftMatrixWalk, type NftRuleset } from "../../src/analysis/nfteval.js";
import { compile } from "../../src/compile.js";
import type { Ruleset } from "../../src/ir/ruleset.js";
import { gatewayOf } from "../../src/model/derive.js";
import type { Policy } from "../../src/model/types.js";
import { formatIp, type Family } from "../../src/model/values.js";
import { policyOf } from "../../bench/generate.js";
import { describeKernel } from "../lab/kernel.js";
import { shippedPolicies } from "../lab/policylab.js";
import { probePacket } from "../support/probe.js";

const run = (cmd: string, args: string[], input?: string): string => {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

/** nft text loaded alone in a scratch namespace, as nft lists it back. */
function loaded(text: string): NftRuleset {
  const rs = nftScratch(run, text, "the ruleset");
  if (typeof rs === "string") throw new Error(rs);
  return rs;
}

/** The policy compiled with --format nft: as it is, or with `iptables off` for Docker 29.7 (whose tables that writes). */
function compiled(text: string): { p: Policy; nft: string } | undefined {
  for (const t of [text, text.replace(/version [^;]+;/, "version 29.7;")]) {
    const r = compile(t, { format: "nft" });
    if (r.ok) return { p: compile(t, { noRender: true, format: "nft" }).policy!, nft: r.output! };
  }
  return undefined;
}

const families: Family[] = [4, 6];
const empty = (family: Family): Ruleset => ({ family, tables: [], scope: "owned" });
const context = (p: Policy, nft: NftRuleset, before?: NftRuleset, host?: MatrixContext["host"]): MatrixContext => {
  const walk = nftMatrixWalk(nft);
  if ("gap" in walk) throw new Error(walk.gap);
  const was = before && nftMatrixWalk(before);
  if (was && "gap" in was) throw new Error(was.gap);
  return { policy: p, rulesets: { 4: empty(4), 6: empty(6) }, nft: walk, ...(was ? { nftBefore: was } : {}), otherPorts: true, ...(host ? { host } : {}) };
};
/** A host as verify reads it: an address on each interface and bridge (a published port's cells walk each class of them), their routes. */
const HOST: MatrixContext["host"] = {
  addresses: ["198.51.100.1", "192.168.1.1", "10.100.0.1", "10.101.0.1", "127.0.0.1", "2001:db8:1::1", "::1"],
  routes: [
    { dst: "198.51.100.0/24", dev: "eth0" },
    { dst: "192.168.1.0/24", dev: "eth1" },
    { dst: "10.100.0.0/24", dev: "br-n0" },
    { dst: "10.101.0.0/24", dev: "br-n1" },
    { dst: "2001:db8:1::/64", dev: "eth0" },
  ],
  interfaces: ["lo", "eth0", "eth1", "br-n0", "br-n1"],
};

/** A packet walked through the index and through every rule: the same answer, path and reply. */
function same(rs: NftRuleset, pk: Parameters<typeof evaluateNft>[1]) {
  const fast = evaluateNft(rs, pk, { trace: true, replies: true });
  const slow = evaluateNft(rs, pk, { trace: true, replies: true, noIndex: true });
  expect(fast, JSON.stringify(pk)).toEqual(slow);
  return fast;
}

/** Every probe of the policy's matrix over its compiled nft file, walked both ways; how many met a long chain. */
function probesOf(text: string): { cells: number; long: number } | undefined {
  const c = compiled(text);
  if (!c) return undefined;
  const rs = loaded(c.nft);
  const m = buildMatrix(context(c.p, rs), families);
  const long = rs.tables.some((t) => [...t.chains.values()].some((ch) => ch.rules.length >= 16));
  const local = ["192.0.2.1", "2001:db8:ffff::1", ...c.p.networks.flatMap((n) => families.flatMap((f) => (gatewayOf(n, f) ? [formatIp(gatewayOf(n, f)!)] : [])))];
  const routes = c.p.networks.flatMap((x) => x.subnets.map((s) => ({ dst: `${formatIp(s.value)}/${s.value.prefix}`, dev: x.bridge.value })));
  const neighbours = new Set(m.rows.filter((x) => x.kind === "zone" || x.kind === "other").map((x) => x.id));
  let cells = 0;
  for (const cell of m.cells) {
    if (!neighbours.has(cell.row)) continue;
    same(rs, probePacket(cell.probe, cell.family, local, routes));
    cells++;
  }
  return { cells, long: long ? cells : 0 };
}

describeKernel("nftables: a long chain's index passes by only what could not match", () => {
  test("every shipped policy that compiles with --format nft: every matrix probe", () => {
    const done = shippedPolicies().map(([name, text]) => [name, probesOf(text)] as const).filter(([, n]) => n !== undefined);
    expect(done.length).toBeGreaterThan(5);
    expect(done.every(([, n]) => n!.cells > 0)).toBe(true);
  }, 120_000);

  test("a 40-container policy (chains of 120 DNAT, forward and allow rules), iptables off: every matrix probe", () => {
    const n = probesOf(policyOf({ containers: 40, hostRules: 4 }).replace("version 20.10;", "version 29.7;"))!;
    expect(n.long).toBeGreaterThan(5_000);
  }, 120_000);

  test("a table built to trip it: unknown matches before and after an address, negations, prefixes, ranges, sets, a jump, ports a DNAT changes", () => {
    const filler = (i: number) => `ip daddr 10.0.${i}.2 tcp dport ${1000 + i} return`;
    const text = `table inet trip {
	chain trip-pre {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump dnats
	}
	chain dnats {
${Array.from({ length: 30 }, (_, i) => `		iifname != "docker0" tcp dport ${8000 + i} dnat ip to 10.0.${i}.2:${1000 + i}`).join("\n")}
		udp dport 53 dnat ip to 10.0.7.2:53
	}
	chain trip-fwd {
		type filter hook forward priority filter; policy drop;
		jump user
		ip daddr 10.0.3.2 accept
		ct state established,related accept
		ip daddr 10.0.0.0/16 accept
	}
	chain deeper {
		tcp dport 1013 drop
		reject
	}
	chain user {
${Array.from({ length: 10 }, (_, i) => `		${filler(i)}`).join("\n")}
		ip daddr 10.0.6.2 ct mark 0x00000001 accept
		tcp dport 1020 ct mark 0x00000002 accept
		ip daddr != 10.0.8.2 tcp dport 1008 drop
		ip daddr 10.0.9.0-10.0.9.255 drop
		ip daddr 10.0.10.0/24 reject
		tcp dport != 1011 ip daddr 10.0.11.2 drop
		udp dport 1012 drop
		ip daddr 10.0.12.2 tcp dport 1012 log
		ip daddr 10.0.13.2 jump deeper
		oifname "docker0" ip saddr { 203.0.113.0/28, 198.51.100.0-198.51.100.9 } ip daddr 10.0.14.2 drop
		th dport 1015 ip daddr 10.0.15.2 drop
		ct state new ip daddr 10.0.16.2 drop
${Array.from({ length: 20 }, (_, i) => `		${filler(i + 10)}`).join("\n")}
		ip saddr & 255.255.0.255 == 198.51.100.0 ip daddr 10.0.25.2 accept
		ip saddr 203.0.113.9 drop
		ct mark 0x00000003 ip daddr 10.0.17.2 accept
		meta mark 0x00000004 ip daddr 10.0.18.2 drop
		meta mark 0x00000000 ip daddr 10.0.19.2 tcp dport 1019 reject
		return
	}
}
`;
    const rs = loaded(text);
    expect([...rs.tables[0]!.chains.values()].filter((c) => c.rules.length >= 16).map((c) => c.name).sort()).toEqual(["dnats", "user"]);
    const verdicts = new Set<string>();
    for (const src of ["203.0.113.9", "203.0.113.3", "198.51.100.7", "192.0.2.50"]) {
      for (let i = 0; i < 32; i++) {
        for (const [dst, dport] of [[`10.0.${i}.2`, 1000 + i], ["192.0.2.1", 8000 + i], [`10.0.${i}.2`, 9999], ["192.0.2.1", 53]] as const) {
          for (const proto of ["tcp", "udp"] as const) {
            const v = same(rs, { family: 4, in: "eth0", src, dst, proto, sport: 40000, dport, state: "NEW", local: ["192.0.2.1"], routes: [{ dst: "10.0.0.0/16", dev: "docker0" }] });
            verdicts.add(v.verdict === "unknown" ? `unknown ${v.why!.replace(/, in .*/, "")}` : v.verdict);
          }
        }
      }
    }
    // Every kind of answer came up, the unknown ones included.
    expect([...verdicts].sort()).toEqual(["ACCEPT", "DROP", "REJECT", "unknown ct mark", "unknown its reply: ct mark"]);
  }, 60_000);
});

describeKernel("nftables: a file loaded alone in a scratch namespace", () => {
  test("a table made dormant in a file it includes is dormant (a review: only a file that said 'dormant' itself was listed as text)", () => {
    const dir = mkdtempSync(join(tmpdir(), "dockwall-incl-"));
    try {
      writeFileSync(join(dir, "dz.nft"), "table ip dz {\n\tflags dormant\n\tchain i {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n}\n");
      const rs = loaded(`include "${join(dir, "dz.nft")}"\n`);
      expect(rs.tables.find((t) => t.name === "dz")?.dormant).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeKernel("nftables: a cell's verdict taken from an earlier walk that answered the same tests of the source is the one its own walk gives", () => {
  const both = (ctx: MatrixContext) => {
    const reused = buildMatrix(ctx, families);
    const each = buildMatrix({ ...ctx, walkEach: true }, families);
    expect(reused).toEqual(each);
    return reused;
  };

  test("every shipped policy that compiles with --format nft: every cell", () => {
    let n = 0;
    for (const [, text] of shippedPolicies()) {
      const c = compiled(text);
      if (!c) continue;
      both(context(c.p, loaded(c.nft)));
      n++;
    }
    expect(n).toBeGreaterThan(5);
  }, 120_000);

  test("hand-made rules that read the source every way the classes follow, before and after a change", () => {
    // (And two containers that publish nothing, one of them treated apart: no hairpin of their own sets them apart already.)
    const c = compiled(`${policyOf({ containers: 12, hostRules: 4 }).replace("version 20.10;", "version 29.7;")}container q1 { network net0 10.100.0.200; }\ncontainer q2 { network net0 10.100.0.201; }\n`)!;
    const hand = `table inet hand {
	map who {
		type ipv4_addr : verdict
		flags interval
		elements = { 192.168.3.0/24 : accept, 198.51.100.77 : drop }
	}
	chain hand-fwd {
		type filter hook forward priority filter - 5; policy accept;
		ip saddr { 192.168.7.0/24, 198.51.100.200-198.51.100.220 } ip daddr 10.100.0.5 drop
		ip saddr vmap @who
		ct original ip saddr 203.0.113.0/26 ip daddr 10.100.0.6 drop
		ip saddr 10.100.0.5 tcp dport 80 drop
		ip saddr 10.100.0.201 tcp dport 443 drop
	}
	chain hand-in {
		type filter hook input priority filter - 5; policy accept;
		fib saddr type local tcp dport 1003 accept
		ip saddr 192.168.9.0/24 tcp dport 1001 drop
		ip6 saddr fd00:1::/64 drop
	}
}
`;
    // (And returns put into dockwall's chain of allows, which open what it would drop.)
    // (The first, before the accept of replies, drops those that come back to c4 from a port 443: a test of the source made by a reply.)
    const opened = c.nft.replace("chain docker-user-ip {\n\t\tct state established,related accept\n", (m) => `${m.replace("\t\tct state", "\t\tip daddr 10.100.0.6 tcp sport 443 drop\n\t\tct state")}\t\tip saddr 198.51.100.0/28 return\n\t\tip saddr vmap { 192.168.3.0/24 : return, 198.51.100.77 : drop }\n\t\tct original ip saddr 203.0.113.64/26 ip daddr 10.100.0.4 return\n`);
    expect(opened).not.toBe(c.nft);
    const after = loaded(c.nft);
    const before = loaded(opened + hand);
    // The rules before (hand-made ones beside) tell sources apart: some cells differ.
    const m = both(context(c.p, after, before));
    expect(m.cells.filter((x) => x.before !== undefined && x.before !== x.verdict).length).toBeGreaterThan(5);
    const m2 = both(context(c.p, before));
    // With the host's addresses, as verify reads them: a cell of a published port walks each class of them, each reused alike.
    expect(both(context(c.p, before, undefined, HOST)).cells.length).toBeGreaterThan(m2.cells.length);
    // (And where no rule tests a source port, each of those addresses with its own settling walk: without the drop by port 443.)
    const noPort = loaded(opened.replace("\t\tip daddr 10.100.0.6 tcp sport 443 drop\n", "") + hand);
    const m3 = both(context(c.p, noPort, undefined, HOST));
    expect(m3.cells.filter((x) => x.mismatch && x.path === "dnat").length).toBeGreaterThan(10);
    // A walk that notes no tests (one a caller made, not the evaluator's own with its record) is never taken for one that
    // tests nothing: the same cells.
    const bare = context(c.p, before);
    const own = bare.nft!;
    expect(buildMatrix({ ...bare, nft: { ...own, walk: (pk) => own.walk(pk), docker: own.docker && ((pk) => own.docker!(pk)) } }, families)).toEqual(m2);
    expect(m2.cells.filter((x) => x.mismatch).length).toBeGreaterThan(10);
    // The containers the hand-made rules treat apart: c3 (10.100.0.5, to port 80), q2 (10.100.0.201, to port 443), c4 (10.100.0.6,
    // its replies from port 443): rows apart from their network's others, closed where those are open.
    const rowOf = (addr: string) => m2.rows.find((x) => x.kind === "containers" && x.sources.includes(`${addr}/32`))!.id;
    const closed = (addr: string) => m2.cells.filter((x) => x.row === rowOf(addr) && x.verdict === "closed" && x.column.endsWith("/tcp")).length;
    expect(new Set(["10.100.0.2", "10.100.0.5", "10.100.0.6"].map(rowOf)).size).toBe(3);
    expect(rowOf("10.100.0.201")).toBe(rowOf("10.100.0.6"));
    expect(closed("10.100.0.5")).toBeGreaterThan(closed("10.100.0.2") + 5);
    expect(closed("10.100.0.6")).toBeGreaterThan(closed("10.100.0.2") + 5);
  }, 120_000);

  test("hand-made rules that read the host's address a packet was sent to, every way: each of its addresses goes its own way where they do", () => {
    // A cell of a published port (or a service of the host's) walks each class of the host's addresses until one is open; a
    // walk to one is taken for another only where that one answers every test of the address the walk made alike (NftRecord's
    // dests). Each rule here opens (or keeps closed) a cell through one of the host's addresses but not the first walked.
    const c = compiled(policyOf({ containers: 12, hostRules: 4 }).replace("version 20.10;", "version 29.7;"))!;
    const long = Array.from({ length: 17 }, (_, i) => `\t\tip daddr 172.31.0.${i + 1} tcp dport 1003 accept\n`).join("");
    const opened = c.nft
      // To the host: by address, in a set, a prefix, and through a long chain's index by address.
      .replace('chain input-ip {\n\t\tiifname "lo" accept comment "dockwall"\n', (m) => `${m}\t\tip daddr 10.100.0.1 tcp dport 1001 accept\n\t\tip daddr { 172.30.0.1, 10.101.0.1 } udp dport 1001 accept\n\t\tip daddr 10.100.0.0/30 tcp dport 1002 accept\n\t\ttcp dport 1003 jump hand-long\n`)
      .replace("\tchain input-ip {\n", `\tchain hand-long {\n${long}\t\tip daddr 10.101.0.1 tcp dport 1003 accept\n\t}\n\n\tchain input-ip {\n`)
      // IPv6 too: to the host's second IPv6 address only.
      .replace('chain input-ip6 {\n\t\tiifname "lo" accept comment "dockwall"\n', (m) => `${m}\t\tip6 daddr 2001:db8:2::1 tcp dport 1001 accept\n`)
      // Through to the containers, by the address the connection was first sent to.
      .replace("chain docker-user-ip {\n\t\tct state established,related accept\n", (m) => `${m}\t\tct original ip daddr 10.100.0.1 tcp dport 80 return\n`);
    expect(opened.match(/hand-long|ct original ip daddr 10\.100\.0\.1|10\.100\.0\.0\/30|2001:db8:2::1/g)).toHaveLength(5);
    // The replies of the host's service on port 1000 from one of its addresses dropped (a drop in any table is final).
    const hand = `table inet hand {
	chain hand-out {
		type filter hook output priority filter - 5; policy accept;
		ip saddr 198.51.100.1 tcp sport 1000 drop
	}
}
`;
    // (A host with two IPv6 addresses of its own, the second on the lan.)
    const host: MatrixContext["host"] = { ...HOST!, addresses: [...HOST!.addresses, "2001:db8:2::1"], routes: [...HOST!.routes, { dst: "2001:db8:2::/64", dev: "eth1" }] };
    const m = both(context(c.p, loaded(opened + hand), undefined, host));
    // Open through an address other than the first a row walks, for each rule: what the tests of the address decide.
    const through = (col: string, addr: string) => m.cells.some((x) => x.column === col && x.verdict === "open" && x.mismatch && x.probe.includes(` -> ${addr}:`));
    expect(through("host:1001/tcp", "10.100.0.1")).toBe(true);
    expect(through("host:1001/udp", "10.101.0.1")).toBe(true);
    expect(through("host:1002/tcp", "10.100.0.1")).toBe(true);
    expect(through("host:1003/tcp", "10.101.0.1")).toBe(true);
    expect(through("c0:10000/tcp", "10.100.0.1")).toBe(true);
    expect(through("host:1001/tcp", "[2001:db8:2::1]")).toBe(true);
    // The admins' connections to port 1000 closed through 198.51.100.1 only: open through the others, from the wan too.
    expect(m.cells.some((x) => x.column === "host:1000/tcp" && x.verdict === "open" && x.probe.endsWith("in eth0") && !x.probe.includes("-> 198.51.100.1:"))).toBe(true);
    // A destination read through a mask (not a prefix: nft lists a prefix's mask as the prefix) is no range: the replies to the
    // sources it holds would be told apart where no row is cut, so there is no matrix rather than a guess (before, silently no cut).
    const masked = nftMatrixWalk(loaded(opened.replace("\t\tip daddr 10.100.0.0/30 tcp dport 1002 accept\n", "\t\tip daddr & 255.0.255.255 == 10.0.0.1 tcp dport 1002 accept\n")));
    expect("gap" in masked && masked.gap).toMatch(/^ip daddr read another way, in inet dockwall input-ip rule handle \d+: ip daddr & 255\.0\.255\.255 == 10\.0\.0\.1 tcp dport 1002 accept$/);
  }, 120_000);

  test("before and after a change, a chain of one name addressed to different containers' replies: each container its own cells (a review)", () => {
    // The rules before drop the replies to q1 (10.101.0.200) from port 443, the rules now those to c4: q0 and q1 are alike
    // now, not before. A review found them one class: the test "none of these" of each ruleset's chain, taken for one.
    const text = `${policyOf({ containers: 12, hostRules: 4 }).replace("version 20.10;", "version 29.7;")}network net1 { bridge br-n1; subnet 10.101.0.0/24; }\ncontainer q0 { network net1 10.101.0.199; }\ncontainer q1 { network net1 10.101.0.200; }\n`;
    const c = compiled(text)!;
    const add = (addr: string) => c.nft.replace("chain docker-user-ip {\n", (m) => `${m}\t\tip daddr ${addr} tcp sport 443 drop\n`);
    const m = both(context(c.p, loaded(add("10.100.0.6")), loaded(add("10.101.0.200"))));
    const q1 = m.rows.find((x) => x.kind === "containers" && x.sources.includes("10.101.0.200/32"))!.id;
    expect(m.cells.filter((x) => x.row === q1 && x.verdict === "open" && x.before === "closed").length).toBeGreaterThan(5);
  }, 120_000);
});
