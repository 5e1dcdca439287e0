// explain's path against the kernel's own (issue 23): for a sample of packets per policy, in the
// policy's world built in namespaces (test/lab/policylab.ts) with its rules loaded, the kernel
// traces the packet (a raw PREROUTING TRACE rule for it, read with `nft -a monitor trace`) and
// every rule the kernel says the packet jumped at, was accepted, dropped or returned by —
// table, chain and position, in order — must be what `dockwall explain` lists.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { explain, type ExplainContext } from "../../src/analysis/explain.js";
import { parsePacket } from "../../src/analysis/packet.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { describeKernel } from "../lab/kernel.js";
import { hostView, inPolicyLab, type LabProbe } from "../lab/policylab.js";

const root = new URL("../../", import.meta.url).pathname;
const POLICIES = ["examples/web-host.dw", "examples/coexist.dw", "test/golden/ipv6-dual-stack/policy.dw"];
/** Packets traced per policy: neighbours' TCP and UDP, IPv4 and IPv6, admitted and refused. */
const SAMPLE = 8;

/** Where each rule sits, by its nftables handle: `TABLE CHAIN HANDLE` → its 1-based position (what iptables-nft loaded, listed by nft -a). */
function positions(run: (argv: string[]) => { status: number | null; stdout: string }, family: 4 | 6): Map<string, number> {
  const at = new Map<string, number>();
  for (const table of ["raw", "mangle", "nat", "filter"]) {
    const r = run(["nft", "-a", "list", "table", family === 4 ? "ip" : "ip6", table]);
    if (r.status !== 0) continue;
    let chain = "";
    let n = 0;
    for (const line of r.stdout.split("\n")) {
      const c = /^\s*chain (\S+) \{/.exec(line);
      if (c) {
        chain = c[1]!.replace(/^"|"$/g, "");
        n = 0;
        continue;
      }
      const h = /# handle (\d+)$/.exec(line);
      if (h && chain) at.set(`${table} ${chain} ${h[1]}`, ++n);
    }
  }
  return at;
}

/**
 * The kernel's trace of the first packet (`nft -a monitor trace`): each rule that jumped,
 * accepted, dropped or returned it, as `TABLE CHAIN #POSITION`, and how it ended. (xtables-monitor
 * --trace would print iptables' words, but 1.8.9 cannot print IPv6 rules.)
 */
function parseTrace(out: string, at: Map<string, number>): { rules: string[]; end: string } | undefined {
  const lines = out.split("\n").filter((l) => l.startsWith("trace id "));
  const id = lines[0]?.split(" ")[2];
  if (!id) return undefined;
  const rules: string[] = [];
  let end = "";
  let prerouting = 0;
  for (const l of lines) {
    const m = /^trace id (\S+) ip6? (\S+) (\S+) (rule .* # handle (\d+) \(verdict ([^)]*)\)|policy (\w+)|verdict (\w+))/.exec(l);
    if (!m || m[1] !== id) continue;
    const [, , table, rawChain, , handle, verdict, policy] = m;
    const chain = rawChain!.replace(/^"|"$/g, "");
    // The first packet only: the next one of the connection meets raw PREROUTING's TRACE rule again.
    if (table === "raw" && chain === "PREROUTING" && handle && ++prerouting > 1) break;
    if (handle) {
      if (verdict === "continue") continue; // the TRACE rule itself, a LOG: decides nothing
      rules.push(`${table} ${chain} #${at.get(`${table} ${chain} ${handle}`) ?? `handle ${handle}`}`);
      end = `${table} ${chain} ${verdict}`;
    } else if (policy && (table === "filter" || policy !== "accept")) end = `${table} ${chain} policy ${policy}`;
  }
  return { rules, end };
}

describeKernel("explain's path is the kernel's own trace, rule for rule", () => {
  for (const name of POLICIES) {
    it(name, async () => {
      const text = readFileSync(`${root}${name}`, "utf8");
      await inPolicyLab(name, text, async ({ r, p, plan, lab }) => {
        // explain over what the kernel holds (--live), the host's addresses and routes as the lab made them.
        const view = hostView(plan);
        const ctx: ExplainContext = {
          rulesets: { 4: toRuleset(parseSave(lab.host.save(4)), 4), 6: toRuleset(parseSave(lab.host.save(6)), 6) },
          policy: p,
          file: name,
          text,
          compiled: r.generated!.rulesets,
          host: { addresses: view.local, routes: view.routes ?? [] },
        };
        const where = { 4: positions((argv) => lab.host.run(argv), 4), 6: positions((argv) => lab.host.run(argv), 6) };
        const candidates = plan.probes.filter((pr): pr is LabProbe & { from: { iface: string }; port: number } => "iface" in pr.from && pr.proto !== "icmp" && pr.port !== undefined);
        const sample = [...candidates.filter((pr) => pr.family === 4).slice(0, SAMPLE - 3), ...candidates.filter((pr) => pr.family === 6).slice(0, 3)];
        expect(sample.length).toBeGreaterThanOrEqual(4);
        const rows: string[] = [];
        const differ: string[] = [];
        let admitted = 0;
        for (const pr of sample) {
          const v6 = pr.family === 6;
          const tool = v6 ? "ip6tables" : "iptables";
          const trace = ["-s", pr.src, "-d", pr.dst, "-p", pr.proto, "--dport", String(pr.port), "-j", "TRACE"];
          expect(lab.host.run([tool, "-t", "raw", "-I", "PREROUTING", "1", ...trace]).status).toBe(0);
          const monitor = spawn("nsenter", [`--net=${lab.host.path}`, "stdbuf", "-oL", "nft", "-a", "monitor", "trace"], { stdio: ["ignore", "pipe", "pipe"] });
          let out = "";
          monitor.stdout!.on("data", (c: Buffer) => (out += c.toString()));
          monitor.stderr!.on("data", (c: Buffer) => (out += c.toString()));
          await new Promise((res) => setTimeout(res, 300));
          await lab.probe([pr], 800);
          await new Promise((res) => setTimeout(res, 300));
          monitor.kill();
          expect(lab.host.run([tool, "-t", "raw", "-D", "PREROUTING", ...trace]).status).toBe(0);
          const kernel = parseTrace(out, where[pr.family]);
          const dst = v6 ? `[${pr.dst}]` : pr.dst;
          const packet = parsePacket(`${pr.proto} ${v6 ? `[${pr.src}]` : pr.src}:40000 -> ${dst}:${pr.port} in ${pr.from.iface}`);
          if ("error" in packet) throw new Error(packet.error);
          const e = explain(ctx, packet, true);
          const ours = e.path.filter((s) => s.position > 0).map((s) => `${s.table} ${s.chain} #${s.position}`);
          const row = `${packet.text}: explain ${e.verdict} by ${e.decided_by?.chain ?? "?"}; kernel ends ${kernel?.end ?? "(no trace)"}`;
          rows.push(row);
          if (e.verdict === "accept") admitted++;
          if (!kernel || kernel.end === "") differ.push(`${row}: the kernel traced nothing:\n${out}`);
          const last = e.path.at(-1);
          const ourEnd = !last ? "" : last.position === 0 ? `${last.table} ${last.chain} policy ${e.verdict}` : `${last.table} ${last.chain} ${e.verdict}`;
          if (kernel && kernel.end !== "" && kernel.end !== ourEnd) differ.push(`${row}: explain ends ${ourEnd}`);
          else if (kernel && JSON.stringify(kernel.rules) !== JSON.stringify(ours)) differ.push(`${row}:\n  kernel:  ${kernel.rules.join("\n           ")}\n  explain: ${ours.join("\n           ")}`);
        }
        console.log(`${name}:\n  ${rows.join("\n  ")}`);
        expect(differ, differ.join("\n\n")).toEqual([]);
        expect(admitted).toBeGreaterThan(0);
        expect(admitted).toBeLessThan(sample.length);
      });
    }, 120_000);
  }
});
