// Parity with Docker 29's nftables backend: for every scenario captured from a real dockerd
// 29.7.2 with "firewall-backend": "nftables" (v29-nftables/<scenario>/expected.nft, copied from
// shared/docker-layouts/v29-nftables), the policy that describes it gives, through
// src/docker/nft29.ts, exactly the tables `nft list ruleset` printed: `table ip docker-bridges`
// and `table ip6 docker-bridges`, text for text.
//
// Captures not covered, and why:
// - usernet-portmap-routed, usernet-portmap-natunprot: gateway modes routed / nat-unprotected,
//   which the language cannot say (dockwall refuses them).
// - iptables-false-portmap: dockerd ran with --iptables=false --ip6tables=false and wrote no
//   table; with `iptables off;` dockwall writes Docker's tables itself (usernet-portmap covers
//   the same commands).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { dockerBridges, dockerBridgesTables } from "../../src/docker/nft29.js";
import { layoutFor } from "../../src/docker/layouts.js";
import { makePlan } from "../../src/docker/plan.js";

const root = new URL("v29-nftables", import.meta.url).pathname;
const scenarios = readdirSync(root).sort();

/** The capture's tables, `#` header lines removed: `table ip …` and `table ip6 …`, each up to its closing brace. */
export function captureTables(text: string): Record<"ip" | "ip6", string> {
  const body = text.split("\n").filter((l) => !l.startsWith("#")).join("\n");
  const out = { ip: "", ip6: "" };
  for (const m of body.matchAll(/^table (ip6?) docker-bridges \{\n[\s\S]*?^\}\n/gm)) out[m[1] as "ip" | "ip6"] = m[0];
  return out;
}

test("every covered capture has a fixture", () => {
  expect(scenarios).toHaveLength(19);
});

describe.each(scenarios)("v29-nftables/%s", (name) => {
  const dir = join(root, name);
  const text = readFileSync(join(dir, "policy.dw"), "utf8");
  const want = captureTables(readFileSync(join(dir, "expected.nft"), "utf8"));
  const r = compile(text, { noRender: true, file: "policy.dw" });
  const layout = layoutFor(r.policy?.docker.version?.value);

  test("compiles", () => {
    expect(r.ok, formatDiagnostics(r.diagnostics, "policy.dw", text)).toBe(true);
    expect(want.ip).not.toBe("");
    expect(want.ip6).not.toBe("");
  });
  test("table ip docker-bridges", () => {
    expect(dockerBridges(makePlan(r.policy!, 4, layout!))).toBe(want.ip);
  });
  test("table ip6 docker-bridges", () => {
    expect(dockerBridges(makePlan(r.policy!, 6, layout!))).toBe(want.ip6);
  });
  test("both tables, from the policy", () => {
    expect(dockerBridgesTables(r.policy!)).toBe(want.ip + want.ip6);
  });
});

describe("what dockwall cannot write as dockerd does is an error, not other rules", () => {
  const base = `docker { version 29.7; iptables off; published open; firewall-backend nftables; }
network bridge1 { bridge bridge1; subnet 192.0.2.0/24; }
`;
  const tables = (text: string) => {
    const r = compile(text, { noRender: true });
    expect(r.ok, formatDiagnostics(r.diagnostics, "t.dw", text)).toBe(true);
    return () => dockerBridgesTables(r.policy!);
  };
  test("another 29.x release", () => {
    expect(tables(base.replace("29.7", "29.3") + "container c1 { network bridge1 192.0.2.2; publish 8080:80; }\n")).toThrow(/29\.7/);
  });
  test("two host ports to one container port without the proxy: dockerd's second MASQ TO OWN PORT fails", () => {
    const text = base.replace("firewall-backend", "userland-proxy off; firewall-backend") + "container c1 { network bridge1 192.0.2.2; publish 8080:80; publish 8081:80; }\n";
    expect(tables(text)).toThrow(/twice/);
  });
  test("two host ports to one container port with the proxy: one accept", () => {
    const out = tables(base + "container c1 { network bridge1 192.0.2.2; publish 8080:80; publish 8081:80; }\n")();
    expect(out.match(/ip daddr 192\.0\.2\.2 tcp dport 80 counter/g)).toHaveLength(1);
    expect(out.match(/dnat to 192\.0\.2\.2:80/g)).toHaveLength(2);
  });
  test("the daemon's default host address IPv6, for an IPv4-only container (docker-proxy's accept)", () => {
    const text = base.replace("firewall-backend", "ip 2001:db8::1; firewall-backend") + "container c1 { network bridge1 192.0.2.2; publish 8080:80; }\n";
    expect(tables(text)).toThrow(/docker-proxy/);
  });
});
