// Issue 24's benchmarks (BENCH_ONLY=nft, and in the full run), in scratch network namespaces:
//  - loading the 2,000-container policy as the --format nft file (`nft -f`: Docker's tables as
//    dockerd 29.7 writes them, rule for rule, and dockwall's), into an empty namespace and again
//    over itself, in the same rounds as iptables-restore + ip6tables-restore of the same policy;
//  - `dockwall watch -f nft` following the fake Engine API: the time from one `container start`
//    event to the watcher's 'applied: containers +NAME' line (its DNAT checked in the kernel after
//    each), beside `dockwall watch` (iptables) of the same policy and events.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { containerName, engineAnswers, engineFacts, enginePolicy, FIRST_PORT, startFakeEngine } from "./engine.js";
import { escape, exec, fmt, must, ms, Namespaces, pause, percentile, ratioTo, sleep, WatchProcess, type Ctx } from "./live.js";
import { measureEach } from "./process.js";

/** The policy of the engine benchmarks as Docker 29.7 with its firewall off: what --format nft writes Docker's tables for. */
const policyOf = (containers: number) => enginePolicy(containers).replace("version 20.10;", "version 29.7;");

export async function benchNft(ctx: Ctx, containers = 2000, events = Number(process.env.BENCH_WATCH_EVENTS ?? 20)): Promise<{ lines: string[]; target: string }> {
  const sub = join(ctx.dir, `nft${containers}`);
  mkdirSync(sub, { recursive: true });
  const facts = join(sub, "facts.json");
  const policy = join(sub, "p.dw");
  writeFileSync(facts, JSON.stringify(engineFacts(containers)));
  writeFileSync(policy, policyOf(containers));
  const nftFile = join(sub, "p.nft");
  const v4 = join(sub, "rules.v4");
  const v6 = join(sub, "rules.v6");
  must([ctx.bin, "compile", policy, "--facts", facts, "-f", "nft", "-o", nftFile]);
  must([ctx.bin, "compile", policy, "--facts", facts, "-f", "iptables", "-o", v4]);
  must([ctx.bin, "compile", policy, "--facts", facts, "-f", "ip6tables", "-o", v6]);
  const ns = new Namespaces();
  const lines: string[] = [];
  let loadRatio = NaN;
  let p95: number | undefined;
  try {
    // Loading: again over itself, and into empty namespaces made before each round.
    const again = ns.fresh("nft-again");
    const againIpt = ns.fresh("ipt-again");
    must([...exec(again), "nft", "-f", nftFile]);
    must([...exec(againIpt), "iptables-restore", v4]);
    must([...exec(againIpt), "ip6tables-restore", v6]);
    let first = "";
    let firstIpt = "";
    const m = measureEach(
      {
        nftAgain: { argv: [...exec(again), "nft", "-f", nftFile] },
        restore4Again: { argv: [...exec(againIpt), "iptables-restore", v4] },
        restore6Again: { argv: [...exec(againIpt), "ip6tables-restore", v6] },
        nftFirst: {
          get argv() {
            return [...exec(first), "nft", "-f", nftFile];
          },
          before: () => {
            if (first) ns.drop(first);
            if (firstIpt) ns.drop(firstIpt);
            pause(300);
            first = ns.fresh("nft-first");
            firstIpt = ns.fresh("ipt-first");
          },
        },
        restore4First: {
          get argv() {
            return [...exec(firstIpt), "iptables-restore", v4];
          },
        },
        restore6First: {
          get argv() {
            return [...exec(firstIpt), "ip6tables-restore", v6];
          },
        },
      },
      { runs: ctx.bigRuns, maxSteal: ctx.maxSteal },
    );
    ctx.noted(`nft -f, ${containers} containers`, m.rounds);
    const b = m.by;
    const a = ratioTo(b.nftAgain, [b.restore4Again, b.restore6Again], 1);
    const f = ratioTo(b.nftFirst, [b.restore4First, b.restore6First], 1);
    loadRatio = Math.max(a.ratio, f.ratio);
    const count = (file: string, re: RegExp) => must(["cat", file]).split("\n").filter((l) => re.test(l)).length;
    lines.push(
      `loading the ${containers.toLocaleString("en")}-container policy (iptables off, Docker 29.7): the --format nft file (${count(nftFile, /^\t\t[^}]/)} rule and element lines, one nft -f) against iptables-restore + ip6tables-restore of the same policy (${count(v4, /^-A /)} + ${count(v6, /^-A /)} rules), ${b.nftFirst.runs} rounds:`,
      `| load | nft -f | iptables-restore | ip6tables-restore | nft / (both restores), median of the rounds |`,
      `| --- | --- | --- | --- | --- |`,
      `| into an empty namespace | ${fmt(b.nftFirst)} | ${fmt(b.restore4First)} | ${fmt(b.restore6First)} | ${f.ratio.toFixed(2)}× |`,
      `| the same again, over itself | ${fmt(b.nftAgain)} | ${fmt(b.restore4Again)} | ${fmt(b.restore6Again)} | ${a.ratio.toFixed(2)}× |`,
    );

    // watch -f nft against watch (iptables), the same policy and events.
    const most = events * 5 + 2;
    const all = engineFacts(containers + 2 * most).containers;
    const server = await startFakeEngine(sub, engineAnswers(engineFacts(containers)));
    let added = 0;
    const rows: string[] = [];
    try {
      const env = { ...process.env, DOCKER_HOST: server.dockerHost, DOCKWALL_STATE_DIR: join(sub, "state") };
      for (const mode of ["nft", "iptables"] as const) {
        const wns = ns.fresh(`watch-${mode}`);
        const w = new WatchProcess([...exec(wns), ctx.bin, "watch", policy, "-f", mode, ...(process.env.BENCH_VERBOSE ? ["--verbose"] : [])], env);
        const quiet: number[] = [];
        try {
          await w.line(/^applied: /, 60_000);
          // As on a host where the watcher runs before the containers start: its first load settled (nft monitor up,
          // the tables' handles learnt). The first event after that is still set aside as warm-up.
          await sleep(2000);
          for (let tries = 0; quiet.length < events && tries <= 5 * events; tries++) {
            const i = containers + added++;
            const name = containerName(i);
            const done = w.line(new RegExp(`^applied: containers .*\\+${escape(name)}[ ;]`), 30_000);
            const t0 = performance.now();
            if ((await server.start(all[i]!)) !== 1) throw new Error(`the start event of ${name} went to no watcher`);
            const t1 = await done;
            // The rule is in the kernel: the line is written after nft (or iptables-restore) returned.
            const rules = mode === "nft" ? must([...exec(wns), "nft", "list", "chain", "ip", "docker-bridges", "nat-prerouting-and-output"]) : must([...exec(wns), "iptables", "-t", "nat", "-S", "DOCKER"]);
            if (!rules.includes(mode === "nft" ? `tcp dport ${FIRST_PORT + i} ` : `--dport ${FIRST_PORT + i} -j DNAT`)) throw new Error(`after the watcher's line for ${name}, its DNAT is not in the kernel`);
            if (tries > 0) quiet.push(t1 - t0); // the first: warm-up
            await sleep(200);
          }
        } finally {
          await w.stop();
          if (process.env.BENCH_VERBOSE) console.log(w.tail.filter((l) => process.env.BENCH_VERBOSE === "all" || /reconciled in/.test(l)).join("\n"));
        }
        ns.drop(wns);
        if (process.env.BENCH_VERBOSE) console.log(`watch -f ${mode}, each event → rule (ms): ${quiet.map((x) => Math.round(x)).join(" ")}`);
        if (mode === "nft") p95 = percentile(quiet, 95);
        rows.push(`| watch -f ${mode} | ${quiet.length} | ${ms(percentile(quiet, 50))} | ${ms(percentile(quiet, 95))} | ${ms(Math.max(...quiet))} |`);
      }
    } finally {
      server.close();
    }
    lines.push(
      `dockwall watch of the same policy against the fake Engine API, 2 s after its first load, one container started per event (200 ms apart), the time from the start event to the watcher's 'applied: containers +NAME' line (its DNAT checked in the kernel after each); -f nft loads only what differs (a few nft commands), iptables the chains that differ:`,
      `| watcher | events | p50 event → rule | p95 | max |`,
      `| --- | --- | --- | --- | --- |`,
      ...rows,
    );
  } finally {
    ns.dropAll();
  }
  const target =
    `nft -f of the ${containers.toLocaleString("en")}-container policy no slower than iptables-restore + ip6tables-restore: ${loadRatio.toFixed(2)}× at worst (${loadRatio <= 1 ? "met" : "not met"}); ` +
    `watch -f nft p95 event → rule < 50 ms: ${p95 === undefined ? "n/a" : `${ms(p95)} (${p95 < 50 ? "met" : "not met"})`}`;
  return { lines, target };
}
