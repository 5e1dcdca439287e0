// verify on a larger host: 200 containers with three published ports each and a source range per
// container (bench/generate.ts's policy), more cells than `matrix` works out (it refuses), but
// verify keeps only the cells not what the policy says. Loaded into a namespace with the
// interfaces and the bridge the policy names: silent; after a hand-made ACCEPT for one admin
// address in DOCKER-USER, exactly the cells it opens are listed.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import type { MatrixCell } from "../../src/analysis/matrix.js";
import { compile } from "../../src/compile.js";
import { policyOf } from "../../bench/generate.js";
import { createNetns, deleteNetns, describeKernel } from "../lab/kernel.js";

const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

describeKernel("dockwall verify on a host of 200 containers (more cells than matrix works out)", () => {
  it("silent after the load; a hand-made ACCEPT for one admin address lists exactly the cells it opens; matrix --live refuses", () => {
    const text = policyOf({ containers: 200, hostRules: 4 });
    const ns = createNetns("-v");
    const dir = mkdtempSync(join(tmpdir(), "dockwall-verify-large-"));
    try {
      const ok = (argv: string[]) => expect(ns.run(argv).stderr).toBe("");
      for (const [dev, addr] of [["eth0", "198.51.100.1/24"], ["eth1", "192.168.1.1/24"]] as const) {
        // (A bridge without ports stands for the interface: a veth's other end here would be an interface of the host too, with rows of its own.)
        ok(["ip", "link", "add", dev, "type", "bridge"]);
        ok(["ip", "addr", "add", addr, "dev", dev]);
        ok(["ip", "link", "set", dev, "up"]);
      }
      ok(["ip", "link", "add", "br-n0", "type", "bridge"]);
      ok(["ip", "addr", "add", "10.100.0.1/24", "dev", "br-n0"]);
      ok(["ip", "link", "set", "br-n0", "up"]);
      // As dockerd sets it for its bridges with userland-proxy off: the host's own connections to 127.0.0.1, DNATed to a
      // container, go out by the bridge (verify reads it from the kernel; off, they do not connect).
      ok(["sysctl", "-qw", "net.ipv4.conf.br-n0.route_localnet=1"]);
      for (const f of [4, 6] as const) expect(ns.restore(f, compile(text, { format: f === 4 ? "iptables" : "ip6tables" }).output!).stderr).toBe("");
      writeFileSync(join(dir, "host.dw"), text);
      const dockwall = (...args: string[]) => spawnSync("nsenter", [`--net=${ns.path}`, bin, ...args], { encoding: "utf8", env: { ...process.env, DOCKWALL_STATE_DIR: dir } });
      const matrix = dockwall("matrix", join(dir, "host.dw"), "--live", "--json");
      expect(matrix.status).toBe(2);
      expect(matrix.stderr).toMatch(/^dockwall: the matrix of \S+ would have about [\d,]+ cells .* more than 1,000,000: not attempted\./);
      const clean = dockwall("verify", join(dir, "host.dw"));
      expect([clean.status, clean.stdout, clean.stderr]).toEqual([0, "", ""]);
      // Another tool lets 203.0.113.7 (admin, allowed to c7's udp port alone) through DOCKER-USER to everything DNAT'd.
      expect(ns.run(["iptables", "-I", "DOCKER-USER", "1", "-s", "203.0.113.7", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"]).status).toBe(0);
      const open = dockwall("verify", join(dir, "host.dw"), "--json");
      expect(open.status, open.stderr).toBe(1);
      const j = JSON.parse(open.stdout) as { rows: { id: string; zone?: string; sources: string[] }[]; cells: MatrixCell[] };
      // From each interface, that address reaches every published port by DNAT but c7's udp one (allowed to it), and every
      // one through 127.0.0.1 routed here (Docker DNATs that too, and the ACCEPT comes before dockwall's drop of it).
      const ports = Array.from({ length: 200 }, (_, i) => [`c${i}:${10000 + 3 * i}/tcp`, `c${i}:${10001 + 3 * i}/tcp`, `c${i}:${10002 + 3 * i}/udp`]).flat();
      const expected = ["eth0", "eth1"].flatMap((i) => [...ports.filter((c) => c !== "c7:10023/udp").map((c) => `${c} dnat open ${i}`), ...ports.map((c) => `${c} loopback open ${i}`)]);
      const listed = j.cells.map((c) => `${c.column} ${c.path} ${c.verdict} ${c.probe.split(" in ")[1]}`);
      expect(listed.length).toBe(expected.length);
      expect(new Set(listed)).toEqual(new Set(expected));
      expect(j.cells.every((c) => c.mismatch && / 203\.0\.113\.7:40000 -> /.test(c.probe))).toBe(true);
      expect(new Set(j.cells.map((c) => j.rows.find((r) => r.id === c.row)!.sources.join(" ")))).toEqual(new Set(["203.0.113.7/32"]));
    } finally {
      deleteNetns(ns.name);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
