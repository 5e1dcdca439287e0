// The Ansible collection (ansible/) against a fleet of three hosts made of network namespaces.
//
// Each host is a namespace of its own (eth0 on a link to a "controller" namespace, eth1 on a
// lan), with its own DOCKWALL_STATE_DIR and a Docker facts file from the docker corpus (no
// dockerd). Ansible connects with `connection: local`, and each host's ansible_python_interpreter
// is a wrapper that
//   1. opens a TCP connection from the controller namespace to the host's port 22 (a listener
//      in the host's namespace): the rig's "connection", which the host's rules can cut, and
//   2. runs python in the host's namespace (`nsenter --net=/var/run/netns/NAME`; not `ip netns
//      exec`, which remounts /sys), with SSH_CONNECTION set as sshd would set it for that
//      connection unless the task's environment sets another one.
// So the module and dockwall run inside the host's namespace and the lockout guard sees the
// controller's session. Every playbook begins with a play that compares the netns of the
// module's interpreter with the namespace the test made for that host (and with the root
// namespace, read by the test beforehand) and aborts the whole run otherwise.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createNetns, deleteNetns, describeIf, kernelSupport, withoutEmptyTables, type Netns, type Support } from "../lab/kernel.js";
import { run, sleep, which } from "../lab/proc.js";

const root = new URL("../../", import.meta.url).pathname;
const bin = join(root, "bin/dockwall");
const corpus = join(root, "test/facts/corpus");

function support(): Support {
  const k = kernelSupport();
  if (!k.ok) return k;
  for (const t of ["ansible-playbook", "nsenter"]) if (!which(t)) return { ok: false, reason: `${t} is not installed` };
  if (!which("/usr/bin/python3")) return { ok: false, reason: "no /usr/bin/python3" };
  if (!/--check/.test(run([bin, "apply", "--help"]).stdout)) return { ok: false, reason: "bin/dockwall has no apply --check --json" };
  return { ok: true };
}

interface Host {
  name: string;
  ns: Netns;
  dir: string;
  addr: string; // the host's address on eth0
  ctrl: string; // the controller's address on that link
  facts: string;
  allow: string;
}

const POLICY = (h: Host, admin = h.ctrl, extra = "") => `# ${h.name}: facts from the docker corpus
docker { version 20.10; iptables off; userland-proxy off; }
zone wan   { interface eth0; }
zone lan   { interface eth1; from 192.168.1.0/24; }
zone admin { from ${admin}; }
${h.allow}
${extra}host { allow admin tcp 22; allow lan tcp 22; allow any icmp; }
`;

interface PlayResult {
  status: number | null;
  stderr: string;
  json: { plays: { play: { name: string }; tasks: { task: { name: string }; hosts: Record<string, Record<string, any>> }[] }[]; stats: Record<string, { changed: number; failures: number; ok: number; unreachable: number }> };
  ms: number;
}

describeIf(support, "ansible", "dockwall.firewall against three namespace hosts", () => {
  let dir: string;
  let ctrl: Netns;
  const hosts: Host[] = [];
  const listeners: ChildProcess[] = [];
  let rootNetns: string;
  const times: Record<string, number> = {};

  beforeAll(() => {
    rootNetns = readlinkSync("/proc/self/ns/net");
    dir = mkdtempSync(join(tmpdir(), "dockwall-ansible-"));
    // the collection, where Ansible looks for it
    mkdirSync(join(dir, "collections/ansible_collections/dockwall"), { recursive: true });
    cpSync(join(root, "ansible"), join(dir, "collections/ansible_collections/dockwall/firewall"), { recursive: true });
    ctrl = createNetns("-ctl");
    const specs = [
      ["publish-tcp", "allow lan to web:8080;"],
      ["publish-udp", "allow lan to dns:5353/udp;"],
      ["user-net-fixed", "allow lan to web:8090;"],
    ] as const;
    const inventory: string[] = ["[fleet]"];
    specs.forEach(([fixture, allow], i) => {
      const n = i + 1;
      const name = `h${n}`;
      const ns = createNetns(`-${name}`);
      const hdir = join(dir, name);
      mkdirSync(hdir);
      const h: Host = { name, ns, dir: hdir, addr: `10.77.${n}.1`, ctrl: `10.77.${n}.2`, facts: join(hdir, "facts.json"), allow };
      cpSync(join(corpus, fixture, "state.json"), h.facts);
      writeFileSync(join(hdir, "host.dw"), POLICY(h));
      // eth0: a link to the controller namespace (created inside the host's namespace, its peer
      // moved straight into the controller's: the root namespace's interfaces are never touched)
      const sh = (argv: string[]) => {
        const r = run(argv);
        if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
      };
      sh(["ip", "-n", ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", `to-${name}`, "netns", ctrl.name]);
      sh(["ip", "-n", ns.name, "addr", "add", `${h.addr}/24`, "dev", "eth0"]);
      sh(["ip", "-n", ns.name, "link", "set", "eth0", "up"]);
      sh(["ip", "-n", ctrl.name, "addr", "add", `${h.ctrl}/24`, "dev", `to-${name}`]);
      sh(["ip", "-n", ctrl.name, "link", "set", `to-${name}`, "up"]);
      sh(["ip", "-n", ns.name, "link", "add", "eth1", "type", "veth", "peer", "name", "lan1"]);
      sh(["ip", "-n", ns.name, "addr", "add", "192.168.1.1/24", "dev", "eth1"]);
      sh(["ip", "-n", ns.name, "link", "set", "eth1", "up"]);
      // a global IPv6 address, and Docker's bridges as the facts name them (no dockerd: empty bridges)
      sh(["ip", "-n", ns.name, "addr", "add", `2001:db8:${n}::1/64`, "dev", "eth0", "nodad"]);
      sh(["ip", "-n", ns.name, "addr", "add", `fd00:${n}::1/64`, "dev", "eth1", "nodad"]);
      for (const [br, addr] of [["docker0", "172.17.0.1/16"], ...(fixture === "user-net-fixed" ? [["br-app", "172.20.0.1/16"]] : [])]) {
        sh(["ip", "-n", ns.name, "link", "add", br!, "type", "bridge"]);
        sh(["ip", "-n", ns.name, "addr", "add", addr!, "dev", br!]);
        sh(["ip", "-n", ns.name, "link", "set", br!, "up"]);
      }
      // "sshd": a listener on port 22 in the host's namespace
      const l = spawn("nsenter", [`--net=${ns.path}`, "/usr/bin/python3", "-c",
        "import socket\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\ns.bind(('::',22))\ns.listen(64)\nwhile True:\n  c,_=s.accept(); c.close()\n"], { stdio: "ignore" });
      listeners.push(l);
      const py = join(dir, `py-${name}`);
      writeFileSync(py, `#!/bin/sh
# ${name}: connect as ssh would (a new TCP connection from the controller to ${h.addr}:22), then
# run python in ${name}'s network namespace with the session sshd would announce.
if ! nsenter --net=${ctrl.path} /usr/bin/python3 -c 'import socket; socket.create_connection(("${h.addr}", 22), timeout=1).close()' 2>/dev/null; then
  echo "rig: cannot connect to ${name} (${h.addr}:22) from the controller" >&2
  exit 255
fi
export SSH_CONNECTION="\${SSH_CONNECTION:-${h.ctrl} 50022 ${h.addr} 22}"
exec nsenter --net=${ns.path} /usr/bin/python3 "$@"
`);
      chmodSync(py, 0o755);
      const inode = statSync(ns.path).ino;
      inventory.push(
        `${name} ansible_connection=local ansible_python_interpreter=${py} rig_netns='net:[${inode}]' dw_src=${join(hdir, "host.dw")} dw_facts=${h.facts} dw_state=${join(hdir, "state")} dw_addr=${h.addr} dockwall_report_policy=${join(hdir, "host.dw")} dockwall_report_facts=${h.facts} dockwall_state_dir=${join(hdir, "state")} dockwall_executable=${bin}`,
      );
      hosts.push(h);
    });
    writeFileSync(join(dir, "inventory.ini"), inventory.join("\n") + "\n");
    writeFileSync(join(dir, "ansible.cfg"), "[defaults]\n");
    // the guard: every playbook imports it first
    writeFileSync(
      join(dir, "guard.yml"),
      `- name: refuse to run anywhere but in the rig's namespaces
  hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: the network namespace of the module's interpreter
      ansible.builtin.command: readlink /proc/self/ns/net
      register: netns
      changed_when: false
      check_mode: false
    - name: it is this host's namespace, not the root namespace
      ansible.builtin.assert:
        that:
          - netns.stdout == rig_netns
          - netns.stdout != root_netns
        fail_msg: "the module runs in {{ netns.stdout }}, not in {{ rig_netns }} (root: {{ root_netns }}): stop"
`,
    );
    const play = (name: string, task: string, hostsPattern = "all") =>
      writeFileSync(
        join(dir, `${name}.yml`),
        `- ansible.builtin.import_playbook: guard.yml
- name: ${name}
  hosts: ${hostsPattern}
  gather_facts: false
  tasks:
${task}`,
      );
    const policyTask = (extra = "") => `    - name: dockwall policy
      dockwall.firewall.policy:
        src: "{{ dw_src }}"
        facts: "{{ dw_facts }}"
        state_dir: "{{ dw_state }}"
        executable: ${bin}
${extra}`;
    play("converge", policyTask());
    play("lockout", policyTask() + `      environment:\n        SSH_CONNECTION: "203.0.113.50 40000 {{ dw_addr }} 22"\n`);
    play("confirm", policyTask("        confirm: 15\n"));
    play("cut", policyTask("        confirm: 3\n        force: true\n"));
    play("nft", policyTask("        format: nft\n"));
  }, 120_000);

  afterAll(() => {
    for (const l of listeners) l.kill("SIGKILL");
    for (const h of hosts) deleteNetns(h.ns.name);
    if (ctrl) deleteNetns(ctrl.name);
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`ansible-playbook runs (ms): ${JSON.stringify(times)}`);
  });

  const playbook = (name: string, args: string[] = [], label = name): PlayResult => {
    const t0 = Date.now();
    const r = run(["ansible-playbook", "-i", join(dir, "inventory.ini"), "-e", `root_netns='${rootNetns}'`, ...args, name.includes(".") ? name : join(dir, `${name}.yml`)], {
      env: {
        LC_ALL: "C.UTF-8",
        ANSIBLE_COLLECTIONS_PATH: join(dir, "collections"),
        ANSIBLE_STDOUT_CALLBACK: "rigjson", // test/ansible/callback/rigjson.py: ansible-core 2.14 has no json callback
        ANSIBLE_CALLBACK_PLUGINS: join(root, "test/ansible/callback"),
        ANSIBLE_LOCAL_TEMP: join(dir, "tmp-local"),
        ANSIBLE_REMOTE_TEMP: join(dir, "tmp-remote"),
        ANSIBLE_RETRY_FILES_ENABLED: "0",
        ANSIBLE_NOCOLOR: "1",
        ANSIBLE_CONFIG: join(dir, "ansible.cfg"),
        SSH_CONNECTION: undefined,
      },
      timeoutMs: 120_000,
    });
    const ms = Date.now() - t0;
    times[label] = ms;
    let json: PlayResult["json"];
    try {
      json = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
    } catch {
      throw new Error(`ansible-playbook ${name}: no JSON (exit ${r.status})\n${r.stdout}\n${r.stderr}`);
    }
    return { status: r.status, stderr: r.stderr, json, ms };
  };
  /** The result of the last play's dockwall task per host. */
  const results = (p: PlayResult) => {
    const last = p.json.plays[p.json.plays.length - 1]!;
    return last.tasks.find((t) => t.task.name === "dockwall policy")?.hosts ?? {};
  };
  const changed = (p: PlayResult) => Object.fromEntries(hosts.map((h) => [h.name, p.json.stats[h.name]?.changed]));
  const kernel = () => Object.fromEntries(hosts.map((h) => [h.name, [h.ns.save(4), h.ns.save(6)]]));

  it("the guard play aborts when a host's interpreter is not in that host's namespace", () => {
    // a wrong expectation for h2 (another host's namespace): nothing after the guard runs
    const p = playbook("converge", ["--check", "-e", "rig_netns=net:[1]"], "guard-abort");
    expect(p.status).not.toBe(0);
    expect(p.json.plays.length).toBe(1);
    for (const h of hosts) expect(p.json.stats[h.name]?.failures).toBe(1);
  }, 90_000);

  it("check mode before converging: changed on every host, the rule diff and the reachability delta; the kernel is byte-identical", () => {
    const before = kernel();
    const p = playbook("converge", ["--check", "--diff"], "check-1");
    expect(p.status, p.stderr).toBe(0);
    expect(changed(p)).toEqual({ h1: 1, h2: 1, h3: 1 });
    const r = results(p);
    expect(r.h1!.diff.prepared).toMatch(/^# IPv4 rules \(- loaded, \+ .*host\.dw\)\n/);
    expect(r.h1!.diff.prepared).toContain("+ -A INPUT -s 10.77.1.2/32 -p tcp -m tcp --dport 22 -m comment --comment dockwall -j ACCEPT");
    expect(r.h1!.families.ipv4.changed).toBe(true);
    expect(r.h1!.reachability.some((c: any) => c.column === "web:8080/tcp" && c.after === "open" && c.from.startsWith("lan"))).toBe(true);
    expect(r.h2!.reachability.some((c: any) => c.column === "dns:5353/udp")).toBe(true);
    expect(kernel()).toEqual(before);
    for (const h of hosts) expect(run(["test", "-e", join(h.dir, "state")]).status).toBe(1);
  }, 90_000);

  it("converge: changed on every host; again: changed=0; check mode then: changed=0, nothing to diff", () => {
    const p1 = playbook("converge", [], "apply-1");
    expect(p1.status, p1.stderr).toBe(0);
    expect(changed(p1)).toEqual({ h1: 1, h2: 1, h3: 1 });
    for (const h of hosts) expect(h.ns.save(4)).toContain(`-A INPUT -s ${h.ctrl}/32 -p tcp -m tcp --dport 22 -m comment --comment dockwall -j ACCEPT`);
    const after = kernel();
    const p2 = playbook("converge", [], "apply-2");
    expect(p2.status, p2.stderr).toBe(0);
    expect(changed(p2)).toEqual({ h1: 0, h2: 0, h3: 0 });
    const p3 = playbook("converge", ["--check", "--diff"], "check-2");
    expect(p3.status, p3.stderr).toBe(0);
    expect(changed(p3)).toEqual({ h1: 0, h2: 0, h3: 0 });
    expect(kernel()).toEqual(after);
  }, 90_000);

  it("drift on h2 (iptables -F DOCKER-USER): check mode reports h2 only; converge repairs h2 only", () => {
    const r = run(["ip", "netns", "exec", hosts[1]!.ns.name, "iptables", "-F", "DOCKER-USER"]);
    expect(r.status, r.stderr).toBe(0);
    const drifted = kernel();
    const p = playbook("converge", ["--check", "--diff"], "check-drift");
    expect(p.status, p.stderr).toBe(0);
    expect(changed(p)).toEqual({ h1: 0, h2: 1, h3: 0 });
    expect(results(p).h2!.diff.prepared).toContain("-A DOCKER-USER");
    expect(kernel()).toEqual(drifted);
    const fix = playbook("converge", [], "apply-drift");
    expect(changed(fix)).toEqual({ h1: 0, h2: 1, h3: 0 });
    expect(hosts[1]!.ns.save(4)).toContain("-A DOCKER-USER");
  }, 90_000);

  it("a lockout is refused in check mode: a session from the wan to h2's port 22, which the policy drops", () => {
    const before = kernel();
    const p = playbook("lockout", ["--check", "-l", "h2"], "check-lockout");
    expect(p.status).not.toBe(0);
    const r = results(p).h2!;
    expect(r.failed).toBe(true);
    expect(r.msg).toMatch(/^apply would be refused \(lockout\): .*would not accept your SSH session's next connection \(203\.0\.113\.50 → 10\.77\.2\.1:22 on eth0\)/s);
    expect(r.refused.reason).toBe("lockout");
    expect(p.json.stats.h2!.failures).toBe(1);
    expect(kernel()).toEqual(before);
  }, 90_000);

  it("a policy error fails with dockwall's diagnostics (file:line:col) in msg and as data", () => {
    const h = hosts[0]!;
    const good = readFileSync(join(h.dir, "host.dw"), "utf8");
    writeFileSync(join(h.dir, "host.dw"), good.replace("192.168.1.0/24", "192.168.1.300/24"));
    try {
      const before = kernel();
      const p = playbook("converge", ["-l", "h1"], "apply-error");
      const r = results(p).h1!;
      expect(r.failed).toBe(true);
      expect(r.changed).toBe(false);
      const col = "zone lan   { interface eth1; from 192.168.1.".length + 1; // the caret is under 300
      expect(r.msg).toBe(`${join(h.dir, "host.dw")}:4:${col}: error: '300' in IPv4 address '192.168.1.300': each part must be 0 to 255`);
      expect(r.diagnostics.find((d: any) => d.severity === "error")).toMatchObject({ line: 4, column: col });
      expect(kernel()).toEqual(before);
    } finally {
      writeFileSync(join(h.dir, "host.dw"), good);
    }
  }, 90_000);

  it("confirm through the action plugin: loaded, then confirmed over a new connection", () => {
    const h = hosts[0]!;
    writeFileSync(join(h.dir, "host.dw"), POLICY(h, h.ctrl, "allow wan from 203.0.113.0/24 to web:8080;\n"));
    const p = playbook("confirm", ["-l", "h1"], "apply-confirm");
    expect(p.status, p.stderr).toBe(0);
    const r = results(p).h1!;
    expect(r.confirmed).toBe(true);
    expect(r.pending.token).toMatch(/\S/);
    expect(r.outcome.ok).toBe(true);
    expect(changed(p).h1).toBe(1);
    expect(h.ns.save(4)).toContain("-s 203.0.113.0/24");
    expect(run(["test", "-e", join(h.dir, "state/pending.json")]).status).toBe(1);
    // nothing waits any more: an apply goes through (nothing to change)
    expect(changed(playbook("converge", ["-l", "h1"], "apply-after-confirm")).h1).toBe(0);
  }, 90_000);

  it("a confirm that never comes: h3's new rules cut the controller's connection, and h3 rolls back on its own", async () => {
    const h = hosts[2]!;
    const before = withoutEmptyTables(h.ns.save(4));
    // admin is no longer the controller: its next connection to port 22 is dropped
    writeFileSync(join(h.dir, "host.dw"), POLICY(h, "10.99.0.2"));
    const p = playbook("cut", ["-l", "h3"], "apply-cut");
    expect(p.status).not.toBe(0);
    const r = results(p).h3!;
    expect(r.failed).toBe(true);
    expect(r.msg).toMatch(/could not be reached again over a new connection to confirm them \(.*rig: cannot connect to h3.*\); the host puts back the rules from before on its own after 3 s/s);
    const t0 = Date.now();
    while (withoutEmptyTables(h.ns.save(4)) !== before && Date.now() - t0 < 15_000) await sleep(200);
    expect(withoutEmptyTables(h.ns.save(4))).toBe(before);
    // the controller gets in again
    writeFileSync(join(h.dir, "host.dw"), POLICY(h));
    expect(changed(playbook("converge", ["--check", "-l", "h3"], "check-after-rollback")).h3).toBe(0);
  }, 60_000);

  it("the fleet report: one table on the controller, each host's verify; a hand-made ACCEPT on h1 shows there only", () => {
    const r = run(["ip", "netns", "exec", hosts[0]!.ns.name, "iptables", "-I", "DOCKER-USER", "-j", "ACCEPT"]);
    expect(r.status, r.stderr).toBe(0);
    const dest = join(dir, "fleet.md");
    const p = playbook("dockwall.firewall.fleet_report", ["-e", `dockwall_report_dest=${dest}`], "fleet-report");
    expect(p.status, p.stderr + JSON.stringify(p.json.plays)).toBe(0);
    // nothing changes on the hosts; the table written on the controller (run_once) counts under the first host
    expect(changed(p)).toEqual({ h1: 1, h2: 0, h3: 0 });
    expect(p.json.plays[0]!.tasks.find((t) => t.task.name.startsWith("Run dockwall"))!.hosts.h1!.changed).toBe(false);
    const table = readFileSync(dest, "utf8");
    const summary = Object.fromEntries([...table.matchAll(/^\| (h\d) \| (\d+) \| (\d+) \|$/gm)].map((m) => [m[1], Number(m[3])]));
    expect(summary.h1).toBeGreaterThan(0);
    expect(summary, table).toMatchObject({ h2: 0, h3: 0 });
    expect(table).toMatch(/^\| h1 \| wan .* in eth0 \| web:8080\/tcp \| IPv4 \| \w+ \| open \| not-allowed \| yes \|$/m);
    expect(table).not.toMatch(/^\| h[23] \| .* \| yes \|$/m);
  }, 90_000);

  it("format: nft on h1 (a host whose firewall is nftables): check mode shows the tables and their diff, then it loads them; again changed=0", () => {
    const h = hosts[0]!;
    const good = readFileSync(join(h.dir, "host.dw"), "utf8");
    // With Docker's firewall off, --format nft writes Docker's tables as dockerd 29.7 does.
    writeFileSync(join(h.dir, "host.dw"), good.replace(/version 20\.10; iptables off;/, "version 29.7; iptables off; ip6tables off;"));
    try {
      const check = results(playbook("nft", ["-l", "h1", "--check", "--diff"], "nft-check")).h1!;
      expect([check.failed ?? false, check.changed, check.nft.tables]).toEqual([false, true, ["ip docker-bridges", "inet dockwall"]]);
      expect(check.nft.diff).toMatch(/^@@ inet dockwall chain input-ip \(new chain\) @@$/m);
      expect(h.ns.run(["nft", "list", "tables"]).stdout).not.toContain("inet dockwall");
      const load = playbook("nft", ["-l", "h1"], "nft-apply");
      expect(load.status, load.stderr).toBe(0);
      expect(changed(load).h1).toBe(1);
      expect(h.ns.run(["nft", "list", "tables"]).stdout).toContain("table inet dockwall");
      expect(changed(playbook("nft", ["-l", "h1"], "nft-again")).h1).toBe(0);
    } finally {
      writeFileSync(join(h.dir, "host.dw"), good);
      for (const t of ["inet dockwall", "ip docker-bridges"]) h.ns.run(["nft", "delete", "table", ...t.split(" ")]);
    }
  }, 90_000);
});
