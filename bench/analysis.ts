// Issue 23's targets, whole process as a user runs them (BENCH_ONLY=analysis): `dockwall
// explain` of one packet beside `dockwall compile` of the same policy (explain compiles it
// first: its floor), at 200 and 2,000 containers; `dockwall matrix --json` at 20, 50, 100
// containers (the number of cells grows with published ports × source classes) and the
// 2,000-container policy (refused past 1,000,000 cells: the time of saying so). The synthetic
// policy of bench/generate.ts: three ports per container, two allows each, 250 admin sources.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { policyOf } from "./generate.js";
import { spawnSync } from "node:child_process";
import { measureEach, withNetns, type Command, type Measure, type Rounds } from "./process.js";

export interface AnalysisCtx {
  dir: string;
  /** bin/dockwall */
  bin: string;
  runs: number;
  maxSteal: number;
  noted: (what: string, r: Rounds) => void;
}

const fmt = (m: Measure | undefined) => (m ? `${m.medianMs.toFixed(0)} ms, ${(m.peakKb / 1024).toFixed(0)} MB` : "n/a");

export function benchAnalysis(ctx: AnalysisCtx): string[] {
  const file = (n: number) => {
    const f = join(ctx.dir, `analysis-${n}.dw`);
    writeFileSync(f, policyOf({ containers: n, hostRules: 4 }));
    return f;
  };
  const rows: string[][] = [];
  for (const n of [200, 2000]) {
    const f = file(n);
    // A packet from the lan to the first container's first port (open), on the host's address.
    const commands: Record<string, Command> = {
      compile: { argv: [ctx.bin, "compile", f, "-f", "iptables"] },
      explain: { argv: [ctx.bin, "explain", f, "tcp 192.168.1.2 -> 192.0.2.1:10000 in eth1"] },
    };
    const m = measureEach(commands, { runs: ctx.runs, maxSteal: ctx.maxSteal });
    ctx.noted(`explain ${n}`, m.rounds);
    rows.push([`explain one packet, ${n.toLocaleString("en")} containers`, fmt(m.by.explain), `compile: ${fmt(m.by.compile)}`, n === 2000 ? "target < 150 ms" : ""]);
  }
  for (const n of [20, 50, 100, 150, 2000]) {
    const f = file(n);
    const m = measureEach({ matrix: { argv: [ctx.bin, "matrix", f, "--json"], expectStatus: [0, 1, 2] } }, { runs: Math.max(3, Math.min(ctx.runs, n >= 100 ? 3 : ctx.runs)), maxSteal: ctx.maxSteal });
    ctx.noted(`matrix ${n}`, m.rounds);
    rows.push([`matrix --json, ${n.toLocaleString("en")} containers`, fmt(m.by.matrix), n === 2000 ? "refused (more than 1,000,000 cells): the time to say so" : "", n === 2000 ? "target < 2 s, exact" : ""]);
  }
  // verify (only the cells not what the policy says) of the 2,000-container policy, and of 200 (more cells than
  // matrix works out), loaded in a scratch namespace with the interfaces and bridges the policy names: iptables rules
  // (Docker 20.10), then the same policy on an nftables host (Docker 29.7, the --format nft file holding Docker's tables).
  const onIptables = new Map<number, Measure | undefined>();
  for (const backend of ["iptables", "nft"] as const) {
    withNetns((exec) => {
      const sh = (argv: string[], input?: string) => {
        const r = spawnSync(exec[0]!, [...exec.slice(1), ...argv], { input, encoding: "utf8", maxBuffer: 1 << 30 });
        if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
      };
      for (const [dev, addr] of [["eth0", "198.51.100.1/24"], ["eth1", "192.168.1.1/24"]] as const) {
        // (A bridge without ports stands for the interface: a veth's other end here would be an interface of the host too, with rows of its own.)
        sh(["ip", "link", "add", dev, "type", "bridge"]);
        sh(["ip", "addr", "add", addr, "dev", dev]);
        sh(["ip", "link", "set", dev, "up"]);
      }
      // The bridges of the policy's networks (250 containers each), and no other: a bridge it does not name is an interface
      // of the host that no zone names, with rows of its own.
      let bridges = 0;
      // (On nftables 200 and 1,000 containers: 2,000 takes minutes there, docs/benchmarks.md.)
      for (const n of backend === "nft" ? [200, 1000] : [200, 2000]) {
        for (; bridges < Math.ceil(n / 250); bridges++) {
          sh(["ip", "link", "add", `br-n${bridges}`, "type", "bridge"]);
          sh(["ip", "addr", "add", `10.100.${bridges}.1/24`, "dev", `br-n${bridges}`]);
          sh(["ip", "link", "set", `br-n${bridges}`, "up"]);
          // (As dockerd sets it for its bridges with userland-proxy off: verify reads it.)
          sh(["sysctl", "-qw", `net.ipv4.conf.br-n${bridges}.route_localnet=1`]);
        }
        let f = file(n);
        if (backend === "nft") {
          f = join(ctx.dir, `analysis-${n}-nft.dw`);
          writeFileSync(f, policyOf({ containers: n, hostRules: 4 }).replace("version 20.10;", "version 29.7;"));
          sh(["nft", "-f", "-"], spawnSync(ctx.bin, ["compile", f, "-f", "nft"], { encoding: "utf8", maxBuffer: 1 << 30 }).stdout);
        } else {
          for (const [fam, restore] of [["iptables", "iptables-restore"], ["ip6tables", "ip6tables-restore"]] as const) {
            const out = spawnSync(ctx.bin, ["compile", f, "-f", fam], { encoding: "utf8", maxBuffer: 1 << 30 });
            sh([restore], out.stdout);
          }
        }
        const m = measureEach({ verify: { argv: [...exec, ctx.bin, "verify", f] } }, { runs: n >= 1000 ? (backend === "nft" ? 1 : 3) : Math.min(ctx.runs, 5), maxSteal: ctx.maxSteal });
        ctx.noted(`verify ${backend} ${n}`, m.rounds);
        if (backend === "iptables") {
          onIptables.set(n, m.by.verify);
          rows.push([`verify, ${n.toLocaleString("en")} containers (loaded, nothing amiss)`, fmt(m.by.verify), n === 2000 ? "matrix refuses it (more than 1,000,000 cells)" : "", ""]);
        } else rows.push([`verify on nftables (Docker 29.7, iptables off), ${n.toLocaleString("en")} containers`, fmt(m.by.verify), onIptables.has(n) ? `the same host on iptables: ${fmt(onIptables.get(n))}` : "", ""]);
      }
    });
  }
  const header = ["issue 23 (whole process)", "dockwall", "beside", "target"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)];
}
