// The matrix against real packets (issue 23, item 3), for every example and golden policy: in
// the policy's world built in namespaces (test/lab/policylab.ts), its rules loaded as a user
// loads them (with "iptables": true, over dockerd's own), every cell's probe — a packet of the
// row's class to the column by the cell's path, IPv4 and IPv6 — is sent for real from a
// neighbour, and the kernel must let through exactly the cells the matrix says are open.
import { expect, it } from "vitest";
import { asLoaded } from "../../src/analysis/loaded.js";
import { buildMatrix } from "../../src/analysis/matrix.js";
import { parsePacket } from "../../src/analysis/packet.js";
import { formatIp } from "../../src/model/values.js";
import { describeKernel } from "../lab/kernel.js";
import { hostView, inPolicyLab, shippedPolicies, type LabProbe } from "../lab/policylab.js";

const POLICIES = shippedPolicies();

describeKernel("every matrix cell is what a real packet finds", () => {
  let cells = 0;
  let opened = 0;
  let closed = 0;
  let v6 = 0;
  for (const [name, text] of POLICIES) {
    it(name, async () => {
      await inPolicyLab(name, text, async ({ r, p, plan, lab }) => {
        // The matrix of the compiled policy, with this world's addresses for the host.
        const view = hostView(plan);
        const m = buildMatrix(
          {
            policy: p,
            rulesets: asLoaded(p, r.generated!.rulesets),
            hostAddress: (family, iface) => {
              const f = plan.ifaces.find((x) => x.name === iface);
              return f ? (family === 4 ? f.host4 : f.host6) : undefined;
            },
            host: { addresses: view.local, routes: view.routes ?? [] },
          },
          [4, 6],
        );
        const sendable = m.cells.filter((c) => {
          const pk = parsePacket(c.probe);
          if ("error" in pk || pk.src.kind !== "address" || !pk.in) throw new Error(`${c.probe}: not a neighbour's packet`);
          return plan.ifaces.some((f) => f.name === pk.in) && lab.addSource(pk.in, formatIp(pk.src.ip));
        });
        // (Not sent: a source that sits behind another interface in this world, as a from-only zone's does, or that is a Docker network's own.)
        expect(sendable.length).toBeGreaterThanOrEqual(m.cells.length / 3);
        const probes: LabProbe[] = sendable.map((c) => {
          const pk = parsePacket(c.probe) as Exclude<ReturnType<typeof parsePacket>, { error: string }>;
          return { from: { iface: pk.in! }, family: pk.family, src: formatIp((pk.src as { ip: Parameters<typeof formatIp>[0] }).ip), dst: formatIp(pk.dst), proto: pk.proto, port: pk.dport };
        });
        // Once to warm the world up (a new IPv6 path's first packets can be lost while neighbours are found), then for the record.
        await lab.probe(probes, 800);
        const kernel = await lab.probe(probes, 800);
        // A cell the kernel answers otherwise is tried twice more (a first IPv6 packet can still be lost): what stays different is a difference.
        for (let round = 0; round < 2; round++) {
          const again = sendable.map((c, i) => ((c.verdict === "open") !== kernel[i]!.open ? i : -1)).filter((i) => i >= 0);
          if (again.length === 0) break;
          await new Promise((r) => setTimeout(r, 500));
          const res = await lab.probe(again.map((i) => probes[i]!), 800);
          again.forEach((i, k) => (kernel[i] = res[k]!));
        }
        const wrong = sendable.filter((c, i) => c.verdict === "unknown" || (c.verdict === "open") !== kernel[i]!.open).map((c) => `${c.probe} (${c.path}): matrix ${c.verdict}, kernel ${kernel[sendable.indexOf(c)]!.open ? "open" : "closed"}`);
        cells += sendable.length;
        console.log(`${name}: ${sendable.length} of ${m.cells.length} cells probed (${sendable.filter((c) => c.verdict === "open").length} open, ${sendable.filter((c) => c.family === 6).length} IPv6)${wrong.length ? `; ${wrong.length} differ` : ", all as the kernel"}`);
        expect(wrong, wrong.join("\n")).toEqual([]);
        opened += sendable.filter((c) => c.verdict === "open").length;
        closed += sendable.filter((c) => c.verdict === "closed").length;
        v6 += sendable.filter((c) => c.family === 6).length;
      });
    }, 120_000);
  }
  it("probed cells in all: open and closed ones, IPv4 and IPv6", () => {
    expect(cells).toBeGreaterThan(150);
    expect(opened).toBeGreaterThan(20);
    expect(closed).toBeGreaterThan(20);
    expect(v6).toBeGreaterThan(10);
  });
});
