// watch -f nft loads only what differs (nftDelta): the tables as nft lists them with handles,
// turned into the file's by a transaction of a few commands. Proven with the kernel: the file
// for one state loaded, the delta to the next loaded on top, and the tables then list exactly as
// the next state's file — for containers coming and going, a network made and removed (chains
// and map elements), an allow added, in Docker's tables and dockwall's. And without a kernel:
// what needs the whole file says so.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it, test } from "vitest";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { compile } from "../../src/compile.js";
import { afterDelta, diffNft, learnHandles, nftDelta, parseNftList, unknownHandles, type NftState } from "../../src/live/nftdiff.js";
import { NftSession, SESSION_ENV } from "../../src/live/nftsession.js";
import { createNetns, deleteNetns, describeKernel } from "../lab/kernel.js";

const HEAD = `docker { version 29.7; iptables off; ip6tables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
`;
const web = "container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }\n";
const api = "container api { network bridge 172.17.0.3; publish 9090:80; publish 9443:443; }\n";
const late = "network late { bridge br-late; subnet 172.30.0.0/16; }\ncontainer db { network late 172.30.0.2; publish 5432:5432; }\n";
/** N containers on the default bridge, each publishing one port, IPv4 and IPv6. */
const many = (n: number) => Array.from({ length: n }, (_, i) => `container m${i} { network bridge 172.17.1.${i + 2}, fd00:17::1:${i + 2}; publish ${7000 + i}:80; }\n`).join("");
const names = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`).join(", ");
const STATES: [string, string][] = [
  ["web", `${HEAD}${web}allow lan to web;\n`],
  ["web and api", `${HEAD}${web}${api}allow lan to web, api;\n`],
  ["api alone (web gone)", `${HEAD}${api}allow lan to api;\n`],
  ["api, and a network made with db on it", `${HEAD}${api}${late}allow lan to api, db;\nallow wan to db:5432;\n`],
  ["web back, the network gone", `${HEAD}${web}${api}allow lan to web;\n`],
  ["nothing", HEAD],
  // A larger host: the lan's allows are one rule and a set; a container coming or going is a set element.
  ["five containers (a set)", `${HEAD}${many(5)}allow lan to ${names(5)};\n`],
  ["six (an element added)", `${HEAD}${many(6)}allow lan to ${names(6)};\n`],
  ["four (two elements deleted)", `${HEAD}${many(6).split("\n").slice(2).join("\n")}allow lan to ${names(6).split(", ").slice(2).join(", ")};\n`],
  ["three (the set gone: rules again)", `${HEAD}${many(3)}allow lan to ${names(3)};\n`],
];
const file = (policy: string) => {
  const r = compile(policy, { format: "nft" });
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join("\n"));
  return r.output!;
};
/** The file's tables as nft lists them: from `table X {` to its `}`. */
const tablesText = (f: string) => [...f.matchAll(/^table (\S+ \S+) \{\n[\s\S]*?^\}\n/gm)].map((m) => m[0]).join("");

test("the whole file when a table is not there yet, or a base chain's header changes; nothing when nothing differs", () => {
  const a = file(STATES[0]![1]);
  expect(nftDelta("", a)).toBeUndefined();
  const listed = tablesText(a).replace(/\{\n/g, "{ # handle 1\n");
  expect(nftDelta(listed, a)?.text).toBe("");
  expect(nftDelta(listed.replace("policy accept;", "policy drop;"), a)).toBeUndefined();
});

/** A file's tables as nft -a would list them, every rule with a handle of its own. */
function withHandles(f: string): NftState {
  const st = parseNftList(f);
  let h = 100;
  for (const p of st.parts.values()) if (p.kind === "chain") p.handles = p.lines.map(() => h++);
  return st;
}

test("a new container's accept goes before its bridge's final drop without a rule placed by handle: the drop deleted and appended again after it", () => {
  const from = withHandles(file(STATES[0]![1]));
  const drop = from.parts.get("ip docker-bridges/filter-forward-in__docker0")!;
  expect(drop.lines.at(-1)).toMatch(/drop comment "UNPUBLISHED PORT DROP"$/);
  const delta = nftDelta(from, file(STATES[1]![1]))!;
  // nft reads the whole ruleset to place a rule by handle (`position`): some 75 ms at 2,000 containers.
  expect(delta.text).not.toMatch(/ position /);
  const inChain = delta.text.split("\n").filter((l) => / ip docker-bridges filter-forward-in__docker0 /.test(l));
  expect(inChain).toEqual([
    `delete rule ip docker-bridges filter-forward-in__docker0 handle ${drop.handles.at(-1)}`,
    "add rule ip docker-bridges filter-forward-in__docker0 ip daddr 172.17.0.3 tcp dport 80 counter packets 0 bytes 0 accept",
    "add rule ip docker-bridges filter-forward-in__docker0 ip daddr 172.17.0.3 tcp dport 443 counter packets 0 bytes 0 accept",
    'add rule ip docker-bridges filter-forward-in__docker0 counter packets 0 bytes 0 drop comment "UNPUBLISHED PORT DROP"',
  ]);
  // Kept rules before the new ones keep their handles; the rest are learnt after the load.
  const after = afterDelta(from, parseNftList(file(STATES[1]![1])), delta)!;
  const h = after.parts.get("ip docker-bridges/filter-forward-in__docker0")!.handles;
  expect(h.slice(0, -3)).toEqual(drop.handles.slice(0, -1));
  expect(h.slice(-3).every((x) => Number.isNaN(x))).toBe(true);
  expect(unknownHandles(after)).toContain("ip docker-bridges/filter-forward-in__docker0");
});

test("a handle not learnt yet: no delta, and the chains to list to learn it; a listing that is not what was loaded is refused", () => {
  const a = withHandles(file(STATES[0]![1]));
  const b = parseNftList(file(STATES[1]![1]));
  const after = afterDelta(a, b, nftDelta(a, b)!)!;
  const needs = new Set<string>();
  // web gone: its rules are deleted by handle, api's were just added (not known).
  expect(nftDelta(after, file(STATES[2]![1]), needs)).toBeUndefined();
  expect([...needs]).toContain("ip docker-bridges/filter-forward-in__docker0");
  const key = "ip docker-bridges/filter-forward-in__docker0";
  const lines = after.parts.get(key)!.lines;
  let n = 500;
  const listing = (k: string, ls = after.parts.get(k)!.lines) => {
    const [table, chain] = k.split("/");
    return `table ${table} {\n\tchain ${chain} { # handle 9\n${ls.map((l) => `\t\t${l} # handle ${n++}`).join("\n")}\n\t}\n}\n`;
  };
  const first = n;
  const learned = learnHandles(after, [key, ...[...needs].filter((k) => k !== key)].map((k) => listing(k)).join(""))!;
  expect(learned.parts.get(key)!.handles).toEqual(lines.map((_, i) => first + i));
  expect(nftDelta(learned, file(STATES[2]![1]))).toBeDefined();
  expect(learnHandles(after, listing(key, lines.slice(1)))).toBeUndefined();
});

describeKernel("nftDelta with the kernel: a state's file, then the delta to the next, lists exactly as the next state's file", () => {
  it("containers and networks coming and going, in Docker's tables and dockwall's (IPv4 and IPv6 tables)", () => {
    const ns = createNetns("-d");
    try {
      const load = (text: string) => {
        const r = ns.run(["nft", "-f", "-"], text);
        expect(r.stderr).toBe("");
      };
      load(file(STATES[0]![1]));
      const sizes: string[] = [];
      let known: NftState | undefined;
      for (let i = 1; i < STATES.length; i++) {
        const [name, policy] = STATES[i]!;
        const want = file(policy);
        const tables = [...want.matchAll(/^table (\S+) (\S+) \{$/gm)].map((m) => [m[1]!, m[2]!]);
        const listed = () => parseNftList(tables.map(([f, t]) => ns.run(["nft", "-a", "list", "table", f, t]).stdout).join(""));
        // What the last step's echo said the kernel holds (as watch keeps it), checked against a listing.
        if (known) expect(known, name).toEqual(listed());
        const from = known ?? listed();
        const delta = nftDelta(from, want);
        expect(delta, name).toBeDefined();
        const commands = delta!.text.split("\n").filter(Boolean);
        sizes.push(`${name}: ${commands.length} commands, in dockwall's table: ${commands.filter((c) => / inet dockwall /.test(c)).join("; ")}`);
        expect(delta!.text, name).not.toMatch(/ position /);
        if (i % 2) {
          const echo = ns.run(["nft", "--echo", "--handle", "-f", "-"], delta!.text);
          expect(echo.stderr).toBe("");
          known = afterDelta(from, parseNftList(want), delta!, echo.stdout);
        } else {
          // As watch does it with no echo: the new rules' handles learnt from their chains alone.
          load(delta!.text);
          const loaded = afterDelta(from, parseNftList(want), delta!)!;
          const chains = unknownHandles(loaded);
          known = learnHandles(loaded, chains.map((k) => ns.run(["nft", "-a", "list", "chain", ...k.split("/")[0]!.split(" "), k.split("/")[1]!]).stdout).join(""));
        }
        expect(known, name).toBeDefined();
        const after = tables.map(([f, t]) => ns.run(["nft", "list", "table", f, t]).stdout).join("");
        expect(diffNft(after, want).changed, name).toBe(false);
        // Exactly the file, rule for rule and in order (map elements are nft's own order; chains in the order they were
        // made, which a delta that makes a base chain changes: nft orders their hooks by priority, not by listing).
        const noElements = (t: string) => t.replace(/elements = \{[^}]*\}/g, "elements");
        const blocks = (t: string) => t.split(/^(?=table |\t(?:chain|map|set) )/m).map((b) => b.replace(/^\}\n/m, "")).sort();
        expect(blocks(noElements(after)), name).toEqual(blocks(noElements(tablesText(want))));
      }
      expect(sizes).toHaveLength(STATES.length - 1);
      // An element added or deleted is that and nothing else.
      // In dockwall's table, an element added or deleted is that and nothing else (Docker's tables change rule by rule, as dockerd writes them).
      expect(sizes.filter((x) => /^(six|four)/.test(x)).map((x) => x.replace(/^.*in dockwall's table: /, ""))).toEqual([
        // (And the guard of dockerd's own sockets over IPv6, userland-proxy off: the port, an element of its set too.)
        "add element inet dockwall docker-user-ip-1 { 172.17.1.7 . 80 . 7005 }; add element inet dockwall proxy-ip6-1 { 7005 }",
        "delete element inet dockwall docker-user-ip-1 { 172.17.1.2 . 80 . 7000 }; delete element inet dockwall docker-user-ip-1 { 172.17.1.3 . 80 . 7001 }; delete element inet dockwall proxy-ip6-1 { 7000 }; delete element inet dockwall proxy-ip6-1 { 7001 }",
      ]);
    } finally {
      deleteNetns(ns.name);
    }
  });
});

/** The corpus's web container again as NAME at 172.17.0.N, publishing PORT: a host with several containers on one bridge. */
const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: Record<string, unknown>[] };
function webLike(name: string, n: number, port: number): Record<string, unknown> {
  const text = JSON.stringify(corpus.containers[0])
    .replaceAll("b50a5ada91296b1da292a44a56e1f2915aee062b070a13f486b35d8ee0f38174", n.toString(16).padStart(64, "a"))
    .replaceAll('"/web"', `"/${name}"`)
    .replaceAll("172.17.0.2", `172.17.0.${n}`)
    .replaceAll('"8080"', `"${port}"`);
  return JSON.parse(text) as Record<string, unknown>;
}

describeKernel("watch -f nft on the kernel: containers coming and going are loaded as deltas", () => {
  it.each(["nft -f", "nft -i"])("no rule is placed by handle (no read of the ruleset), the new rules' handles are learnt from their chains, and the tables list as the file after each change (deltas through %s)", async (via) => {
    const ns = createNetns("-w");
    // watch's own: one nft -i for every delta (live/nftsession.ts).
    const session =
      via === "nft -i"
        ? new NftSession({
            start: (onErr, onExit) => {
              const child = spawn("nsenter", [`--net=${ns.path}`, "nft", "-i"], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, ...SESSION_ENV } });
              child.stderr.setEncoding("utf8").on("data", onErr);
              child.on("close", (code) => onExit(`exit ${code}`));
              return { pid: child.pid, write: (t) => void child.stdin.write(t), close: () => void child.kill("SIGKILL") };
            },
            timer: (ms, f) => {
              const t = setTimeout(f, ms);
              return { cancel: () => clearTimeout(t) };
            },
          })
        : undefined;
    const policy = "docker { version 29.7; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to web, a3, a4, a5;\n";
    const facts = { networks: corpus.networks, containers: [corpus.containers[0]!] };
    const loads: string[] = [];
    const listed: string[][] = [];
    const logs: string[] = [];
    const nftIn = (argv: string[], input?: string) => {
      const r = ns.run(["nft", ...argv], input);
      if (r.status !== 0) throw new Error(r.stderr);
      return r.stdout;
    };
    const deps: WatchDeps = {
      policyName: "host.dw",
      readPolicy: () => policy,
      facts: async () => ({ raw: structuredClone(facts), source: "fake" }),
      events: () => ({ done: new Promise(() => {}), close: () => {} }),
      save: () => "",
      restore: () => {
        throw new Error("watch -f nft never runs iptables-restore");
      },
      nft: {
        // A table not made yet lists as nothing (as the command's own list does).
        list: async (names) => names.map((n) => ns.run(["nft", "-a", "list", "table", ...n.split(" ")]).stdout).join(""),
        load: (text, echo) => (loads.push(text), nftIn(echo ? ["--echo", "--handle", "-f", "-"] : ["-f", "-"], text)),
        loadDelta: session ? (text) => (loads.push(text), session.run(text)) : undefined,
        listChains: async (chains) => (listed.push(chains), chains.map((k) => nftIn(["-a", "list", "chain", ...k.split("/")[0]!.split(" "), k.split("/")[1]!])).join("")),
        watchedSince: () => -1e9,
      },
      log: (l) => void logs.push(l),
      sleep: async () => {},
      verbose: false,
      debounceMs: 0,
      sessions: () => [],
    };
    try {
      const w = new Watcher(deps, policy);
      expect(await w.reconcile()).toEqual({ changed: true });
      expect(loads[0]).toMatch(/^table ip docker-bridges$/m); // the whole file, the first time
      const steps: [string, Record<string, unknown>[]][] = [
        ["a3 starts", [corpus.containers[0]!, webLike("a3", 3, 8083)]],
        ["a4 starts", [corpus.containers[0]!, webLike("a3", 3, 8083), webLike("a4", 4, 8084)]],
        ["a3 stops", [corpus.containers[0]!, webLike("a4", 4, 8084)]],
        ["a5 starts", [corpus.containers[0]!, webLike("a4", 4, 8084), webLike("a5", 5, 8085)]],
        ["web stops", [webLike("a4", 4, 8084), webLike("a5", 5, 8085)]],
      ];
      for (const [name, containers] of steps) {
        facts.containers = containers;
        const before = loads.length;
        expect(await w.reconcile(), name).toEqual({ changed: true });
        expect(loads.length, name).toBe(before + 1);
        const delta = loads.at(-1)!;
        // A delta (no table made again), and no rule placed by handle.
        expect(delta, name).not.toMatch(/^table /m);
        expect(delta, name).not.toMatch(/ position /);
        const file = compile(policy, { format: "nft", facts: { raw: structuredClone(facts), source: "fake" } }).output!;
        const now = ["ip docker-bridges", "ip6 docker-bridges", "inet dockwall"].map((t) => nftIn(["list", "table", ...t.split(" ")])).join("");
        expect(diffNft(now, file).changed, name).toBe(false);
      }
      // The handles of the rules each delta added were learnt from the chains they went into, not from the whole tables.
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.flat().every((k) => /^(ip6? docker-bridges|inet dockwall)\//.test(k))).toBe(true);
      expect(logs.filter((l) => /whole file|refused/.test(l))).toEqual([]);
      // The deltas went through the one nft -i, still running.
      if (session) expect(session.pid).toBeGreaterThan(0);
    } finally {
      session?.close();
      deleteNetns(ns.name);
    }
  });
});
