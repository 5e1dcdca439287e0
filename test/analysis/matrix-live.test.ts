// The matrix against real packets (issue 23, item 3), for every example and golden policy: in
// the policy's world built in namespaces (test/lab/policylab.ts), its rules loaded as a user
// loads them (with "iptables": true, over dockerd's own), every cell's probe — a packet of the
// row's class to the column by the cell's path, IPv4 and IPv6 — is sent for real from a
// neighbour, and the kernel must let through exactly the cells the matrix says are open.
import { expect, it } from "vitest";
import { asLoaded } from "../../src/analysis/loaded.js";
import { describeKernel } from "../lab/kernel.js";
import { inPolicyLab, probeMatrix, shippedPolicies } from "../lab/policylab.js";

const POLICIES = shippedPolicies();

describeKernel("every matrix cell is what a real packet finds", () => {
  let cells = 0;
  let opened = 0;
  let closed = 0;
  let v6 = 0;
  for (const [name, text] of POLICIES) {
    it(name, async () => {
      await inPolicyLab(name, text, async ({ r, p, plan, lab }) => {
        // Every cell a neighbour here can send, sent for real, against the matrix of the compiled policy.
        const { cells: all, sendable, open } = await probeMatrix(lab, plan, p, asLoaded(p, r.generated!.rulesets), (c) => c.verdict === "open");
        expect(sendable.length).toBeGreaterThanOrEqual(all.length / 3);
        const kernel = open.map((o) => ({ open: o }));
        const wrong = sendable.filter((c, i) => c.verdict === "unknown" || (c.verdict === "open") !== kernel[i]!.open).map((c) => `${c.probe} (${c.path}): matrix ${c.verdict}, kernel ${kernel[sendable.indexOf(c)]!.open ? "open" : "closed"}`);
        cells += sendable.length;
        console.log(`${name}: ${sendable.length} of ${all.length} cells probed (${sendable.filter((c) => c.verdict === "open").length} open, ${sendable.filter((c) => c.family === 6).length} IPv6)${wrong.length ? `; ${wrong.length} differ` : ", all as the kernel"}`);
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
