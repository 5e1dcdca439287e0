// `dockwall apply --format nft` (issue 24, item 3) in scratch network namespaces: the real
// command (bin/dockwall), the real nft, the kernel's own tables. The file's tables are loaded
// as one transaction and nothing else changes (a table of the host's own, the iptables rules);
// diff -f nft is then silent; --confirm and rollback put the tables back (the previous policy
// compiled again, or without one dockwall's table as it was and Docker's never from then); the
// lockout guard reads every base chain on the input hook; a file nft refuses changes nothing.
import { Ajv } from "ajv";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";
import { run, runAsync } from "../lab/proc.js";

const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;
const schema = JSON.parse(readFileSync(new URL("../../src/schema/dockwall.schema.json", import.meta.url), "utf8")) as object;
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, "dockwall");

const ON = `docker { version 20.10; iptables on; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
host { allow lan tcp 22; allow any icmp; }
`;
/** ON with the lan's ssh narrowed to one admin address. */
const NARROW = ON.replace("allow lan tcp 22;", "allow lan tcp 2222;");
const OFF = `docker { version 29.7; iptables off; ip6tables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
network bridge { bridge docker0; subnet 172.17.0.0/16; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
host { allow lan tcp 22; }
`;
const HOSTS_OWN = `table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 9999 counter accept\n\t}\n}\n`;

describeKernel("dockwall apply --format nft in a scratch namespace", () => {
  let ns: Netns;
  let dir: string;
  beforeEach(() => {
    ns = createNetns("-n");
    dir = mkdtempSync(join(tmpdir(), "dockwall-nft-"));
    ns.run(["ip", "link", "add", "eth1", "type", "veth", "peer", "name", "p1"]);
    ns.run(["ip", "addr", "add", "192.168.1.1/24", "dev", "eth1"]);
    ns.run(["ip", "link", "set", "eth1", "up"]);
  });
  afterEach(() => {
    deleteNetns(ns.name);
    rmSync(dir, { recursive: true, force: true });
  });
  const dockwall = (args: string[], env: Record<string, string | undefined> = {}) =>
    run(["ip", "netns", "exec", ns.name, bin, ...args], { env: { DOCKWALL_STATE_DIR: join(dir, "state"), SSH_CONNECTION: undefined, ...env } });
  const policy = (text: string, name = "host.dw") => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const tables = () => ns.run(["nft", "list", "tables"]).stdout;
  const table = (t: string) => ns.run(["nft", "list", "table", ...t.split(" ")]).stdout;
  const ok = (r: { status: number | null; stderr: string }) => expect(r.status, r.stderr).toBe(0) as unknown;

  it("iptables on: loads exactly the file's table (diff -f nft silent), leaves the host's own table and the iptables rules as they were; again: nothing to change; rollback without a policy before deletes it", () => {
    ok(ns.run(["nft", "-f", "-"], HOSTS_OWN));
    const own = table("inet filter");
    const v4 = ns.save(4);
    const r = dockwall(["apply", policy(ON), "-f", "nft"]);
    // First what the change does to who reaches what: the host's own accept of 9999 no longer lets the lan in (test/analysis/nft-reach.test.ts proves such lines with packets).
    const [reach, said] = r.stderr.split("\n\n");
    expect(reach!.split("\n")[0]).toBe("reachability (IPv4):");
    expect(reach!.split("\n")).toContain("- closed lan 192.168.1.0/24 in eth1 -> host:9999/tcp (host)");
    expect(said).toBe(`dockwall: applied ${join(dir, "host.dw")}: inet dockwall (nft, one transaction)\n`);
    ok(r);
    expect(tables()).toBe("table inet filter\ntable inet dockwall\n");
    // Exactly the file: nft lists back what it was given.
    const file = run([bin, "compile", policy(ON), "-f", "nft"]).stdout;
    expect(table("inet dockwall")).toBe(file.slice(file.indexOf("table inet dockwall {")));
    expect(dockwall(["diff", policy(ON), "-f", "nft"]).status).toBe(0);
    expect(table("inet filter")).toBe(own);
    expect(ns.save(4)).toBe(v4);
    const again = dockwall(["apply", policy(ON), "-f", "nft"]);
    expect(again.stderr).toBe(`dockwall: applied ${join(dir, "host.dw")}: nothing to change, the loaded tables are what it says\n`);

    const back = dockwall(["rollback"]);
    expect(back.stderr).toBe("dockwall: the nftables tables from before the last apply are back in place; inet dockwall deleted (not there before)\n");
    ok(back);
    expect(tables()).toBe("table inet filter\n");
    expect(table("inet filter")).toBe(own);
  });

  it("an apply in one format after one in the other: what the one before loaded stays, and is said (with how to take nft's tables out)", () => {
    ok(dockwall(["apply", policy(ON)]));
    const v4 = ns.save(4);
    expect(v4).toMatch(/^-A DOCKER-USER /m);
    const toNft = dockwall(["apply", policy(ON), "-f", "nft"]);
    ok(toNft);
    expect(toNft.stderr.split("\n").filter((l) => l.startsWith("dockwall: note:"))).toEqual([
      `dockwall: note: the iptables rules that the apply of ${join(dir, "host.dw")} loaded stay as they are (iptables-save shows them): nftables' tables and iptables' rules both decide, and a drop in either is final: what stays can drop what this policy allows, and admits nothing it does not`,
    ]);
    expect(ns.save(4)).toBe(v4);
    // Again in nft: nothing to say.
    expect(dockwall(["apply", policy(ON), "-f", "nft"]).stderr).not.toMatch(/note:/);
    const toIptables = dockwall(["apply", policy(ON)]);
    ok(toIptables);
    expect(toIptables.stderr.split("\n").filter((l) => l.startsWith("dockwall: note:"))).toEqual([
      `dockwall: note: the nft tables that the apply of ${join(dir, "host.dw")} (-f nft) loaded stay: inet dockwall. iptables' rules and nftables' tables both decide, and a drop in either is final: what stays can drop what this policy allows, and admits nothing it does not; take them out with 'nft delete table inet dockwall'`,
    ]);
    ok(ns.run(["nft", "delete", "table", "inet", "dockwall"]));
    // Taken out: nothing to say.
    ok(dockwall(["apply", policy(ON), "-f", "nft"]));
    ok(ns.run(["nft", "delete", "table", "inet", "dockwall"]));
    expect(dockwall(["apply", policy(NARROW)]).stderr).not.toMatch(/note:/);
  });

  it("a table switched off (flags dormant: it filters nothing) is not what the file says: diff shows it, apply loads the file again", () => {
    ok(dockwall(["apply", policy(ON), "-f", "nft"]));
    ok(ns.run(["nft", "add", "table", "inet", "dockwall", "{ flags dormant; }"]));
    const dormant = dockwall(["diff", policy(ON), "-f", "nft"]);
    const [reach, diff] = dormant.stdout.split("\n\n");
    expect([dormant.status, diff!.split("\n").slice(2, 5)]).toEqual([1, ["@@ inet dockwall (the table itself) @@", "- flags dormant", "+ (no flags)"]]);
    // A dormant table filters nothing: loading the file closes again what it closes (ssh from any other source, here).
    expect(reach!.split("\n")).toContain("- closed any other source 0.0.0.0-192.168.0.255 192.168.2.0-255.255.255.255 in eth1 -> host:22/tcp (host)");
    expect(dockwall(["apply", policy(ON), "-f", "nft"]).stderr).toMatch(new RegExp(`\n\ndockwall: applied ${join(dir, "host.dw")}: inet dockwall \\(nft, one transaction\\)\n$`));
    expect(table("inet dockwall")).not.toContain("dormant");
    expect(dockwall(["diff", policy(ON), "-f", "nft"]).status).toBe(0);
  });

  it("--confirm not confirmed: the previous policy's table back exactly (exit 3); --no-wait with 'confirm --token' keeps the new one; --json as the schema says", async () => {
    ok(dockwall(["apply", policy(ON), "-f", "nft"]));
    const first = table("inet dockwall");
    const r = dockwall(["apply", policy(NARROW, "narrow.dw"), "-f", "nft", "--confirm", "1"]);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toContain(`dockwall: not confirmed in time: the tables of ${join(dir, "host.dw")} are back in place (nft), compiled again with Docker's facts as they are now\n`);
    expect(table("inet dockwall")).toBe(first);
    const j = dockwall(["apply", policy(NARROW, "narrow.dw"), "-f", "nft", "--confirm", "30", "--no-wait", "--json"]);
    ok(j);
    const out = JSON.parse(j.stdout) as { changed: boolean; families: object; nft: { tables: string[]; diff: string }; pending: { token: string } };
    expect(ajv.validate("dockwall#/definitions/apply", out) ? "" : ajv.errorsText(ajv.errors)).toBe("");
    expect([out.changed, out.families, out.nft.tables]).toEqual([true, {}, ["inet dockwall"]]);
    expect(out.nft.diff).toContain('- iifname "eth1" ip saddr 192.168.1.0/24 tcp dport 22 accept comment "dockwall"\n');
    expect(out.nft.diff).toContain('+ iifname "eth1" ip saddr 192.168.1.0/24 tcp dport 2222 accept comment "dockwall"\n');
    ok(dockwall(["confirm", "--token", out.pending.token]));
    expect(table("inet dockwall")).toContain("tcp dport 2222 accept");
    await new Promise((r) => setTimeout(r, 300));
    expect(dockwall(["diff", policy(NARROW, "narrow.dw"), "-f", "nft"]).status).toBe(0);
  });

  it("the lockout guard: dockwall's table, the iptables rules and an empty drop chain of another table each refuse (nothing loaded); another table's rules are named as not read; --force loads", () => {
    const ssh = { SSH_CONNECTION: "192.168.1.5 40000 192.168.1.1 22" };
    // dockwall's own table would drop it (the narrowed policy).
    const own = dockwall(["apply", policy(NARROW), "-f", "nft"], ssh);
    expect(own.status).toBe(2);
    expect(own.stderr).toContain("error: the new rules would not accept your SSH session's next connection (192.168.1.5 → 192.168.1.1:22 on eth1): no rule accepts it, and INPUT's policy is DROP\n");
    expect(tables()).toBe("");
    // The iptables rules loaded now drop it: a drop in any table is final.
    expect(ns.restore(4, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n").ok).toBe(true);
    const ipt = dockwall(["apply", policy(ON), "-f", "nft"], ssh);
    expect(ipt.status).toBe(2);
    expect(ipt.stderr).toContain("error: the iptables rules loaded now (which the nft file leaves as they are) would not accept your SSH session's next connection (192.168.1.5 → 192.168.1.1:22 on eth1): dropped by filter INPUT rule 1: -A INPUT -p tcp -m tcp --dport 22 -j DROP\n");
    expect(tables()).toBe("table ip filter\n");
    ns.run(["iptables", "-F", "INPUT"]);
    // Another table's empty input chain with policy drop.
    ok(ns.run(["nft", "-f", "-"], "table inet other {\n\tchain in {\n\t\ttype filter hook input priority 10; policy drop;\n\t}\n}\n"));
    const other = dockwall(["apply", policy(ON), "-f", "nft"], ssh);
    expect(other.status).toBe(2);
    expect(other.stderr).toContain("would not get in: table inet other chain in (hook input, priority 10) has no rules and policy drop, and a drop in any table is final\n");
    expect(tables()).not.toContain("dockwall");
    // With a rule there, dockwall cannot read it: named, and the apply goes on (the file does not change what it decides).
    ok(ns.run(["nft", "add", "rule", "inet", "other", "in", "tcp", "dport", "22", "accept"]));
    const unread = dockwall(["apply", policy(ON), "-f", "nft"], ssh);
    ok(unread);
    expect(unread.stderr).toContain("dockwall: the lockout guard did not read table inet other chain in (hook input, priority 10) (nftables rules of other tables): loading the file does not change what it decides\n");
    expect(tables()).toContain("table inet dockwall");
    const forced = dockwall(["apply", policy(NARROW), "-f", "nft", "--force"], ssh);
    ok(forced);
    expect(table("inet dockwall")).toContain("tcp dport 2222 accept");
  });

  it("iptables off (Docker 29.7): Docker's tables and dockwall's in one transaction; --check loads nothing; rollback without a policy before deletes both (ip6tables off: no ip6 table)", () => {
    const check = dockwall(["apply", policy(OFF), "-f", "nft", "--check"]);
    expect(check.stderr.split("\n\n")[1]).toBe(`dockwall: check: applying ${join(dir, "host.dw")} would change ip docker-bridges, inet dockwall; nothing was changed\n`);
    ok(check);
    expect(tables()).toBe("");
    ok(dockwall(["apply", policy(OFF), "-f", "nft"]));
    expect(tables().split("\n").filter(Boolean).sort()).toEqual(["table inet dockwall", "table ip docker-bridges"]);
    expect(dockwall(["diff", policy(OFF), "-f", "nft"]).status).toBe(0);
    ok(dockwall(["rollback"]));
    expect(tables()).toBe("");
  });

  it("a file nft refuses: nothing changed (one transaction), exit 2, and diff still finds the policy before in place", () => {
    ok(dockwall(["apply", policy(ON), "-f", "nft"]));
    const before = table("inet dockwall");
    const fake = join(dir, "fake");
    mkdirSync(fake);
    // nft that passes -c but refuses the load, as the kernel might (a missing module).
    writeFileSync(join(fake, "nft"), `#!/bin/sh\ncase "$*" in *-c*|list*|-j*) exec /usr/sbin/nft "$@";; esac\necho "Error: Could not process rule: No such file or directory" >&2; exit 1\n`);
    chmodSync(join(fake, "nft"), 0o755);
    const r = dockwall(["apply", policy(NARROW), "-f", "nft"], { PATH: `${fake}:/usr/sbin:/usr/bin:/sbin:/bin` });
    expect(r.status).toBe(2);
    // (The fake nft refuses the file in the scratch namespace where reachability is worked out too: said, not guessed.)
    expect(r.stderr).toBe(
      "dockwall: who reaches what was not worked out: the file did not load in a scratch network namespace (unshare --net, nft -f): Error: Could not process rule: No such file or directory\n" +
        "dockwall: not applied: nft refused the file: Error: Could not process rule: No such file or directory; nothing was changed (one transaction)\n",
    );
    expect(table("inet dockwall")).toBe(before);
    expect(dockwall(["diff", policy(ON), "-f", "nft"]).status).toBe(0);
  });
});
