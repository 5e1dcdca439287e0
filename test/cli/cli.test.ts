import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { memoryIo } from "../support/io.js";
import { root } from "../support/policies.js";

const good = `docker { version 20.10; userland-proxy off; }\nzone lan { interface eth1; }\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\nallow lan to web:8080;\n`;
const bad = `docker { version 20.10; }\ncontainer web { network bridge 172.17.0.300; }\n`;

describe("in process", () => {
  test("compile writes ferm to stdout by default", async () => {
    const io = memoryIo({ "p.dw": good });
    expect(await run(["compile", "p.dw"], io)).toBe(0);
    expect(io.out.join("")).toBe(compile(good, { file: "p.dw" }).output);
    expect(io.out.join("")).toContain("domain ip {");
    expect(io.err).toEqual([]);
  });

  test.each([
    ["0", "1 or more (without --confirm the rules stay at once)"],
    ["-5", "1 or more (without --confirm the rules stay at once)"],
    ["1.5", "a whole number"],
  ])("apply --confirm %s: exit 2, says what it takes, before anything is read", async (value, why) => {
    const io = memoryIo({ "p.dw": good });
    expect(await run(["apply", "p.dw", "--confirm", value], io)).toBe(2);
    expect(io.err.join("")).toBe(`dockwall: --confirm takes the seconds to wait for 'dockwall confirm', ${why}, not '${value}'\n`);
  });

  test("--format and -o", async () => {
    const io = memoryIo({ "p.dw": good });
    expect(await run(["compile", "p.dw", "--format", "iptables", "-o", "rules.v4"], io)).toBe(0);
    expect(io.files.get("rules.v4")).toContain("*filter");
    expect(io.out).toEqual([]);
  });

  test("an error: exit 2, diagnostics on stderr, nothing written", async () => {
    const io = memoryIo({ "p.dw": bad });
    expect(await run(["compile", "p.dw", "-o", "out.ferm"], io)).toBe(2);
    expect(io.files.has("out.ferm")).toBe(false);
    expect(io.out).toEqual([]);
    expect(io.err.join("")).toMatch(/^p\.dw:2:41: error: '300' in IPv4 address/);
    expect(io.err.join("")).toContain("out.ferm was not written");
  });

  test("check's summary only counts (check writes nothing anyway); compile's says nothing was written", async () => {
    const io = memoryIo({ "p.dw": bad });
    expect(await run(["check", "p.dw"], io)).toBe(2);
    expect(io.err.join("")).toMatch(/\ndockwall: 1 error\n$/);
    const io2 = memoryIo({ "p.dw": bad });
    expect(await run(["compile", "p.dw"], io2)).toBe(2);
    expect(io2.err.join("")).toMatch(/\ndockwall: 1 error; nothing was written\n$/);
  });

  test("compile --diff with -o is refused (--diff writes no file), before anything is read", async () => {
    const io = memoryIo({ "p.dw": good });
    expect(await run(["compile", "p.dw", "--diff", "-o", "out.ferm"], io)).toBe(2);
    expect(io.err.join("")).toBe("dockwall: -o cannot go with --diff: --diff shows what loading the rules would change and writes no file; compile with -o out.ferm and run 'dockwall diff p.dw' separately\n");
    expect(io.files.has("out.ferm")).toBe(false);
    expect(io.out).toEqual([]);
  });

  test("an allow repeated is written once: the output is the policy's without the repeat", async () => {
    const io = memoryIo({ "p.dw": good + "allow lan to web:8080;\n" });
    expect(await run(["compile", "p.dw", "-f", "iptables"], io)).toBe(0);
    expect(io.out.join("")).toBe(compile(good, { file: "p.dw", format: "iptables" }).output);
    expect(io.out.join("").match(/--ctorigdstport 8080 -j RETURN/g)).toHaveLength(1);
  });

  test("allows alike but for their sources' family (from 0.0.0.0/0, from ::/0) are not one repeated: each family gets its own (the IPv6 one was left out)", () => {
    const text = `docker { version 20.10; iptables off; userland-proxy off; ip6tables on; }
zone lan { interface eth1; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container web { network app 172.20.0.2, fd00:20::2; publish 8080:80; }
allow lan from 0.0.0.0/0 to web:8080;
allow lan from ::/0 to web:8080;
`;
    const r4 = compile(text, { format: "iptables" });
    const r6 = compile(text, { format: "ip6tables" });
    expect(r4.output!.match(/^-A DOCKER-USER -s 0\.0\.0\.0\/0 -d 172\.20\.0\.2\/32 -i eth1 -o br-app .* --ctorigdstport 8080 -j RETURN$/gm)).toHaveLength(1);
    expect(r6.output!.match(/^-A DOCKER-USER -s ::\/0 -d fd00:20::2\/128 -i eth1 -o br-app .* --ctorigdstport 8080 -j RETURN$/gm) ?? []).toHaveLength(1);
    expect(r6.diagnostics.filter((d) => d.code === "duplicate-allow")).toEqual([]);
  });

  test("policy from standard input", async () => {
    const io = memoryIo({ "-": good });
    expect(await run(["check", "-"], io)).toBe(0);
    const io2 = memoryIo({ "-": bad });
    expect(await run(["check", "-"], io2)).toBe(2);
    expect(io2.err.join("")).toMatch(/^<stdin>:2:41: error:/);
  });

  test("a missing file", async () => {
    const io = memoryIo({});
    expect(await run(["check", "nope.dw"], io)).toBe(2);
    expect(io.err.join("")).toBe("dockwall: cannot read nope.dw: no such file\n");
  });

  test("usage errors exit 2", async () => {
    for (const argv of [[], ["frobnicate"], ["compile"], ["compile", "p.dw", "--format", "pf"], ["check", "p.dw", "--bogus"]]) {
      const io = memoryIo({ "p.dw": good });
      expect(await run(argv, io), argv.join(" ")).toBe(2);
      expect(io.err.join(""), argv.join(" ")).toMatch(/^dockwall: /);
    }
  });

  test("usage mistakes get dockwall's own words, not yargs' (missing POLICY, unknown option, bad choice, missing value, conflicts)", async () => {
    const said = async (argv: string[]) => {
      const io = memoryIo({ "p.dw": good });
      expect(await run(argv, io), argv.join(" ")).toBe(2);
      return io.err.join("");
    };
    const usage = "Run 'dockwall --help' for usage.\n";
    expect(await said(["check"])).toBe(`dockwall: check needs the policy: dockwall check POLICY (a .dw file, or - for standard input)\n${usage}`);
    expect(await said(["watch"])).toBe(`dockwall: watch needs the policy: dockwall watch POLICY (a .dw file, or - for standard input)\n${usage}`);
    expect(await said(["compile", "p.dw", "--bogus"])).toBe(`dockwall: unknown option --bogus\n${usage}`);
    expect(await said(["compile", "p.dw", "extra.dw"])).toBe(`dockwall: compile takes one policy; 'extra.dw' is one too many\n${usage}`);
    expect(await said(["frobnicate"])).toBe(`dockwall: unknown command 'frobnicate'; the commands are compile, diff, check, apply, confirm, rollback, watch, ferm-keep, facts and init\n${usage}`);
    expect(await said(["ferm-keep"])).toBe(`dockwall: ferm-keep needs ferm's domain: dockwall ferm-keep ip|ip6 [TABLE:[CHAIN,…] …]\n${usage}`);
    expect(await said([])).toBe(`dockwall: name a command: compile, diff, check, apply, confirm, rollback, watch, ferm-keep, facts or init\n${usage}`);
    expect(await said(["compile", "p.dw", "--format", "pf"])).toBe(`dockwall: --format takes ferm, iptables, ip6tables or nft, not 'pf'\n${usage}`);
    expect(await said(["compile", "p.dw", "-o"])).toBe(`dockwall: -o needs a value\n${usage}`);
    expect(await said(["check", "p.dw", "--docker", "--facts", "x.json"])).toBe(`dockwall: --docker and --facts cannot go together: take Docker's facts from the daemon or from a file\n${usage}`);
    for (const argv of [["check"], ["compile", "p.dw", "--bogus"], ["compile", "p.dw", "--format", "pf"], ["compile", "p.dw", "-o"]]) expect(await said(argv)).not.toMatch(/non-option|Unknown argument|Invalid values|Not enough arguments|mutually exclusive/);
  });

  test("--help lists every command and the exit codes; --version prints the version", async () => {
    const io = memoryIo({});
    expect(await run(["--help"], io)).toBe(0);
    const help = io.out.join("");
    for (const s of ["compile <policy>", "diff <policy>", "check <policy>", "Exit codes: 0", "1 diff found differences", "2 the input is wrong"]) expect(help).toContain(s);
    const v = memoryIo({});
    expect(await run(["--version"], v)).toBe(0);
    expect(v.out.join("")).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version + "\n");
  });
});

describe.each([
  ["from the start-up snapshot", {}],
  ["as a plain script (DOCKWALL_NO_SNAPSHOT=1)", { DOCKWALL_NO_SNAPSHOT: "1" }],
])("the installed command (bin/dockwall, the bundle) %s", (_how, env) => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(root, "bin/dockwall");
  const sh = (args: string[], input?: string) => spawnSync(bin, args, { encoding: "utf8", input, cwd: dir, env: { ...process.env, ...env } });

  test("is built", () => {
    expect(existsSync(join(root, "dist/dockwall.cjs")), "run npm run build").toBe(true);
  });

  test("compiles the shipped example like compile() does, in every format", () => {
    const file = join(root, "examples/web-host.dw");
    const text = readFileSync(file, "utf8");
    for (const format of ["ferm", "iptables", "ip6tables"] as const) {
      const r = sh(["compile", file, "-f", format]);
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(/^(.*: warning: [^]*)?$/);
      expect(r.stdout).toBe(compile(text, { format, file }).output);
    }
  });

  test("writes no file on error and exits 2", () => {
    writeFileSync(join(dir, "bad.dw"), bad);
    const r = sh(["compile", "bad.dw", "-o", "out.ferm"]);
    expect(r.status).toBe(2);
    expect(existsSync(join(dir, "out.ferm"))).toBe(false);
    expect(r.stderr.split("\n")[0]).toBe("bad.dw:2:41: error: '300' in IPv4 address '172.17.0.300': each part must be 0 to 255");
    expect(r.stderr.split("\n")[1]).toBe("2 | container web { network bridge 172.17.0.300; }");
    expect(r.stderr.split("\n")[2]).toBe("  |                                         ^^^");
  });

  test("-o where no file can be written: the file named and the real cause, not the temporary file's", () => {
    writeFileSync(join(dir, "good.dw"), good);
    const proc = sh(["compile", "good.dw", "-o", "/proc/version"]);
    expect(proc.status).toBe(2);
    expect(proc.stderr).toBe("dockwall: cannot write /proc/version: /proc is the kernel's proc file system, where no file can be created\n");
    const none = sh(["compile", "good.dw", "-o", "no-such-dir/out.ferm"]);
    expect(none.status).toBe(2);
    expect(none.stderr).toBe("dockwall: cannot write no-such-dir/out.ferm: there is no directory no-such-dir\n");
    const isDir = sh(["compile", "good.dw", "-o", "."]);
    expect(isDir.status).toBe(2);
    expect(isDir.stderr).toBe("dockwall: cannot write .: it is a directory\n");
    expect(readdirSync(dir).filter((f) => f.includes(".dockwall-"))).toEqual([]);
  });

  test("-o replaces the file whole (paths relative to the working directory)", () => {
    writeFileSync(join(dir, "good.dw"), good);
    writeFileSync(join(dir, "out.v4"), "old");
    const r = sh(["compile", "good.dw", "-f", "iptables", "-o", "out.v4"]);
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, "out.v4"), "utf8")).toContain("*filter");
  });

  test("reads the policy from standard input, takes Node's own option names as its own, prints help", () => {
    const r = sh(["compile", "-", "-f", "iptables"], good);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(compile(good, { format: "iptables", file: "<stdin>" }).output);
    const v = sh(["--version"]);
    expect(v.stdout).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version + "\n");
    const h = sh(["--help"]);
    expect(h.status).toBe(0);
    expect(h.stdout).toContain("dockwall compile <policy>");
    expect(h.stdout).toContain("Exit codes: 0 success");
  });

  test("a reader that stops early (| head) gets no error message", () => {
    // Output well past a pipe's buffer, so that the writer does see the reader gone.
    const lines = ["docker { version 20.10; }", "zone lan { interface eth1; }"];
    for (let i = 0; i < 500; i++) lines.push(`container c${i} { network bridge 172.17.${Math.floor(i / 250) + 1}.${(i % 250) + 2}; publish ${10000 + i}:80; }`, `allow lan to c${i}:${10000 + i};`);
    const file = join(dir, "big.dw");
    writeFileSync(file, lines.join("\n") + "\n");
    const r = spawnSync("sh", ["-c", `"${bin}" compile "${file}" -f iptables | head -1`], { encoding: "utf8", env: { ...process.env, ...env } });
    expect(r.stdout).toMatch(/^# Generated by dockwall/);
    expect(r.stderr).not.toMatch(/EPIPE|Error/);
  });

  test("diff reads a live dump and exits 1 on a difference", () => {
    writeFileSync(join(dir, "good.dw"), good);
    writeFileSync(join(dir, "live.v4"), "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
    const r = sh(["diff", "good.dw", "--live", "live.v4"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^\+ -A DOCKER-USER /m);
  });
});

describe("the start-up snapshot", () => {
  test("was built for the Node that runs the tests (so the tests above used it)", () => {
    const [stamp] = readFileSync(join(root, "dist/dockwall.blob.stamp"), "utf8").split("\n");
    const node = realpathSync(process.execPath);
    expect(stamp).toBe(`${node} ${statSync(node).size} ${Math.floor(statSync(node).mtimeMs / 1000)}`);
  });

  test("was built with the flags of bin/dockwall, and loads only with them; the stamp is one line", () => {
    const flags = /^flags="([^"]*)"$/m.exec(readFileSync(join(root, "bin/dockwall"), "utf8"))![1]!.split(" ").filter(Boolean);
    expect(readFileSync(join(root, "dist/dockwall.blob.stamp"), "utf8").split("\n")).toHaveLength(2);
    const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version + "\n";
    const withThem = spawnSync(process.execPath, [...flags, "--snapshot-blob", join(root, "dist/dockwall.blob"), "--", "--version"], { encoding: "utf8" });
    expect(withThem.stdout).toBe(version);
    // Node refuses a snapshot built with other V8 flags (--max-semi-space-size is one; --v8-pool-size is Node's).
    const without = spawnSync(process.execPath, ["--snapshot-blob", join(root, "dist/dockwall.blob"), "--", "--version"], { encoding: "utf8" });
    expect(without.status).not.toBe(0);
    // No tuning of one release's optimising compiler, and a fresh hash seed at every start.
    expect(flags.filter((f) => /turbo|inlin|rehash/.test(f))).toEqual([]);
  });

  test("a V8 flag in NODE_OPTIONS (which the snapshot would refuse, exit 14) does not stop the command", () => {
    const r = spawnSync(join(root, "bin/dockwall"), ["--version"], { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=4096" } });
    expect([r.status, r.stdout, r.stderr]).toEqual([0, JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version + "\n", ""]);
  });

  /** Runs `dockwall --version` from a copy of bin/ and dist/ whose blob is not a snapshot (Node fails on it if it loads it). */
  function brokenBlobCopy(stamp?: string) {
    const copy = mkdtempSync(join(tmpdir(), "dockwall-copy-"));
    try {
      cpSync(join(root, "bin"), join(copy, "bin"), { recursive: true });
      cpSync(join(root, "dist"), join(copy, "dist"), { recursive: true });
      writeFileSync(join(copy, "dist/dockwall.blob"), "not a snapshot");
      if (stamp) writeFileSync(join(copy, "dist/dockwall.blob.stamp"), stamp);
      return spawnSync(join(copy, "bin/dockwall"), ["--version"], { encoding: "utf8" });
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  }

  test("is not used with another Node: a copy whose stamp names another binary still runs (as a script), silently", () => {
    const r = brokenBlobCopy("/usr/local/bin/another-node 1 1\n");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version + "\n");
  });

  test("an unbuilt copy says how to build it", () => {
    const copy = mkdtempSync(join(tmpdir(), "dockwall-copy-"));
    try {
      cpSync(join(root, "bin"), join(copy, "bin"), { recursive: true });
      const r = spawnSync(join(copy, "bin/dockwall"), ["--version"], { encoding: "utf8" });
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`dockwall: ${join(copy, "dist")}/dockwall.cjs is missing: build it with 'npm run build' (npm ci does)\n`);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  test("is loaded when the stamp matches: a broken blob with a good stamp fails", () => {
    expect(brokenBlobCopy().status).not.toBe(0);
  });
});
