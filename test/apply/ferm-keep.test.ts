// A ferm reload keeps other tools' chains and jumps, as apply does: the ferm.conf dockwall
// writes includes `dockwall ferm-keep`, which prints them in ferm's syntax when ferm runs.
// Real ferm loads the file in a scratch namespace seeded with fail2ban's chain and jump (and a
// libvirt-like mangle chain, a nat chain with its jump); the kernel must then hold exactly what
// `dockwall apply` leaves in another namespace seeded alike — in iptables off and on modes.
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { targetOptionsView } from "../../src/ir/match.js";
import { compile } from "../../src/compile.js";
import { fermKeep } from "../../src/apply/merge.js";
import { runFermKeep, type SystemIo } from "../../src/apply/command.js";
import { parseSave, normalise } from "../../src/live/save.js";
import { createNetns, deleteNetns, describeKernel, fermRestoreTool, withoutEmptyTables, type Netns } from "../lab/kernel.js";
import { baseEnv, run } from "../lab/proc.js";
import { dockersOwn } from "../lab/policylab.js";

const root = new URL("../../", import.meta.url).pathname;
const bin = `${root}bin/dockwall`;

const OTHERS_V4 = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
:f2b-nginx - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -s 10.9.9.9/32 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 80,443 -j f2b-nginx
-A f2b-nginx -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-nginx -j RETURN
-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:LIBVIRT_PRT - [0:0]
-A POSTROUTING -j LIBVIRT_PRT
-A LIBVIRT_PRT -o virbr0 -p udp -m udp --dport 68 -j CHECKSUM --checksum-fill
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ts-postrouting - [0:0]
-A POSTROUTING -j ts-postrouting
-A ts-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE
COMMIT
`;

const OTHERS_V6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -s 2001:db8::9/128 -j REJECT --reject-with icmp6-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
`;

describe("dockwall ferm-keep, in process", () => {
  it("prints other tools' chains (@preserve) and their jumps from the chains the ferm.conf writes; a table it does not write, whole", () => {
    const { text, kept } = fermKeep(parseSave(OTHERS_V4), { filter: ["INPUT", "FORWARD", "OUTPUT"], nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] });
    expect(text).toBe(
      [
        "  table filter {",
        "    chain (f2b-sshd f2b-nginx) @preserve;",
        "    chain INPUT {",
        "      proto tcp mod multiport destination-ports 22 jump f2b-sshd;",
        "      proto tcp mod multiport destination-ports (80 443) jump f2b-nginx;",
        "    }",
        "  }",
        "  table mangle {",
        "    chain (PREROUTING INPUT FORWARD OUTPUT POSTROUTING LIBVIRT_PRT) @preserve;",
        "  }",
        "  table nat {",
        "    chain ts-postrouting @preserve;",
        "    chain POSTROUTING {",
        "      jump ts-postrouting;",
        "    }",
        "  }",
        "",
      ].join("\n"),
    );
    expect(kept).toEqual(["filter f2b-sshd", "filter f2b-nginx", "mangle LIBVIRT_PRT", "nat ts-postrouting"]);
    // A table written without a built-in chain (iptables on, no host block: DOCKER-USER only).
    expect(fermKeep(parseSave(OTHERS_V4), { filter: [], nat: [], mangle: [] }).text).toBe("  table filter {\n    chain (f2b-sshd f2b-nginx) @preserve;\n  }\n  table mangle {\n    chain LIBVIRT_PRT @preserve;\n  }\n  table nat {\n    chain ts-postrouting @preserve;\n  }\n");
    // No host block (iptables off): INPUT's policy and rules are the host's, dockwall's jump aside.
    const host = "*filter\n:INPUT DROP [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A INPUT -i lo -j ACCEPT\n-A INPUT -j DOCKWALL-PROXY\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    expect(fermKeep(parseSave(host), { filter: ["INPUT", "FORWARD", "OUTPUT"] }, { hostsInput: true }).text).toBe(
      "  table filter {\n    chain f2b-sshd @preserve;\n    chain INPUT {\n      policy DROP;\n      proto tcp mod multiport destination-ports 22 jump f2b-sshd;\n      interface lo ACCEPT;\n      proto tcp dport 22 ACCEPT;\n    }\n  }\n",
    );
    // Docker's and dockwall's own chains are not other tools'.
    expect(fermKeep(parseSave("*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:DOCKWALL-PROXY - [0:0]\n-A INPUT -j DOCKWALL-PROXY\nCOMMIT\n"), { filter: ["INPUT"] }).text).toBe("");
  });

  const system = (save: (cmd: string) => string): SystemIo => ({ run: (cmd: string) => save(cmd) }) as unknown as SystemIo;
  const cli = (io: SystemIo, domain: string, chains: string[]) => {
    let stdout = "";
    let stderr = "";
    const code = runFermKeep(io, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }, domain, chains);
    return { code, stdout, stderr };
  };

  it("reads the tables ferm resets: the -legacy save tool where it is installed, as ferm does", () => {
    const asked: string[] = [];
    const legacy = cli(system((cmd) => (asked.push(cmd), OTHERS_V6)), "ip6", ["filter:INPUT"]);
    expect(asked).toEqual(["ip6tables-legacy-save"]);
    expect(legacy.stdout).toContain("chain f2b-sshd @preserve;");
    const plain = cli(system((cmd: string) => {
      asked.push(cmd);
      if (cmd.includes("legacy")) throw new Error("spawnSync iptables-legacy-save ENOENT");
      return OTHERS_V4;
    }), "ip", ["filter:INPUT"]);
    expect(asked.slice(1)).toEqual(["iptables-legacy-save", "iptables-save"]);
    expect(plain.code).toBe(0);
  });

  it("refuses what ferm would load differently or not at all (a second review's findings)", () => {
    const refused = (rule: string, family: 4 | 6 = 4, extra = "") =>
      fermKeep(parseSave(`*filter\n:INPUT DROP [0:0]\n:f2b - [0:0]\n${extra}${rule}\nCOMMIT\n`), { filter: ["INPUT"] }, { hostsInput: true, family }).problems;
    // Kept exactly (the control).
    expect(refused("-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j f2b")).toEqual([]);
    expect(refused("-A INPUT -s 10.0.0.0/255.0.255.0 -j ACCEPT")).toEqual([]);
    const why = (rule: string, family: 4 | 6 = 4, extra = "") => refused(rule, family, extra).map((p) => p.replace(/^.*: ferm's syntax for /, "").replace(/ is not known to dockwall$/, ""));
    expect(why("-A INPUT -p icmp -j DROP", 6)).toEqual(["-p icmp in IPv6"]);
    expect(why("-A INPUT -m conntrack --ctstate NEW -m limit --limit 3/min -m conntrack --ctorigdstport 22 -j ACCEPT")).toEqual(["a match module given twice in one rule"]);
    expect(why("-A INPUT -p tcp -m multiport --dports 80,443 -m tcp --sport 1024:65535 -j ACCEPT")).toEqual(["-m tcp after -m multiport"]);
    expect(why("-A INPUT -m addrtype ! --dst-type LOCAL,BROADCAST -j DROP")).toEqual(["-m addrtype --dst-type LOCAL,BROADCAST"]);
    expect(why("-A INPUT -j DOCKER-FOO", 4, ":DOCKER-FOO - [0:0]\n")).toEqual(["-j DOCKER-FOO"]);
    // A match module that takes no options (-m socket, -m frag): read as nothing, it made `ACCEPT;` of
    // `-m socket -j ACCEPT`, an accept of everything (a review). Refused now; a protocol's own match with none is nothing.
    expect(why("-A INPUT -m socket -j ACCEPT")).toEqual(["-m socket"]);
    expect(why("-A INPUT -m frag -j DROP", 6)).toEqual(["-m frag"]);
    expect(fermKeep(parseSave("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp -j DROP\nCOMMIT\n"), { filter: ["INPUT"] }, { hostsInput: true }).text).toContain("proto tcp DROP;");

    expect(refused("-A INPUT -j ACCEPT", 4, ":semi;c - [0:0]\n")).toEqual(["filter chain 'semi;c': ferm cannot name it"]);
    // Read back whole: a text value that is '!', and a target named only inside quoted text.
    const rules = parseSave('*filter\n:INPUT DROP [0:0]\n-A INPUT -j LOG --log-prefix "!" --log-level 6\n-A INPUT -s 10.9.0.0/16 -m comment --comment "was -j DOCKWALL-OLD" -j DROP\nCOMMIT\n').get("filter")!.chains.get("INPUT")!.rules;
    expect(targetOptionsView(rules[0]!.toRule().targetOptions)).toEqual([{ name: "log-prefix", value: "!" }, { name: "log-level", value: "6" }]);
    expect(rules[1]!.target).toBe("DROP");
    expect(fermKeep(parseSave(`*filter\n:INPUT DROP [0:0]\n${rules[1]!.text}\nCOMMIT\n`), { filter: ["INPUT"] }, { hostsInput: true }).text).toContain("saddr 10.9.0.0/16 mod comment comment 'was -j DOCKWALL-OLD' DROP;");
  });

  it("says what is wrong with its arguments, and exits 2", () => {
    const io = system(() => OTHERS_V4);
    expect(cli(io, "inet", [])).toMatchObject({ code: 2, stderr: "dockwall: ferm-keep takes ferm's domain, ip or ip6, not 'inet'\n" });
    expect(cli(io, "ip", ["filter:INPUT,DOCKER"])).toMatchObject({ code: 2, stderr: "dockwall: 'filter:INPUT,DOCKER' is not TABLE:[CHAIN,…], a table and the built-in chains written there (filter:INPUT,FORWARD; nat:)\n" });
    const broken = system(() => {
      throw new Error("iptables-legacy-save: permission denied (you must be root)");
    });
    // ferm then loads without keeping anything (at boot, stopping ferm would leave the host open).
    expect(cli(broken, "ip", [])).toMatchObject({ code: 0, stdout: "", stderr: "dockwall: cannot read the loaded rules (iptables-legacy-save: permission denied (you must be root)): ferm loads without keeping other tools' chains\n" });
    // Without a host block INPUT is the host's: loading without it would flush its rules, so ferm must stop.
    let stderr = "";
    expect(runFermKeep(broken, { stdout: () => {}, stderr: (s) => (stderr += s) }, "ip", ["filter:INPUT"], { hostsInput: true })).toBe(2);
    expect(stderr).toBe("dockwall: cannot read the loaded rules (iptables-legacy-save: permission denied (you must be root)): ferm must not load, INPUT's rules would be lost\n");
  });

  it("a rule it cannot write exactly in ferm's syntax: exit 2, so that ferm stops and the rules in place stay", () => {
    const io = system(() => "*filter\n:INPUT DROP [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -m recent --name SSH --set\n-A INPUT -m hashlimit --hashlimit-above 5/sec --hashlimit-name x -j f2b-sshd\nCOMMIT\n");
    const r = cli(io, "ip", ["filter:INPUT", "--hosts-input"].slice(0, 1));
    expect(r).toMatchObject({ code: 2, stdout: "" });
    expect(r.stderr).toBe(
      "dockwall: cannot keep filter -A INPUT -m hashlimit --hashlimit-above 5/sec --hashlimit-name x -j f2b-sshd: ferm's syntax for -m hashlimit is not known to dockwall\n" +
        "dockwall: ferm must not load: it would drop that rule. Remove the rule, or deploy with 'dockwall apply', which keeps any rule\n",
    );
    const hosts = runFermKeep(io, { stdout: () => {}, stderr: () => {} }, "ip", ["filter:INPUT"], { hostsInput: true });
    expect(hosts).toBe(2);
  });
});

describeKernel("a ferm reload keeps other tools' chains and jumps, as apply does", () => {
  let dir: string;
  const made: Netns[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-ferm-keep-"));
    // ferm runs `dockwall` from the PATH, as on a host where it is installed.
    run(["mkdir", "-p", join(dir, "bin")]);
    symlinkSync(bin, join(dir, "bin", "dockwall"));
  });
  afterAll(() => {
    for (const ns of made) deleteNetns(ns.name);
    rmSync(dir, { recursive: true, force: true });
  });
  const netns = () => {
    const ns = createNetns("-fk");
    made.push(ns);
    return ns;
  };
  const legacy = (ns: Netns, f: 4 | 6) => run(["ip", "netns", "exec", ns.name, f === 4 ? "iptables-legacy-save" : "ip6tables-legacy-save"]).stdout;
  const seed = (ns: Netns, f: 4 | 6, text: string, tool?: string) => {
    const r = ns.run([tool ?? (f === 4 ? "iptables-restore" : "ip6tables-restore"), "--noflush"], text);
    expect(r.stderr).toBe("");
  };
  const ferm = (ns: Netns, file: string, withDockwall = true) =>
    run(["ip", "netns", "exec", ns.name, "ferm", file], { env: { PATH: `${withDockwall ? join(dir, "bin") + ":" : ""}${baseEnv().PATH}` } });
  // ferm loads what it writes into the legacy tables where those tools exist.
  const usesLegacy = fermRestoreTool(4).includes("legacy");

  // iptables off; iptables on with a host block; iptables on without one (DOCKER-USER only).
  // iptables off without a host block: INPUT (policy, rules, jumps) stays the host's.
  // lan-admin without its host block: docker-proxy's guard goes first in the host's INPUT, before fail2ban's jump and the host's rules.
  const noHost = (t: string) => t.replace(/\nhost \{[\s\S]*?\n\}\n/, "\n");
  for (const [example, file, edit] of [["web-host", "examples/web-host.dw"], ["coexist", "examples/coexist.dw"], ["coexist-minimal", "test/golden/coexist-minimal/policy.dw"], ["published-open", "test/golden/published-open/policy.dw"], ["lan-admin-no-host", "examples/lan-admin.dw", noHost]] as const) {
    it(`${example}: the kernel after 'ferm ferm.conf' is the kernel after 'dockwall apply'`, () => {
      const text = (edit ?? ((t: string) => t))(readFileSync(`${root}${file}`, "utf8"));
      if (edit) expect(text).not.toMatch(/^host/m);
      const policy = join(dir, `${example}.dw`);
      writeFileSync(policy, text);
      const conf = join(dir, `${example}.ferm`);
      writeFileSync(conf, compile(text, { format: "ferm" }).output!);
      const byFerm = netns();
      const byApply = netns();
      const r = compile(text, { noRender: true });
      for (const [ns, tool] of [[byFerm, usesLegacy ? "legacy" : undefined], [byApply, undefined]] as const) {
        for (const f of [4, 6] as const) {
          const restore = tool ? (f === 4 ? "iptables-legacy-restore" : "ip6tables-legacy-restore") : undefined;
          if (r.policy!.docker.iptables) seed(ns, f, compile(dockersOwn(text, r.policy!), { format: f === 4 ? "iptables" : "ip6tables" }).output!, restore);
          seed(ns, f, f === 4 ? OTHERS_V4 : OTHERS_V6, restore);
        }
      }
      const loaded = ferm(byFerm, conf);
      expect(loaded.stderr).toBe("");
      expect(loaded.status).toBe(0);
      const applied = run(["ip", "netns", "exec", byApply.name, bin, "apply", policy], { env: { DOCKWALL_STATE_DIR: join(dir, `state-${example}`), SSH_CONNECTION: undefined } });
      expect(applied.status, applied.stderr).toBe(0);
      for (const f of [4, 6] as const) {
        const afterFerm = usesLegacy ? legacy(byFerm, f) : byFerm.save(f);
        expect(normalise(withoutEmptyTables(afterFerm))).toBe(normalise(withoutEmptyTables(byApply.save(f))));
        // Spelled out: fail2ban's chain, and its jump first in INPUT.
        expect(afterFerm).toMatch(/^:f2b-sshd - /m);
        const input = afterFerm.split("\n").filter((l) => l.startsWith("-A INPUT"));
        if (example === "lan-admin-no-host") expect(input.slice(0, 2)).toEqual(["-A INPUT -j DOCKWALL-PROXY", "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"]);
        else expect(input[0]).toBe("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd");
        if (example === "published-open" && f === 4) expect(afterFerm).toMatch(/^:INPUT DROP .*\n[\s\S]*^-A INPUT -s 10\.9\.9\.9\/32 -j ACCEPT$/m);
      }
    });
  }

  // What admins and tools put in INPUT: each must come back from ferm exactly (no host block: INPUT is the host's).
  const HOST_INPUT: Record<4 | 6, string[]> = {
    4: [
      "-A INPUT -p tcp -m multiport --dports 22,2222 -j f2b-sshd",
      "-A INPUT -i lo -j ACCEPT",
      "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
      "-A INPUT -m conntrack --ctstate INVALID -j DROP",
      "-A INPUT -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT",
      "-A INPUT -s 10.0.0.0/8 ! -i eth0 -p udp -m udp --sport 1000:2000 -j ACCEPT",
      "-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec --limit-burst 10 -j ACCEPT",
      "-A INPUT -p tcp -m comment --comment \"the admin's web\" -m tcp --dport 8443 -j ACCEPT",
      "-A INPUT -m iprange --src-range 10.1.1.1-10.1.1.9 -j DROP",
      "-A INPUT -m mark --mark 0x1/0xff -j ACCEPT",
      "-A INPUT -m addrtype --dst-type BROADCAST -j DROP",
      "-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset",
      "-A INPUT -m limit --limit 3/min -j LOG --log-prefix \"-IN- drop: \" --log-level 4",
      "-A INPUT ! -s 10.0.0.0/8 -p tcp -m tcp ! --dport 22 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP",
      "-A INPUT -p udp -m multiport ! --dports 53,123 -m state ! --state NEW -j DROP",
      "-A INPUT -p tcp -m tcp --sport 1024:65535 --dport 80 ! --tcp-flags SYN,ACK ACK -j ACCEPT",
      "-A INPUT -s 10.0.0.0/255.0.255.0 -j ACCEPT",
      "-A INPUT -s 10.9.0.0/16 -m comment --comment \"was -j DOCKWALL-OLD\" -j DROP",
    ],
    6: [
      "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT",
      "-A INPUT -s 2001:db8::/32 -p tcp -m tcp --dport 22 -j ACCEPT",
      "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ],
  };

  it("no host block: every kind of rule the host has in INPUT comes back from ferm exactly, IPv4 and IPv6", () => {
    const text = readFileSync(`${root}test/golden/published-open/policy.dw`, "utf8");
    const conf = join(dir, "hosts-input.ferm");
    writeFileSync(conf, compile(text, { format: "ferm" }).output!);
    const ns = netns();
    for (const f of [4, 6] as const) {
      const chains = f === 4 ? ":f2b-sshd - [0:0]\n-A f2b-sshd -j RETURN\n" : "";
      seed(ns, f, `*filter\n:INPUT DROP [0:0]\n${chains}${HOST_INPUT[f].join("\n")}\nCOMMIT\n`, usesLegacy ? (f === 4 ? "iptables-legacy-restore" : "ip6tables-legacy-restore") : undefined);
    }
    // As the kernel holds them (it leaves out defaults such as --log-level 4).
    const input = (f: 4 | 6) => parseSave(usesLegacy ? legacy(ns, f) : ns.save(f)).get("filter")!.chains.get("INPUT")!;
    const before = { 4: input(4).rules.map((r) => r.text), 6: input(6).rules.map((r) => r.text) };
    expect(before[4].length).toBe(HOST_INPUT[4].length);
    const loaded = ferm(ns, conf);
    expect(loaded.stderr).toBe("");
    expect(loaded.status).toBe(0);
    for (const f of [4, 6] as const) {
      expect(input(f).policy).toBe("DROP");
      expect(input(f).rules.map((r) => r.text)).toEqual(before[f]);
    }
  });

  it("a rule ferm-keep cannot write exactly: ferm stops, and the rules in place stay as they are", () => {
    const text = readFileSync(`${root}test/golden/published-open/policy.dw`, "utf8");
    const conf = join(dir, "refused.ferm");
    writeFileSync(conf, compile(text, { format: "ferm" }).output!);
    const ns = netns();
    seed(ns, 4, "*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --rsource\nCOMMIT\n", usesLegacy ? "iptables-legacy-restore" : undefined);
    const before = usesLegacy ? legacy(ns, 4) : ns.save(4);
    const loaded = ferm(ns, conf);
    expect(loaded.status).not.toBe(0);
    expect(loaded.stderr).toMatch(/dockwall: cannot keep filter -A INPUT -p tcp -m tcp --dport 22 -m recent .*: ferm's syntax for -m recent is not known to dockwall\n/);
    expect(normalise(usesLegacy ? legacy(ns, 4) : ns.save(4))).toBe(normalise(before));
  });

  it("without dockwall on the PATH, ferm loads the rest as written (other tools' chains are then lost, as before)", () => {
    const text = readFileSync(`${root}examples/web-host.dw`, "utf8");
    const conf = join(dir, "alone.ferm");
    writeFileSync(conf, compile(text, { format: "ferm" }).output!);
    const ns = netns();
    seed(ns, 4, OTHERS_V4, usesLegacy ? "iptables-legacy-restore" : undefined);
    const loaded = ferm(ns, conf, false);
    expect(loaded.stderr).toBe("");
    expect(loaded.status).toBe(0);
    const after = usesLegacy ? legacy(ns, 4) : ns.save(4);
    expect(after).not.toMatch(/f2b-sshd/);
    expect(after).toMatch(/^-A INPUT -i lo -m comment --comment dockwall -j ACCEPT$/m);
  });
});
