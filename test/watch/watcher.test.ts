// The reconciler of `dockwall watch` against a fake event stream and fake facts (real Engine
// API objects from the corpus), with the real kernel: rules are read and written with
// iptables-save / iptables-restore in a scratch namespace.
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { computeDiff } from "../../src/live/command.js";
import { parseSave } from "../../src/live/save.js";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { reconcileStep } from "../../src/watch/reconcile.js";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";

const corpus = (name: string) => JSON.parse(readFileSync(new URL(`../facts/corpus/${name}/state.json`, import.meta.url), "utf8")) as { networks: unknown[]; containers: Record<string, unknown>[] };

const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web, api;
`;

/** A copy of the corpus' `web` container as another one: NAME at ADDR publishing HOSTPORT. */
function another(name: string, addr: string, hostPort: number, started: string): Record<string, unknown> {
  const c = structuredClone(corpus("publish-tcp").containers[0]!) as Record<string, any>;
  c.Name = `/${name}`;
  c.Id = `${name}`.padEnd(64, "0");
  c.State.StartedAt = started;
  c.NetworkSettings.Networks.bridge.IPAddress = addr;
  c.NetworkSettings.Ports = { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: String(hostPort) }, { HostIp: "::", HostPort: String(hostPort) }] };
  return c;
}

describeKernel("watch: the reconciler (fake events and facts, real kernel)", () => {
  let ns: Netns;
  let facts: { networks: unknown[]; containers: Record<string, unknown>[] };
  let logs: string[];
  let emit: (e: Record<string, unknown>) => void;
  let endStream: () => void;
  let restores: number;
  let factsFail: boolean;
  let policy: string;

  beforeEach(() => {
    ns = createNetns("-w");
    facts = corpus("publish-tcp");
    logs = [];
    restores = 0;
    factsFail = false;
    policy = POLICY;
    restoreHook = undefined;
    ns.restore(4, "*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp --dport 22 -j f2b-sshd\n-A f2b-sshd -j RETURN\nCOMMIT\n");
  });
  afterEach(() => deleteNetns(ns.name));

  let restoreHook: ((f: 4 | 6, text: string, noflush: boolean) => void) | undefined;

  function watcher(): Watcher {
    const deps: WatchDeps = {
      policyName: "host.dw",
      readPolicy: () => policy,
      facts: async () => {
        if (factsFail) throw new Error("cannot read /containers/json from dockerd at unix:///x.sock: it answered HTTP 500");
        return { raw: structuredClone(facts), source: "fake" };
      },
      events: (onEvent, onOpen) => {
        // While the daemon is away (factsFail), its socket refuses the connection.
        if (factsFail) return { done: Promise.reject(new Error("cannot follow dockerd's events at unix:///x.sock: no dockerd is listening there")), close: () => {} };
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        emit = onEvent;
        endStream = resolve;
        queueMicrotask(onOpen);
        return { done, close: () => resolve() };
      },
      save: (f) => {
        const r = ns.run([f === 4 ? "iptables-save" : "ip6tables-save"]);
        return r.stdout;
      },
      restore: (f, text, noflush) => {
        restores++;
        if (restoreHook) return restoreHook(f, text, noflush);
        const r = ns.restore(f, text, { noflush });
        if (!r.ok) throw new Error(r.stderr);
      },
      log: (l) => void logs.push(l),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      verbose: false,
      debounceMs: 50,
    };
    return new Watcher(deps, policy);
  }

  async function settle(w: Watcher, reconciles: number): Promise<void> {
    for (let i = 0; i < 200 && w.stats.reconciles < reconciles; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
  }

  /** Nothing differs between the kernel and the policy compiled with the facts now. */
  function inStep(): boolean {
    const r = compile(policy, { noRender: true, facts: { raw: facts, source: "fake" } });
    const d = computeDiff(r, { 4: parseSave(ns.save(4)), 6: parseSave(ns.save(6)) }, { all: false, ignore: [] });
    return !d.changed;
  }

  it("at start it brings the kernel to the policy; other tools' chains and jumps stay", async () => {
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    expect(inStep()).toBe(true);
    expect(ns.save(4)).toContain("-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n");
    expect(ns.save(4)).toContain("-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80");
    expect(logs.filter((l) => l.startsWith("applied: containers +web; IPv4: "))).toHaveLength(1);
    w.stop();
    await running;
  });

  it("one container more in a chain of many: only its rules are inserted (and a removed one's deleted), the kernel ends as a full load would", () => {
    const many = corpus("publish-tcp");
    for (let i = 0; i < 40; i++) many.containers.push(another(`c${i}`, `172.17.1.${i + 1}`, 10000 + i, `2026-11-21T22:45:${String(i).padStart(2, "0")}.0Z`));
    const rulesFor = (facts: typeof many) => compile(POLICY, { noRender: true, facts: { raw: facts, source: "fake" } }).generated!.rulesets[4]!;
    const first = reconcileStep(parseSave(ns.save(4)), rulesFor(many), { ownsInput: false });
    expect(ns.restore(4, first.text, { noflush: true }).ok).toBe(true);
    // One more container in the middle of the start order, one gone.
    const next = structuredClone(many);
    next.containers.splice(20, 1, another("late", "172.17.2.1", 20000, "2026-11-21T22:45:20.5Z"));
    const step = reconcileStep(parseSave(ns.save(4)), rulesFor(next), { ownsInput: false });
    expect(step.text, JSON.stringify({ first: first.changes, step: step.changes, n: next.containers.length })).toMatch(/^-I DOCKER \d+ /m);
    expect(step.text).toMatch(/^-D DOCKER /m);
    expect(step.text).not.toMatch(/^:DOCKER - /m); // not rewritten whole
    const r = ns.restore(4, step.text, { noflush: true });
    expect(r.ok, r.stderr).toBe(true);
    // The same kernel state as loading the whole rule set into an empty namespace.
    const viaEdits = ns.save(4);
    ns.restore(4, "*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp --dport 22 -j f2b-sshd\n-A f2b-sshd -j RETURN\nCOMMIT\n");
    ns.run(["iptables", "-t", "nat", "-F"]);
    ns.run(["iptables", "-t", "nat", "-X"]);
    const full = reconcileStep(parseSave(ns.save(4)), rulesFor(next), { ownsInput: false });
    expect(ns.restore(4, full.text, { noflush: true }).ok).toBe(true);
    expect(viaEdits).toBe(ns.save(4));
    expect(reconcileStep(parseSave(ns.save(4)), rulesFor(next), { ownsInput: false }).text).toBe("");
  });

  it("a burst of twenty events is one reconcile", async () => {
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    const before = w.stats.reconciles;
    for (let i = 0; i < 20; i++) {
      facts.containers.push(another(`c${i}`, `172.17.0.${10 + i}`, 9000 + i, `2026-11-21T22:44:${String(10 + i).padStart(2, "0")}.0Z`));
      emit({ Type: "container", Action: "start", Actor: { Attributes: { name: `c${i}` } } });
    }
    await settle(w, before + 1);
    expect(w.stats.reconciles).toBe(before + 1);
    expect(ns.save(4).match(/-j DNAT/g)).toHaveLength(21);
    expect(inStep()).toBe(true);
    w.stop();
    await running;
  });

  it("a lost event is healed by the next reconcile; an unrelated event changes nothing", async () => {
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    facts.containers.push(another("api", "172.17.0.9", 9090, "2026-11-21T22:45:00.0Z"));
    // No event for api. An image pull is not a reason to reconcile.
    emit({ Type: "image", Action: "pull", Actor: { Attributes: { name: "bb:1" } } });
    await new Promise((r) => setTimeout(r, 200));
    expect(ns.save(4)).not.toContain("172.17.0.9:80");
    emit({ Type: "network", Action: "connect", Actor: { Attributes: { name: "bridge" } } });
    await settle(w, 2);
    expect(ns.save(4)).toContain("-A DOCKER -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.17.0.9:80");
    expect(logs.at(-1)).toMatch(/^applied: containers \+api; IPv4: /);
    // A removed container: its DNAT goes.
    facts.containers = facts.containers.filter((c) => c.Name !== "/api");
    emit({ Type: "container", Action: "die", Actor: { Attributes: { name: "api" } } });
    await settle(w, 3);
    expect(ns.save(4)).not.toContain("172.17.0.9");
    expect(logs.at(-1)).toMatch(/^applied: containers -api; IPv4: /);
    w.stop();
    await running;
  });

  it("errors keep the last good rules: facts that cannot be read, a malformed event, a policy with errors on SIGHUP", async () => {
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    const good = ns.save(4);
    const writes = restores;
    factsFail = true;
    emit({ malformed: "{not json" });
    await settle(w, 2);
    expect(ns.save(4)).toBe(good);
    expect(restores).toBe(writes);
    expect(logs.some((l) => /^cannot read Docker's facts \(.*HTTP 500\); the rules in place stay$/.test(l))).toBe(true);
    factsFail = false;
    policy = POLICY.replace("allow lan to web, api;", "allow lan to web, api\nzone;");
    w.reload();
    expect(logs.slice(-4).join("\n")).toMatch(/^host\.dw:4:\d+: error: /m);
    expect(logs.at(-1)).toBe("SIGHUP: host.dw has errors; not applied, the rules in place stay");
    await new Promise((r) => setTimeout(r, 150));
    expect(ns.save(4)).toBe(good);
    // Fixed: applied.
    policy = POLICY.replace("allow lan to web, api;", "allow any to web;");
    w.reload();
    await settle(w, 3);
    expect(ns.save(4)).toContain("-A DOCKER-USER -d 172.17.0.2/32 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN");
    expect(inStep()).toBe(true);
    w.stop();
    await running;
  });

  it("a fact that breaks one allow costs only that allow: web redeployed on another port, api started after it gets its rules", async () => {
    policy = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web:8080;
allow lan to api;
`;
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    const userRules = () => ns.save(4).split("\n").filter((l) => l.startsWith("-A DOCKER-USER "));
    const allowed = (addr: string, port: number) => `-A DOCKER-USER -s 192.168.1.0/24 -d ${addr}/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport ${port} -j RETURN`;
    const head = ["-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-A DOCKER-USER -i docker0 -j RETURN", "-A DOCKER-USER -m conntrack --ctstate DNAT --ctorigdst 127.0.0.0/8 -j DROP"];
    const tail = ["-A DOCKER-USER -o docker0 -j DROP", "-A DOCKER-USER -j RETURN"];
    expect(userRules()).toEqual([...head, allowed("172.17.0.2", 8080), ...tail]);
    // web is redeployed publishing 9090 (the policy still names web:8080); then api starts.
    (facts.containers[0] as any).NetworkSettings.Ports = { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "9090" }, { HostIp: "::", HostPort: "9090" }] };
    emit({ Type: "container", Action: "start", Actor: { ID: (facts.containers[0] as any).Id, Attributes: { name: "web" } } });
    await settle(w, 2);
    facts.containers.push(another("api", "172.17.0.9", 7070, "2026-11-21T22:45:00.0Z"));
    emit({ Type: "container", Action: "start", Actor: { ID: "api", Attributes: { name: "api" } } });
    await settle(w, 3);
    // api's rules are in; web:8080 admits nothing, and web's 9090 falls to the catch-all DROP.
    expect(userRules()).toEqual([...head, allowed("172.17.0.9", 7070), ...tail]);
    expect(ns.save(4)).toContain("-A DOCKER -p tcp -m tcp --dport 7070 -j DNAT --to-destination 172.17.0.9:80");
    expect(ns.save(4)).toContain("-A DOCKER -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.17.0.2:80");
    // The log says which allow was left out, and why, once (not again at every reconcile).
    const warning = "host.dw:3:14: warning: container 'web' does not publish port 8080; web:8080 is left out of this allow until it does (it admits nothing meanwhile)";
    expect(logs.filter((l) => l === warning), logs.join("\n")).toHaveLength(1);
    expect(logs.filter((l) => l.includes("the rules in place stay"))).toEqual([]);
    expect(logs.at(-1)).toMatch(/^applied: containers \+api; IPv4: /);
    w.stop();
    await running;
  });

  it("a load refused half-way (filter committed, nat refused): that family is put back exactly too", async () => {
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    const good = ns.save(4);
    // The kernel takes the filter table of the change, then refuses its nat table.
    restoreHook = (f, text, noflush) => {
      restoreHook = undefined;
      const filterOnly = text.slice(0, text.indexOf("*nat") >= 0 ? text.indexOf("*nat") : text.length);
      expect(ns.restore(f, filterOnly, { noflush }).ok).toBe(true);
      throw new Error("iptables-restore: line 9 failed");
    };
    facts.containers.push(another("api", "172.17.0.9", 9090, "2026-11-21T22:45:00.0Z"));
    emit({ Type: "container", Action: "start", Actor: { ID: "api", Attributes: { name: "api" } } });
    await settle(w, 2);
    expect(logs.at(-1)).toBe("iptables-restore refused the change (iptables-restore: line 9 failed); the rules from before stay");
    expect(ns.save(4)).toBe(good);
    w.stop();
    await running;
  });

  it("the daemon goes away: the rules stay, it reconnects and catches up", async () => {
    const w = watcher();
    const running = w.run();
    await settle(w, 1);
    const good = ns.save(4);
    factsFail = true;
    endStream();
    await new Promise((r) => setTimeout(r, 400));
    expect(ns.save(4)).toBe(good);
    expect(logs).toContain("the daemon's event stream ended (dockerd stopped or restarted); the rules in place stay; reconnecting");
    factsFail = false;
    facts.containers.push(another("api", "172.17.0.9", 9090, "2026-11-21T22:45:00.0Z"));
    await settle(w, 3);
    expect(ns.save(4)).toContain("172.17.0.9:80");
    expect(logs).toContain("the daemon is back: catching up");
    w.stop();
    await running;
  });
});
