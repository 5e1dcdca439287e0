// --format nft beside Docker 29's nftables firewall backend (issue 24, in part), with packets:
// Docker's own tables as a real dockerd 29.7.2 wrote them (`nft list ruleset`, copied from
// ../shared/docker-layouts/v29-nftables into fixtures/: there is no dockerd 29 on this machine),
// loaded into the policy's world built in namespaces with the same networks and container
// addresses; then dockwall's table. Every matrix cell, IPv4 and IPv6, must be what the policy
// says: its table drops what the policy closes, and what it lets through Docker's tables take on.
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { asLoaded } from "../../src/analysis/loaded.js";
import { compile } from "../../src/compile.js";
import { describeKernel } from "../lab/kernel.js";
import { planPolicyLab, probeMatrix, startPolicyLab } from "../lab/policylab.js";

/** The captures' world: bridge1 192.0.2.0/24 (and 2001:db8:1::/64), c1 at .2 publishing 8080:80, userland-proxy off. */
const SCENARIOS: [string, string][] = [
  [
    "usernet-portmap-noproxy",
    `docker { version 29; iptables on; userland-proxy off; firewall-backend nftables; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
network bridge1 { bridge bridge1; subnet 192.0.2.0/24; }
container c1 { network bridge1 192.0.2.2; publish 8080:80; }
allow lan to c1:8080;
`,
  ],
  [
    "usernet-ipv6-portmap-noproxy",
    `docker { version 29; iptables on; ip6tables on; userland-proxy off; firewall-backend nftables; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network bridge1 { bridge bridge1; subnet 192.0.2.0/24; subnet 2001:db8:1::/64; }
container c1 { network bridge1 192.0.2.2, 2001:db8:1::2; publish 8080:80; }
allow lan to c1:8080;
`,
  ],
];

describeKernel("--format nft beside Docker 29's nftables backend: every cell as the policy says", () => {
  let probed = 0;
  let open = 0;
  let v6 = 0;
  for (const [scenario, text] of SCENARIOS) {
    it(scenario, async () => {
      const nft = compile(text, { format: "nft", file: `${scenario}.dw` });
      expect(nft.ok, nft.diagnostics.map((d) => d.message).join("\n")).toBe(true);
      // The same policy written for DOCKER-USER is refused: Docker's nftables backend has none.
      expect(compile(text, { format: "iptables" }).diagnostics.map((d) => d.code)).toContain("firewall-backend");
      const r = compile(text, { noRender: true, format: "nft" });
      const p = r.policy!;
      const plan = planPolicyLab(p);
      const lab = await startPolicyLab(plan);
      try {
        const docker = readFileSync(new URL(`fixtures/${scenario}.nft`, import.meta.url), "utf8");
        expect(lab.host.run(["nft", "-f", "-"], docker).stderr).toBe("");
        expect(lab.host.run(["nft", "-f", "-"], nft.output!).stderr).toBe("");
        // Docker's tables as they were, beside dockwall's.
        const ruleset = lab.host.run(["nft", "list", "ruleset"]).stdout;
        expect(ruleset.match(/^table (ip|ip6) docker-bridges \{$/gm)).toHaveLength(2);
        expect(ruleset.match(/^table inet dockwall \{$/gm)).toHaveLength(1);
        // Every cell a neighbour here can send, sent for real, held against the policy's intent.
        const { cells: all, sendable, probes, open: opened } = await probeMatrix(lab, plan, p, asLoaded(p, r.generated!.rulesets), (c) => c.intent === "allowed");
        expect(sendable.length).toBeGreaterThanOrEqual(all.length / 2);
        const kernel = opened.map((o) => ({ open: o }));
        // Held against the policy itself: open exactly where it allows.
        const wrong = sendable.filter((c, i) => (c.intent === "allowed") !== kernel[i]!.open).map((c) => `${c.probe} (${c.path}): the policy ${c.intent}, the kernel ${kernel[sendable.indexOf(c)]!.open ? "open" : "closed"}`);
        console.log(`${scenario}: ${sendable.length} cells probed (${sendable.filter((c) => c.intent === "allowed").length} allowed, ${sendable.filter((c) => c.family === 6).length} IPv6)${wrong.length ? `; ${wrong.length} not as the policy says` : ", all as the policy says"}`);
        expect(wrong, wrong.join("\n")).toEqual([]);
        probed += sendable.length;
        open += sendable.filter((c) => c.intent === "allowed").length;
        v6 += sendable.filter((c) => c.family === 6).length;
        // Without dockwall's table, Docker's own rules let the wan in: the table is what closes it.
        expect(lab.host.run(["nft", "delete", "table", "inet", "dockwall"]).stderr).toBe("");
        const bare = await lab.probe(probes, 800);
        expect(sendable.some((c, i) => c.intent !== "allowed" && bare[i]!.open)).toBe(true);
      } finally {
        await lab.stop();
      }
    }, 120_000);
  }
  it("probed: allowed and closed cells, IPv4 and IPv6", () => {
    expect(probed).toBeGreaterThan(8);
    expect(open).toBeGreaterThanOrEqual(2);
    expect(v6).toBeGreaterThan(2);
  });
});
