// A host block removed while INPUT's policy is the DROP it set, in scratch network namespaces
// with the real tools (a reviewer found, with real packets: `-P INPUT DROP` and no rule at
// all, IPv4 and IPv6, and apply exited 0). The old policy's rules loaded first (by
// `dockwall apply`, or by ferm from the old ferm.conf); then `dockwall apply NEW` refuses
// (exit 2) and the kernel's tables are byte for byte as before, diff says why, and once
// INPUT's policy is ACCEPT the apply goes through. A ferm reload of the new ferm.conf stops
// (ferm-keep), its tables as before. -f nft: the drop is a rule of dockwall's own input chain,
// which goes with the host block, so nothing is left dropping. And the rollback of an unconfirmed
// apply that added a host block puts INPUT back as it was before it (it left DROP and no rule).
//
// The namespaces are made here, named hb-<pid>-<n>, and deleted after each test.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { HOST_BLOCK_HEAD, HOST_BLOCK_OLD } from "../support/policies.js";
import { compile } from "../../src/compile.js";
import { describeIf, fermRestoreTool, normalizeSave } from "../lab/kernel.js";
import { baseEnv, run, which } from "../lab/proc.js";

const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

const HEAD = HOST_BLOCK_HEAD;
const OLD = HOST_BLOCK_OLD;
const NEW = HEAD;

/** Root, ip netns and the restore tools; no namespace is made to find out (those of this file are hb-…). */
function support(): { ok: true } | { ok: false; reason: string } {
  if (process.env.DOCKWALL_NO_KERNEL === "1") return { ok: false, reason: "DOCKWALL_NO_KERNEL=1" };
  if (process.platform !== "linux" || process.getuid?.() !== 0) return { ok: false, reason: "not running as root on linux" };
  const missing = ["ip", "nsenter", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"].filter((t) => !which(t));
  return missing.length ? { ok: false, reason: `missing tools: ${missing.join(", ")}` } : { ok: true };
}

let made = 0;

describeIf(support, "kernel", "a host block removed over the DROP policy it set", () => {
  let ns: string;
  let dir: string;
  beforeEach(() => {
    ns = `hb-${process.pid}-${++made}`;
    const add = run(["ip", "netns", "add", ns]);
    if (add.status !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`);
    run(["ip", "-n", ns, "link", "set", "lo", "up"]);
    dir = mkdtempSync(join(tmpdir(), "dockwall-hostblock-"));
    writeFileSync(join(dir, "old.dw"), OLD);
    writeFileSync(join(dir, "new.dw"), NEW);
  });
  afterEach(() => {
    run(["ip", "netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  const inNs = (argv: string[], env: Record<string, string | undefined> = {}) =>
    run(["nsenter", `--net=/var/run/netns/${ns}`, ...argv], { env: { DOCKWALL_STATE_DIR: join(dir, "state"), SSH_CONNECTION: undefined, ...env } });
  const dockwall = (...args: string[]) => inNs([bin, ...args]);
  const save = (tool: string) => {
    const r = inNs([tool]);
    expect(r.status, r.stderr).toBe(0);
    return normalizeSave(r.stdout);
  };
  const both = () => [save("iptables-save"), save("ip6tables-save")];

  it("apply refuses (exit 2, both families named) and INPUT, every table, is as before; diff says why; with INPUT's policy ACCEPT it applies", () => {
    const old = dockwall("apply", join(dir, "old.dw"));
    expect(old.status, old.stderr).toBe(0);
    const before = both();
    for (const s of before) {
      expect(s).toMatch(/^:INPUT DROP /m);
      expect(s).toMatch(/^-A INPUT -i lo -m comment --comment dockwall -j ACCEPT$/m);
    }
    const r = dockwall("apply", join(dir, "new.dw"));
    expect(r.stderr).toContain(
      `dockwall: not applied: ${join(dir, "new.dw")} has no host block, but INPUT (IPv4 and IPv6) holds the rules of the host block dockwall loaded before, with INPUT's policy DROP: ` +
        "loading would take those rules away and leave the policy, and the host would accept nothing (not even its own loopback or the replies to its connections).",
    );
    expect(r.stderr).toContain("`iptables -P INPUT ACCEPT` and `ip6tables -P INPUT ACCEPT`");
    expect(r.stderr).toMatch(/; nothing was changed\n/);
    expect(r.stdout).toBe("");
    expect(r.status).toBe(2);
    expect(both()).toEqual(before);

    const d = dockwall("diff", join(dir, "new.dw"), "--no-color");
    expect(d.stdout).toMatch(/^- -A INPUT -i eth1 -p tcp -m tcp --dport 22 -m comment --comment dockwall -j ACCEPT$/m);
    expect(d.stdout).toMatch(/^warning: .*new\.dw has no host block, but INPUT \(IPv4 and IPv6\) holds the rules of the host block dockwall loaded before, .*then apply \(until then 'dockwall apply' refuses it\)$/m);
    expect(d.status).toBe(1);
    expect(both()).toEqual(before);

    // INPUT handed back as the host should have it: the apply goes through, as before this change.
    for (const t of ["iptables", "ip6tables"]) expect(inNs([t, "-P", "INPUT", "ACCEPT"]).status).toBe(0);
    const a = dockwall("apply", join(dir, "new.dw"));
    expect(a.stderr).toMatch(/applied .*new\.dw: IPv4 and IPv6/);
    expect(a.status).toBe(0);
    for (const s of both()) {
      expect(s).toMatch(/^:INPUT ACCEPT /m);
      expect(s).not.toMatch(/^-A INPUT .*--comment dockwall/m);
    }
  });

  it("apply --confirm of a host block, not confirmed: the rollback puts INPUT back as it was (ACCEPT), not DROP with no rule", () => {
    const first = dockwall("apply", join(dir, "new.dw"));
    expect(first.status, first.stderr).toBe(0);
    const input = (s: string) => (/^\*filter\n[\s\S]*?^COMMIT$/m.exec(s)?.[0] ?? "").split("\n").filter((l) => /^(:INPUT|-A INPUT )/.test(l));
    expect(both().map(input)).toEqual([[":INPUT ACCEPT [0:0]"], [":INPUT ACCEPT [0:0]"]]);
    const r = dockwall("apply", join(dir, "old.dw"), "--confirm", "2");
    expect(r.stderr).toMatch(/not confirmed in time: the rules of .*new\.dw .* are back in place/);
    expect(r.status).toBe(3);
    expect(both().map(input)).toEqual([[":INPUT ACCEPT [0:0]"], [":INPUT ACCEPT [0:0]"]]);
  });

  it("ferm: the new ferm.conf's reload stops (ferm-keep refuses) and the tables ferm loads into are as before", { skip: !which("ferm") }, () => {
    // ferm runs `dockwall` from the PATH, as on a host where it is installed.
    mkdirSync(join(dir, "bin"));
    symlinkSync(bin, join(dir, "bin", "dockwall"));
    const ferm = (policy: string) => {
      const conf = join(dir, `${policy.length}.ferm`);
      writeFileSync(conf, compile(policy, { format: "ferm" }).output!);
      return inNs(["ferm", conf], { PATH: `${join(dir, "bin")}:${baseEnv().PATH}` });
    };
    const fermSave = () => [4, 6].map((f) => save(fermRestoreTool(f as 4 | 6).replace("-restore", "-save")));
    const old = ferm(OLD);
    expect(old.status, old.stderr).toBe(0);
    const before = fermSave();
    for (const s of before) expect(s).toMatch(/^:INPUT DROP [\s\S]*^-A INPUT -i lo -m comment --comment dockwall -j ACCEPT$/m);
    const r = ferm(NEW);
    expect(r.stderr).toContain("dockwall: ferm must not load: the policy has no host block, but INPUT (IPv4) holds the rules of the host block dockwall loaded before, with INPUT's policy DROP:");
    expect(r.status).not.toBe(0);
    expect(fermSave()).toEqual(before);
  });

  it("-f nft: the host block's drop is a rule of dockwall's own input chain, and goes with it (the input hook then drops nothing)", { skip: !which("nft") }, () => {
    const v29 = (t: string) => t.replace("version 28;", "version 29.7;");
    writeFileSync(join(dir, "old29.dw"), v29(OLD));
    writeFileSync(join(dir, "new29.dw"), v29(NEW));
    const old = dockwall("apply", "-f", "nft", join(dir, "old29.dw"));
    expect(old.status, old.stderr).toBe(0);
    const listed = () => inNs(["nft", "list", "ruleset"]).stdout;
    expect(listed()).toMatch(/hook input/);
    expect(listed()).toMatch(/drop comment "INPUT's policy: DROP"/);
    const r = dockwall("apply", "-f", "nft", join(dir, "new29.dw"));
    expect(r.status, r.stderr).toBe(0);
    expect(listed()).not.toMatch(/hook input/);
    expect(listed()).not.toMatch(/INPUT's policy: DROP/);
    // And the iptables INPUT, which an nft apply never wrote, is as it was: ACCEPT.
    expect(save("iptables-save")).not.toMatch(/^:INPUT DROP/m);
  });
});
