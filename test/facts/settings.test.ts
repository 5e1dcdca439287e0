// Docker settings that change what Docker's rules are and that dockwall does not reproduce
// (issue 22): each is an error naming the Docker object (or the policy's line) it is about,
// from compile, check, diff and apply alike — never a silent compile. The facts are the
// corpus' (what a real dockerd 20.10 answered), with the setting changed.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import type { SystemIo } from "../../src/apply/command.js";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { memoryIo } from "../support/io.js";

type Facts = { networks: Record<string, any>[]; containers: Record<string, any>[]; info?: unknown; version?: unknown };
const corpus = (name: string): Facts => JSON.parse(readFileSync(new URL(`./corpus/${name}/state.json`, import.meta.url), "utf8")) as Facts;

/** user-net-fixed: web on network app (br-app), publishing 8090:80. */
function withOptions(options: Record<string, string>): Facts {
  const f = corpus("user-net-fixed");
  Object.assign(f.networks.find((n) => n.Name === "app")!.Options, options);
  return f;
}

/** publish-tcp with a network of `driver` that web (running or not) is attached to as well. */
function attached(driver: string, running = true, options: Record<string, string> = {}): Facts {
  const f = corpus("publish-tcp");
  const net = { ...structuredClone(f.networks[0]!), Name: "other", Id: "5a".repeat(32), Driver: driver, Options: options, Containers: {} };
  f.networks.push(net);
  f.containers[0]!.NetworkSettings.Networks.other = { NetworkID: net.Id, IPAddress: "10.99.0.2", IPPrefixLen: 24 };
  f.containers[0]!.State.Running = running;
  return f;
}

/** publish-tcp's web on the host's network, as dockerd 20.10 shows it, with what it publishes (-p) and exposes. */
function onHost(bindings: Record<string, unknown> = {}, exposed: Record<string, unknown> = {}): Facts {
  const f = corpus("publish-tcp");
  const web = f.containers[0]!;
  web.HostConfig.NetworkMode = "host";
  web.HostConfig.PortBindings = bindings;
  web.Config.ExposedPorts = exposed;
  web.NetworkSettings.Ports = {};
  web.NetworkSettings.Networks = { host: { NetworkID: f.networks.find((n) => n.Name === "host")!.Id, IPAddress: "" } };
  return f;
}

const OFF = "docker { version 28; iptables off; userland-proxy off; published open; }\n";
const ON = "docker { version 29; iptables on; published open; }\n";

function diagnose(policy: string, facts: Facts) {
  const r = compile(policy, { checkOnly: true, facts: { raw: facts as never, source: "host.json" } });
  return r.diagnostics.map((d) => `${d.severity} ${d.code}: ${d.message}`);
}

describe("network options", () => {
  test.each([
    ["gateway_mode_ipv4", "routed", /^error gateway-mode: network 'app' has the routed gateway mode for IPv4 \(com\.docker\.network\.bridge\.gateway_mode_ipv4=routed\): Docker then writes no NAT/],
    ["gateway_mode_ipv6", "routed", /^error gateway-mode: network 'app' has the routed gateway mode for IPv6 /],
    ["gateway_mode_ipv4", "nat-unprotected", /^error gateway-mode: .*: Docker then lets every port of its containers, published or not, be reached/],
    ["gateway_mode_ipv6", "isolated", /^error gateway-mode: network 'app' has the isolated gateway mode for IPv6 /],
    ["gateway_mode_ipv4", "bridged", /^error gateway-mode: network 'app' has the gateway mode 'bridged' for IPv4 \(.*=bridged\), which dockwall does not know$/],
    ["trusted_host_interfaces", "eth1:eth2", /^error trusted-interfaces: network 'app' trusts the host interfaces 'eth1:eth2' /],
  ])("%s=%s: an error at the network", (option, value, message) => {
    const ds = diagnose(OFF, withOptions({ [`com.docker.network.bridge.${option}`]: value }));
    expect(ds).toHaveLength(1);
    expect(ds[0]).toMatch(message);
  });

  test("under watch (factsErrors warn), such a network holds back nothing else: a warning, and it and its containers are left out, the others' rules compile (a review)", () => {
    // publish-tcp's web on the default bridge, and c2 alone on a network in the routed gateway mode.
    const f = corpus("publish-tcp");
    const weird = { ...structuredClone(f.networks[0]!), Name: "weird", Id: "7b".repeat(32), Options: { "com.docker.network.bridge.name": "br-weird", "com.docker.network.bridge.gateway_mode_ipv4": "routed" }, IPAM: { Driver: "default", Config: [{ Subnet: "172.31.0.0/16", Gateway: "172.31.0.1" }] }, Containers: {} };
    f.networks.push(weird);
    const c2 = structuredClone(f.containers[0]!);
    c2.Id = "c2".repeat(32);
    c2.Name = "/c2";
    c2.NetworkSettings.Networks = { weird: { NetworkID: weird.Id, IPAddress: "172.31.0.2", IPPrefixLen: 16, Gateway: "172.31.0.1" } };
    c2.NetworkSettings.Ports = { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "9000" }] };
    c2.HostConfig.PortBindings = { "80/tcp": [{ HostIp: "", HostPort: "9000" }] };
    f.containers.push(c2);
    const policy = "docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to web, c2;\n";
    // Without warn: an error, nothing compiled.
    expect(compile(policy, { format: "iptables", facts: { raw: f as never, source: "host.json" } }).ok).toBe(false);
    const r = compile(policy, { format: "iptables", factsErrors: "warn", facts: { raw: f as never, source: "host.json" } });
    expect(r.ok, r.diagnostics.map((d) => d.message).join("\n")).toBe(true);
    const w = r.diagnostics.filter((d) => d.code === "gateway-mode");
    expect(w.map((d) => [d.severity, d.leftOut])).toEqual([["warning", true]]);
    expect(w[0]!.message).toMatch(/; until then the network and its containers are left out of the rules/);
    expect(r.policy!.networks.map((n) => n.name)).not.toContain("weird");
    expect(r.policy!.containers.map((c) => c.name)).toEqual(["web"]);
    expect(r.output).toContain("--to-destination 172.17.0.2:80");
    expect(r.output).not.toContain("172.31.0.2");
    expect(r.output).not.toContain("br-weird");
  });

  test("--format nft with iptables off: a bridge whose name does not fit in an nft chain name is an error at the network, not a crash; under watch it is left out", () => {
    const f = withOptions({ "com.docker.network.bridge.name": "we@rd" });
    const policy = "docker { version 29.7; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to web;\n";
    const r = compile(policy, { format: "nft", facts: { raw: f as never, source: "host.json" } });
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.span.docker?.name])).toEqual([["bad-name", "app"]]);
    const w = compile(policy, { format: "nft", factsErrors: "warn", facts: { raw: f as never, source: "host.json" } });
    expect(w.ok).toBe(true);
    expect(w.output).not.toContain("we@rd");
  });

  test("the default gateway mode, written or empty, compiles as before", () => {
    for (const value of ["nat", ""]) {
      const f = withOptions({ "com.docker.network.bridge.gateway_mode_ipv4": value, "com.docker.network.bridge.gateway_mode_ipv6": value, "com.docker.network.bridge.trusted_host_interfaces": "" });
      expect(diagnose(OFF, f)).toEqual([]);
      const r = compile(OFF, { format: "iptables", facts: { raw: f as never, source: "host.json" } });
      expect(r.output).toBe(compile(OFF, { format: "iptables", facts: { raw: corpus("user-net-fixed") as never, source: "host.json" } }).output);
    }
  });
});

describe("containers on networks whose traffic dockwall's rules never see", () => {
  test.each([
    ["macvlan", { parent: "eth1" }, /^error unfiltered-network: container 'web' is on macvlan network 'other': its traffic goes in and out through the host interface eth1 without crossing the host's FORWARD chain/],
    ["ipvlan", { parent: "eth1.10", ipvlan_mode: "l3" }, /^error unfiltered-network: container 'web' is on ipvlan network 'other': its traffic goes in and out through the host interface eth1\.10 /],
    ["overlay", {}, /^error unfiltered-network: container 'web' is on overlay network 'other': other swarm nodes reach it through VXLAN/],
    ["weaveworks/net-plugin:latest_release", {}, /^error unfiltered-network: container 'web' is on weaveworks\/net-plugin:latest_release network 'other': dockwall writes rules for bridge networks only, and does not know where the traffic of driver /],
  ])("%s: an error naming the container and the network", (driver, options, message) => {
    const ds = diagnose(OFF, attached(driver, true, options));
    expect(ds).toHaveLength(1);
    expect(ds[0]).toMatch(message);
  });

  test("the network is named in a note, at its Docker object", () => {
    const r = compile(OFF, { checkOnly: true, facts: { raw: attached("macvlan", true, { parent: "eth1" }) as never, source: "host.json" } });
    expect(r.diagnostics[0]!.span.docker).toMatchObject({ kind: "container", name: "web" });
    expect(r.diagnostics[0]!.notes).toEqual([{ message: "the macvlan network (parent eth1)", span: expect.objectContaining({ docker: expect.objectContaining({ kind: "network", name: "other" }) }) }]);
  });

  test("under watch (factsErrors warn), such a container holds back nothing else: a warning, and the rules compile", () => {
    const r = compile(OFF, { noRender: true, factsErrors: "warn", facts: { raw: attached("macvlan", true, { parent: "eth1" }) as never, source: "host.json" } });
    expect(r.ok).toBe(true);
    const w = r.diagnostics.filter((d) => d.code === "unfiltered-network");
    expect(w.map((d) => [d.severity, d.leftOut])).toEqual([["warning", true]]);
    expect(w[0]!.message).toMatch(/; every other change is applied meanwhile \(its own traffic never meets dockwall's rules, whatever the watcher does\)$/);
  });

  test("a stopped container, and such a network with no container, are nothing to refuse", () => {
    expect(diagnose(OFF, attached("macvlan", false, { parent: "eth1" }))).toEqual([]);
    const f = attached("macvlan", true, { parent: "eth1" });
    delete f.containers[0]!.NetworkSettings.Networks.other;
    expect(diagnose(OFF, f)).toEqual([]);
  });
});

describe("containers on the host's network", () => {
  const asked = { "9100/tcp": [{ HostIp: "", HostPort: "9100" }] };
  const HOST = "zone lan { interface eth1; }\nhost { allow lan tcp 22; }\n";
  test("publishing or exposing, no host block: an error that lists its ports", () => {
    expect(diagnose(OFF, onHost(asked, { "53/udp": {}, "9100/tcp": {} }))).toEqual([
      "error host-network: container 'web' runs on the host's network (--network host): its ports (53/udp, 9100/tcp: published or exposed) are sockets of the host's own, and without a host block nothing restricts them: they are open to all",
    ]);
  });
  test("a host block with 'policy accept' restricts nothing: an error too", () => {
    expect(diagnose(OFF + "host { policy accept; }\n", onHost({}, { "80/tcp": {} }))).toEqual([
      "error host-network: container 'web' runs on the host's network (--network host): its ports (80/tcp: published or exposed) are sockets of the host's own, and the host block's 'policy accept' lets everyone reach them",
    ]);
  });
  test("no port it publishes or exposes, no host block: a warning (dockwall cannot tell what it listens on)", () => {
    expect(diagnose(OFF, onHost())).toEqual([
      "warning host-network: container 'web' runs on the host's network (--network host): whatever it listens on is a socket of the host's own, and without a host block nothing restricts it (it publishes and exposes no port, so dockwall cannot tell which)",
    ]);
  });
  test("a host block governs its ports: a warning that says so; without ports, nothing", () => {
    expect(diagnose(OFF + HOST, onHost(asked))).toEqual([
      "warning host-network: container 'web' runs on the host's network (--network host): its ports (9100/tcp: published or exposed) are sockets of the host's own, which the host block governs, not 'allow'",
    ]);
    expect(diagnose(OFF + HOST, onHost())).toEqual([]);
  });
  test("a container of a bridge network is not on the host's network", () => {
    expect(diagnose(OFF, corpus("publish-tcp"))).toEqual([]);
  });
});

describe("Docker's firewall backend", () => {
  const withBackend = (info: unknown, version?: string) => ({ ...corpus("publish-tcp"), info, ...(version ? { version: { Version: version } } : {}) });
  test("nftables (with or without firewalld) under iptables on: an error at the policy's iptables line", () => {
    for (const driver of ["nftables", "nftables+firewalld"]) {
      const r = compile(ON, { checkOnly: true, facts: { raw: withBackend({ FirewallBackend: { Driver: driver } }) as never, source: "host.json" } });
      expect(r.diagnostics.map((d) => [d.severity, d.code, d.span.line, d.span.col])).toEqual([["error", "firewall-backend", 1, 22]]);
      expect(r.diagnostics[0]!.notes[0]!.message).toBe(`its firewall backend is ${driver} (GET /info's FirewallBackend.Driver; "firewall-backend" in daemon.json)`);
      expect(r.diagnostics[0]!.notes[0]!.span!.docker!.kind).toBe("daemon");
    }
  });
  test("iptables, iptables+firewalld, or a daemon that does not say (before 29): nothing", () => {
    for (const info of [{ FirewallBackend: { Driver: "iptables" } }, { FirewallBackend: { Driver: "iptables+firewalld" } }, {}]) {
      expect(diagnose(ON, withBackend(info))).toEqual([]);
    }
  });
  test("nftables with iptables off (dockerd writes no rules, dockwall all of them): nothing", () => {
    expect(diagnose(OFF, withBackend({ FirewallBackend: { Driver: "nftables" } }))).toEqual([]);
  });
  test("facts without /info (an older facts file) for Docker 29: a warning; for 20.10: nothing", () => {
    expect(diagnose(ON, corpus("publish-tcp"))).toEqual([expect.stringMatching(/^warning firewall-backend: the facts do not say which firewall backend dockerd uses/)]);
    expect(diagnose(ON.replace("29", "20.10"), corpus("publish-tcp"))).toEqual([]);
  });
  test("nftables under iptables on, compiled as --format nft (dockwall's own table, which Docker's nftables backend lets decide too): nothing", () => {
    const facts = { raw: withBackend({ FirewallBackend: { Driver: "nftables" } }) as never, source: "host.json" };
    for (const checkOnly of [true, false]) expect(compile(ON, { checkOnly, format: "nft", facts }).diagnostics).toEqual([]);
    expect(compile(ON, { format: "iptables", facts }).ok).toBe(false);
  });
  test("the policy says it (firewall-backend, Docker's own daemon.json key): without facts, with facts that agree, and with facts that do not", () => {
    const said = (b: string) => ON.replace("published open;", `published open; firewall-backend ${b};`);
    // Without facts: the policy's word, at its value.
    const r = compile(said("nftables"), { checkOnly: true });
    expect(r.diagnostics.map((d) => `${d.severity} ${d.code} ${d.span.line}:${d.span.col}`)).toEqual(["error firewall-backend 1:68"]);
    expect(r.diagnostics[0]!.help).toMatch(/^write them as nftables instead: dockwall compile --format nft/);
    expect(compile(said("nftables"), { format: "nft" }).ok).toBe(true);
    expect(compile(said("iptables"), { checkOnly: true }).diagnostics).toEqual([]);
    // Facts that agree: nothing more; that do not: an error at the policy's value, the daemon's word as a note, whatever the format.
    const nft = { raw: withBackend({ FirewallBackend: { Driver: "nftables" } }) as never, source: "host.json" };
    expect(compile(said("nftables"), { format: "nft", facts: nft }).diagnostics).toEqual([]);
    for (const format of ["nft", "iptables"] as const) {
      const d = compile(said("iptables"), { format, facts: nft }).diagnostics;
      expect(d.map((x) => `${x.severity} ${x.code} ${x.span.line}:${x.span.col}: ${x.message}`)).toEqual(["error firewall-backend 1:68: the policy says firewall-backend iptables, but dockerd uses nftables"]);
      expect(d[0]!.notes.map((n) => n.message)).toEqual(["its firewall backend is nftables (GET /info's FirewallBackend.Driver)"]);
    }
    // A policy that says iptables answers the warning about facts that do not say.
    expect(diagnose(said("iptables"), corpus("publish-tcp"))).toEqual([]);
    expect(diagnose(said("pf"), corpus("publish-tcp"))).toEqual([`error bad-value: expected iptables or nftables, not 'pf'`]);
  });
  test("dockwall check --format nft: what the nft output takes", async () => {
    const io = memoryIo({ "p.dw": ON.replace("published open;", "published open; firewall-backend nftables;") });
    expect(await run(["check", "p.dw", "--format", "nft"], io)).toBe(0);
    expect(await run(["check", "p.dw"], io)).toBe(2);
  });
  test("a FirewallBackend without a Driver, or info that is not an object, is bad facts", () => {
    expect(diagnose(ON, withBackend({ FirewallBackend: { Info: [] } }))).toEqual([`error bad-facts: the daemon's FirewallBackend is {"Info":[]}, without a Driver`]);
    expect(diagnose(ON, withBackend("nftables"))).toEqual([`error bad-facts: the daemon's info is "nftables", not an object`]);
  });
});

describe("every refusal of the facts is reported at once, and compile, check, diff and apply exit 2", () => {
  const all = (() => {
    const f = attached("macvlan", true, { parent: "eth1" });
    const app = withOptions({ "com.docker.network.bridge.gateway_mode_ipv4": "routed", "com.docker.network.bridge.trusted_host_interfaces": "eth1" });
    f.networks.push(app.networks.find((n) => n.Name === "app")!);
    const host = onHost({}, { "9100/tcp": {} }).containers[0]!;
    f.containers.push({ ...host, Name: "/prom", Id: "7c".repeat(32) });
    f.info = { FirewallBackend: { Driver: "nftables" } };
    return JSON.stringify(f);
  })();
  const files = { "p.dw": ON, "host.json": all, "saved.v4": "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n" };
  const codes = ["firewall-backend", "gateway-mode", "trusted-interfaces", "unfiltered-network", "host-network"];

  test.each([["compile"], ["check"], ["diff", "--live", "saved.v4"], ["apply"]])("%s", async (command, ...more) => {
    const called: string[] = [];
    const system = new Proxy({} as SystemIo, {
      get: (_t, key) => (key === "runAsync" ? async (cmd: string) => (called.push(cmd), "") : key === "env" ? {} : () => called.push(String(key))),
    });
    const io = memoryIo(files, { system: () => system });
    expect(await run([command!, "p.dw", "--facts", "host.json", ...more], io)).toBe(2);
    const err = io.err.join("");
    expect(err.split("\n").filter((l) => l.includes(": error: ")).map((l) => /^(\S+): /.exec(l)![1])).toEqual(["p.dw:1:22", "host.json", "host.json", "host.json", "host.json"]);
    expect(compile(ON, { facts: { raw: JSON.parse(all), source: "host.json" } }).diagnostics.map((d) => d.code)).toEqual(codes);
    expect(io.out).toEqual([]);
    // apply reads what is loaded while it compiles, and loads nothing.
    expect(called.filter((c) => /-restore$/.test(c))).toEqual([]);
  });
});
