// `dockwall check` holds /etc/nftables.conf against the policy: a 'flush ruleset' removes every
// nftables table whenever the file is loaded — Docker's rules, and dockwall's where they live in
// nftables — so it is a warning at its line, unless the policy's whole firewall is the nft file
// and nftables.conf includes it after the flush. (test/kernel: what a flush does to the rules.)
import { expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";

const debian = `#!/usr/sbin/nft -f

flush ruleset

table inet filter {
\tchain input {
\t\ttype filter hook input priority filter;
\t}
}
`;
const off = `docker { version 29.7; iptables off; ip6tables off; userland-proxy off; published open; }\nzone lan { interface eth1; }\n`;
const on = `docker { version 20.10; iptables on; published open; }\nzone lan { interface eth1; }\n`;

async function check(policy: string, args: string[], files: Record<string, string>) {
  const io = memoryIo({ "p.dw": policy, ...files });
  const code = await run(["check", "p.dw", ...args], io);
  return { code, err: io.err.join(""), out: io.out.join("") };
}

test("Debian's nftables.conf with iptables on: Docker's rules and dockwall's go with the flush (warning at its line, exit 0)", async () => {
  const r = await check(on, ["--nftables-conf", "nftables.conf"], { "nftables.conf": debian });
  expect(r.code).toBe(0);
  expect(r.err).toBe(`nftables.conf:3:1: warning: 'flush ruleset' in nftables.conf, whenever it is loaded (nft -f, systemctl restart nftables), removes Docker's rules and dockwall's, where iptables is iptables-nft (Debian's and RHEL's: it keeps them in nftables tables); until dockerd restarts and dockwall's rules are loaded again, the host forwards and accepts what the policy closes
3 | flush ruleset
  | ^^^^^^^^^^^^^
  = help: flush only nftables.conf's own tables instead: before each table's definition, 'table inet filter' then 'delete table inet filter' (the table made if missing, then deleted)
`);
});

test("iptables off and --format nft: an include of the -o file after the flush puts everything back in the same transaction (no warning); another include is noted", async () => {
  const conf = debian + `include "/etc/nftables.d/*.nft"\ninclude "/etc/nftables.d/dockwall.nft"; # dockwall\n`;
  const quiet = await check(off, ["-f", "nft", "--nftables-conf", "n.conf", "-o", "/etc/nftables.d/dockwall.nft"], { "n.conf": conf });
  expect([quiet.code, quiet.err]).toEqual([0, ""]);
  const unsure = await check(off, ["-f", "nft", "--nftables-conf", "n.conf"], { "n.conf": conf });
  expect(unsure.err.split("\n").filter((l) => /: (warning|note): /.test(l))).toEqual([
    "n.conf:3:1: warning: 'flush ruleset' in n.conf, whenever it is loaded (nft -f, systemctl restart nftables), removes the tables of dockwall's nft file (Docker's ip/ip6 docker-bridges and inet dockwall); until dockwall's rules are loaded again, the host forwards and accepts what the policy closes",
    "n.conf:10:1: note: if this is dockwall's file, say so with -o /etc/nftables.d/*.nft (then nothing is lost)",
    "n.conf:11:1: note: if this is dockwall's file, say so with -o /etc/nftables.d/dockwall.nft (then nothing is lost)",
  ]);
  // An include of dockwall's file does not help when dockerd writes its own rules: Docker's are lost.
  const docker = await check(on, ["-f", "nft", "--nftables-conf", "n.conf", "-o", "/etc/nftables.d/dockwall.nft"], { "n.conf": conf });
  expect(docker.err).toContain("removes Docker's rules (dockerd writes them; the include puts back only dockwall's table); until dockerd restarts");
});

test("an include before the flush does not count; a family's flush says so; comments and quoted words are not statements", async () => {
  const conf = `include "/etc/nftables.d/dockwall.nft"\n# flush ruleset\ndefine x = "flush ruleset"\n  flush ruleset ip6 ;table ip6 t {}\n`;
  const r = await check(off, ["-f", "nft", "--nftables-conf", "n.conf", "-o", "/etc/nftables.d/dockwall.nft"], { "n.conf": conf });
  expect(r.err.split("\n").filter((l) => l.includes("warning"))).toEqual([
    "n.conf:4:3: warning: 'flush ruleset ip6' in n.conf, whenever it is loaded (nft -f, systemctl restart nftables), removes every ip6 table, among them the tables of dockwall's nft file (Docker's ip/ip6 docker-bridges and inet dockwall); until dockwall's rules are loaded again, the host forwards and accepts what the policy closes",
  ]);
  expect(r.err).toContain("4 |   flush ruleset ip6 ;table ip6 t {}\n  |   ^^^^^^^^^^^^^^^^^\n");
});

test("/etc/nftables.conf is read when nftables.service is enabled, and only then; a --nftables-conf that cannot be read is an error", async () => {
  const enabled = { "/etc/nftables.conf": debian, "/etc/systemd/system/sysinit.target.wants/nftables.service": "[Unit]\n" };
  expect((await check(on, [], enabled)).err).toMatch(/^\/etc\/nftables.conf:3:1: warning: 'flush ruleset'/);
  expect((await check(on, [], { "/etc/nftables.conf": debian })).err).toBe("");
  const json = await check(on, ["--json"], enabled);
  const d = (JSON.parse(json.out) as { diagnostics: Record<string, unknown>[] }).diagnostics;
  expect(d.map((x) => [x.code, x.file, x.line, x.column])).toEqual([["nftables-flush", "/etc/nftables.conf", 3, 1]]);
  const missing = await check(on, ["--nftables-conf", "/nope"], {});
  expect(missing.code).toBe(2);
  expect(missing.err).toBe("dockwall: cannot read /nope (--nftables-conf): ENOENT: /nope\n");
});

test("RHEL's nftables.service loads /etc/sysconfig/nftables.conf; a file it includes by name is read too; a flush of netdev, bridge or arp tables removes none of Docker's or dockwall's (a review)", async () => {
  const rhel = { "/etc/systemd/system/multi-user.target.wants/nftables.service": "[Unit]\n", "/etc/sysconfig/nftables.conf": 'include "/etc/nftables/main.nft"\n', "/etc/nftables/main.nft": "flush ruleset\n" };
  expect((await check(on, [], rhel)).err).toMatch(/^\/etc\/nftables\/main\.nft:1:1: warning: 'flush ruleset' in \/etc\/nftables\/main\.nft/);
  const other = await check(on, ["--nftables-conf", "n.conf"], { "n.conf": "flush ruleset netdev\nflush ruleset bridge\nflush ruleset arp\n" });
  expect(other.err).toBe("");
});
