// The shipped systemd unit is one systemd accepts (systemd-analyze verify), runs the watcher,
// and is ordered as a host needs at boot.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";

const unit = readFileSync(new URL("../../examples/systemd/dockwall.service", import.meta.url), "utf8");
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;
const hasSystemd = spawnSync("systemd-analyze", ["--version"]).status === 0;
const required = process.env.DOCKWALL_REQUIRE_KERNEL === "1";

test.runIf(hasSystemd || required)("systemd-analyze verify accepts dockwall.service", () => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-unit-"));
  try {
    // verify checks that ExecStart's program exists: the repository's command stands in for /usr/local/bin/dockwall.
    writeFileSync(join(dir, "dockwall.service"), unit.replace("/usr/local/bin/dockwall", bin));
    const r = spawnSync("systemd-analyze", ["verify", join(dir, "dockwall.service")], { encoding: "utf8" });
    expect(r.stderr.split("\n").filter((l) => l.includes("dockwall.service"))).toEqual([]);
    expect(r.status).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the unit runs 'dockwall watch', reloads with SIGHUP, and comes after the saved ruleset and before dockerd", () => {
  const line = (k: string) => unit.split("\n").filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1));
  expect(line("ExecStart")).toEqual(["/usr/local/bin/dockwall watch /etc/dockwall/host.dw"]);
  expect(line("ExecReload")).toEqual(["/bin/kill -HUP $MAINPID"]);
  expect(line("After")[0]!.split(" ")).toEqual(expect.arrayContaining(["ferm.service", "netfilter-persistent.service"]));
  expect(line("Before")).toEqual(["docker.service"]);
  expect(line("RestartPreventExitStatus")).toEqual(["2"]);
  // `watch --help` is what ExecStart runs: the command exists.
  expect(execFileSync(bin, ["watch", "--help"], { encoding: "utf8" })).toContain("dockwall watch <policy>");
});
