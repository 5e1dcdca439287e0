// Docker 29's nftables tables as src/docker/nft29.ts writes them load into the kernel, and
// `nft list ruleset` prints them back exactly: they are nft's own canonical form (the captures
// in v29-nftables/ are that form too; nft29.test.ts compares with them). Every covered
// scenario, plus policies whose rules come from moby's code rather than a capture (an IPv6 host
// address, ::1, several networks whose names nft sorts, a container on two networks).
// Each in a fresh network namespace; the bridges the rules name need not exist.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { dockerBridgesTables } from "../../src/docker/nft29.js";
import { describeKernel, withScratchNetnsSync } from "../lab/kernel.js";

const root = new URL("v29-nftables", import.meta.url).pathname;
const scenarios: [string, string][] = readdirSync(root)
  .sort()
  .map((name) => [name, readFileSync(join(root, name, "policy.dw"), "utf8")]);

const docker = (extra = "") => `docker { version 29.7; iptables off; published open; firewall-backend nftables;${extra} }\n`;
const MORE: [string, string][] = [
  [
    "ipv6 host address, ::1, 127.0.0.2",
    docker(" userland-proxy off;") +
      `network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:1::/64; }
network bridge1 { bridge bridge1; subnet 192.0.2.0/24; subnet 2001:db8:1::/64; }
container c1 { network bridge1 192.0.2.2, 2001:db8:1::2; publish [2001:db8::1]:8080:80; publish [::1]:8081:81/udp; publish 127.0.0.2:9000:90; }
container c2 { network bridge 172.17.0.2, fd00:1::2; publish 7000-7001:7000-7001/udp; }
`,
  ],
  [
    "several networks, names nft sorts, a container on two",
    docker() +
      `network zeta { bridge br-zeta; subnet 10.1.0.0/24; }
network ab { bridge ab; subnet 10.2.0.0/24; masquerade off; icc off; }
network ba { bridge ba; subnet 10.3.0.0/24; }
network inner { bridge br-inner_1.x; subnet 10.4.0.0/24; internal; icc off; }
container c1 { network zeta 10.1.0.2; network ab 10.2.0.2; publish 127.0.0.1:8080:80; publish 8443:443; }
container c2 { network inner 10.4.0.2; }
container c3 { network ba 10.3.0.2; publish 10.0.0.1:53:53/udp; publish 53:53; }
`,
  ],
];

describeKernel("Docker 29's nftables tables load, and nft prints them back as written", () => {
  for (const [name, text] of [...scenarios, ...MORE]) {
    it(name, () => {
      const r = compile(text, { noRender: true, file: "policy.dw" });
      expect(r.ok, formatDiagnostics(r.diagnostics, "policy.dw", text)).toBe(true);
      const tables = dockerBridgesTables(r.policy!);
      const listed = withScratchNetnsSync((ns) => {
        const load = ns.run(["nft", "-f", "-"], tables);
        expect(load.stderr).toBe("");
        expect(load.status).toBe(0);
        return ns.run(["nft", "list", "ruleset"]).stdout;
      });
      expect(listed).toBe(tables);
    });
  }
});
