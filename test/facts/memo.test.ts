// watch compiles each reconcile with what the compile before read of the same Docker objects
// (FactsMemo, and the container plans and Docker 29 rule texts made from them): the output must
// be exactly what a compile of the same facts, read afresh, gives. A sequence of changes as
// dockerd makes them (the engine client replaces the objects that change, keeps the others),
// each compiled both ways, in every format, under policies that change what a container's rules
// depend on besides the container: its networks' settings, the port order of the release,
// userland-proxy, a network gone, a container on a network dockwall does not reproduce.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { compile, type CompileOptions } from "../../src/compile.js";
import { FactsMemo, type RawFacts } from "../../src/facts/read.js";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const corpus = JSON.parse(readFileSync(new URL("./corpus/multi-net-zback/state.json", import.meta.url), "utf8")) as { networks: Json[]; containers: Json[] };
const app = corpus.containers[0]!;
const net = (name: string) => corpus.networks.find((n) => n.Name === name)!;

/** A container like the corpus's app, on the networks given (name → IPv4 address), publishing `ports` (`8080`, `127.0.0.1:9000`, `8081->81`). */
function ctr(name: string, nets: Record<string, string>, ports: string[], started = "2026-11-21T22:45:00.0Z"): Json {
  const c = structuredClone(app);
  c.Name = `/${name}`;
  c.Id = Buffer.from(name).toString("hex").padEnd(64, "0");
  c.State.StartedAt = started;
  c.NetworkSettings.Networks = Object.fromEntries(Object.entries(nets).map(([n, ip]) => [n, { ...structuredClone(app.NetworkSettings.Networks.front), NetworkID: net(n)?.Id ?? n, IPAddress: ip, IPAMConfig: { IPv4Address: ip } }]));
  const bindings: Json = {};
  for (const p of ports) {
    const [hostPart, to] = p.split("->");
    const [ip, port] = hostPart!.includes(":") ? hostPart!.split(":") : ["0.0.0.0", hostPart!];
    const key = `${to ?? port}/tcp`;
    (bindings[key] ??= []).push({ HostIp: ip, HostPort: port });
  }
  c.NetworkSettings.Ports = bindings;
  return c;
}

const macvlan: Json = { ...structuredClone(net("zback")), Name: "mac", Id: "f".repeat(64), Driver: "macvlan", Options: { parent: "eth0" } };

const POLICIES = {
  "29.7, iptables off, userland-proxy off": "docker { version 29.7; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to app, c1, c3;\n",
  "29.7, iptables off, userland-proxy on": "docker { version 29.7; iptables off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to app, c1;\n",
  "20.10, iptables off (bindings by descending port)": "docker { version 20.10; iptables off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to c1;\n",
  "29.7, iptables on": "docker { version 29.7; iptables on; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to app, c1;\nhost { allow lan tcp 22; }\n",
};

test("a compile with what the one before read gives exactly what a compile of the same facts read afresh gives, step after step", () => {
  let networks: Json[] = corpus.networks.slice();
  let containers: Json[] = [app, ctr("c1", { bridge: "172.17.0.5" }, ["8081->81", "8082->80", "8083->82"]), ctr("c2", { front: "172.27.0.11" }, ["127.0.0.1:9000->90"])];
  const replaceNet = (name: string, change: (n: Json) => void) => {
    networks = networks.map((n) => {
      if (n.Name !== name) return n;
      const m = structuredClone(n);
      change(m);
      return m;
    });
  };
  const steps: [string, () => void][] = [
    ["as started", () => {}],
    ["c3 starts on zback", () => void (containers = [...containers, ctr("c3", { zback: "172.28.0.12" }, ["8090->80"], "2026-11-21T22:46:00.0Z")])],
    ["front made internal", () => replaceNet("front", (n) => (n.Internal = true))],
    ["front back; zback binds its ports on 10.0.0.1", () => {
      replaceNet("front", (n) => (n.Internal = false));
      replaceNet("zback", (n) => (n.Options = { "com.docker.network.bridge.host_binding_ipv4": "10.0.0.1" }));
    }],
    ["zback's icc off", () => replaceNet("zback", (n) => (n.Options = { ...n.Options, "com.docker.network.bridge.enable_icc": "false" }))],
    ["zback gone (its containers' endpoints on it too)", () => void (networks = networks.filter((n) => n.Name !== "zback"))],
    ["a macvlan network, c1 on it as well", () => {
      networks = [...networks, macvlan];
      containers = containers.map((c) => (c.Name === "/c1" ? ctr("c1", { bridge: "172.17.0.5", mac: "172.30.0.5" }, ["8081->81", "8082->80", "8083->82"]) : c));
    }],
    ["zback back, as before", () => void (networks = [...networks.filter((n) => n.Name !== "mac"), net("zback")])],
    ["c2 stops; c4 is given its address", () => void (containers = [...containers.filter((c) => c.Name !== "/c2"), ctr("c4", { front: "172.27.0.11" }, ["9001->90"], "2026-11-21T22:47:00.0Z")])],
  ];
  const memo = new FactsMemo();
  const compared: string[] = [];
  for (const [step, change] of steps) {
    change();
    for (const [name, policy] of Object.entries(POLICIES)) {
      for (const format of ["nft", "iptables", "ip6tables", "ferm"] as const) {
        const raw: RawFacts = { networks, containers };
        const opts: CompileOptions = { format, factsErrors: "warn" };
        const fresh = compile(policy, { ...opts, facts: { raw: structuredClone(raw), source: "facts.json" } });
        const again = compile(policy, { ...opts, facts: { raw, source: "facts.json" }, factsMemo: memo });
        const what = `${step}: ${name}, --format ${format}`;
        expect(again.diagnostics.map((d) => `${d.severity} ${d.message}`), what).toEqual(fresh.diagnostics.map((d) => `${d.severity} ${d.message}`));
        expect(again.output, what).toBe(fresh.output);
        if (fresh.output) compared.push(what);
      }
    }
  }
  // Every step compiled, in every format each policy has (--format nft writes Docker's tables as 29.7 does).
  expect(compared.length).toBe(steps.length * (4 + 4 + 3 + 4));
});

test("a container object is read again when a network it is on reads differently, or when reading it said something", () => {
  const memo = new FactsMemo();
  const c1 = ctr("c1", { bridge: "172.17.0.5" }, ["8081->81"]);
  const policy = "docker { version 29.7; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to c1;\n";
  const run = (networks: Json[], containers: Json[]) => compile(policy, { format: "nft", facts: { raw: { networks, containers }, source: "facts.json" }, factsErrors: "warn", factsMemo: memo });
  expect(run(corpus.networks, [c1]).output).toContain("dnat to 172.17.0.5:81");
  expect(memo.containers.has(c1)).toBe(true);
  // The same object on a macvlan network too: said (a warning) at each compile, never kept.
  const onMac = ctr("c1", { bridge: "172.17.0.5", mac: "172.30.0.5" }, ["8081->81"]);
  for (let i = 0; i < 2; i++) {
    const r = run([...corpus.networks, macvlan], [onMac]);
    expect(r.diagnostics.filter((d) => /macvlan/.test(d.message))).toHaveLength(1);
    expect(memo.containers.has(onMac)).toBe(false);
  }
  // Its bridge gone: it is on no network dockwall writes rules for.
  expect(run(corpus.networks.filter((n) => n.Name !== "bridge"), [c1]).output).not.toContain("172.17.0.5");
});

test("a network left out (a gateway mode dockwall does not reproduce) that the policy also declares otherwise than Docker has: its containers keep their allows through their other networks (a review: they lost them once the network was left out by copies)", () => {
  const front = structuredClone(net("front"));
  front.Options = { "com.docker.network.bridge.gateway_mode_ipv4": "routed" };
  const c1 = ctr("c1", { bridge: "172.17.0.5", front: "172.27.0.5" }, ["8080->80"]);
  // Declared with icc off; Docker has icc on.
  const policy = `docker { version 29.7; iptables off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nnetwork front { bridge br-${front.Id.slice(0, 12)}; subnet 172.27.0.0/16; icc off; }\nallow lan to c1;\n`;
  for (const format of ["iptables", "nft"] as const) {
    const r = compile(policy, { format, factsErrors: "warn", facts: { raw: { networks: [net("bridge"), front], containers: [c1] }, source: "facts.json" } });
    expect(r.ok, format).toBe(true);
    expect(r.diagnostics.map((d) => d.message).filter((m) => /left out of this allow|no allow names/.test(m)), format).toEqual([]);
    expect(r.output, format).toContain(format === "iptables" ? "-A DOCKER-USER -s 192.168.1.0/24 -d 172.17.0.5/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN" : 'iifname "eth1" oifname "docker0" ip saddr 192.168.1.0/24 ip daddr 172.17.0.5 tcp dport 80 ct status dnat ct original proto-dst 8080 return');
  }
});
