// apply, confirm and rollback as a program calls them (issue 25, item 2; the Ansible module
// does): --json, --check (everything but the load: nothing loaded, nothing written), --confirm
// with --no-wait and 'confirm --token', on a machine in memory through the command line. Every
// output is validated against src/schema/dockwall.schema.json, diff --json too.
import { Ajv } from "ajv";
import { readFileSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { run } from "../../src/cli.js";
import { machine, type Machine } from "../support/memory-kernel.js";
import { memoryIo, type MemoryIo } from "../support/io.js";

const schema = JSON.parse(readFileSync(new URL("../../src/schema/dockwall.schema.json", import.meta.url), "utf8")) as object;
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, "dockwall");
const valid = (def: string, v: unknown) => (ajv.validate(`dockwall#/definitions/${def}`, v) ? "" : ajv.errorsText(ajv.errors));

const HEAD = "docker { version 20.10; iptables off; userland-proxy off; }\nzone wan { interface eth0; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nnetwork bridge { bridge docker0; subnet 172.17.0.0/16; }\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\n";
const A = `${HEAD}allow wan to web:8080;\nhost { allow lan tcp 22; }\n`;
/** B closes web to the wan and opens it to the lan. */
const B = `${HEAD}allow lan to web:8080;\nhost { allow lan tcp 22; }\n`;

interface ApplyJson {
  ok: boolean;
  check: boolean;
  changed: boolean;
  families: Record<string, { changed: boolean; diff: string }>;
  reachability: { from: string; column: string; after: string; path: string }[];
  refused: { reason: string; message: string } | null;
  pending: { token: string; deadline: string; seconds: number } | null;
  outcome: { how: string; ok: boolean; message: string } | null;
  diagnostics: { code: string; severity: string }[];
}

let m: Machine;
let io: MemoryIo;
async function dw(...args: string[]) {
  io.err.length = 0;
  io.out.length = 0;
  const code = await run(args, io);
  return { code, out: io.out.join(""), err: io.err.join("") };
}
async function applyJson(...args: string[]) {
  const r = await dw("apply", ...args, "--json");
  const j = JSON.parse(r.out) as ApplyJson;
  expect(valid("apply", j)).toBe("");
  return { ...r, j };
}
const kernel = () => [m.kernel.save(4), m.kernel.save(6)];
/** `dockwall diff` of what the kernel holds now (as dumps: the machine in memory runs no iptables-save for it). */
async function diffOf(policy: string, ...args: string[]) {
  io.files.set("/live.v4", m.kernel.save(4));
  io.files.set("/live.v6", m.kernel.save(6));
  return dw("diff", policy, "--live", "/live.v4", "--live6", "/live.v6", ...args);
}
const stateFiles = () => [...m.files.keys()].filter((f) => f.startsWith("/state/")).sort();

beforeEach(() => {
  m = machine();
  io = memoryIo({ "/a.dw": A, "/b.dw": B, "/bad.dw": `${HEAD}allow wan to nothere:80;\n` }, { system: () => m.io });
});

describe("apply --check --json: what an apply would do, with nothing loaded or written", () => {
  it("on a fresh host: changed, the rule diff per family as 'dockwall diff' shows it, who newly reaches what; the kernel and the state directory untouched", async () => {
    const before = kernel();
    const { code, j, err } = await applyJson("/a.dw", "--check");
    expect(code).toBe(0);
    expect(kernel()).toEqual(before);
    expect(stateFiles()).toEqual([]);
    expect(j).toMatchObject({ ok: true, check: true, changed: true, refused: null, pending: null, outcome: null });
    expect(Object.keys(j.families)).toEqual(["ipv4", "ipv6"]);
    expect(j.families.ipv4!.changed).toBe(true);
    // The same lines as `dockwall diff` prints for the same kernel.
    const plus = (t: string) => t.split("\n").filter((l) => /^[-+~!] /.test(l));
    const d = await diffOf("/a.dw");
    expect(d.code).toBe(1);
    // (Its rule diff starts at the --- line; who reaches what comes above it.)
    expect(plus(j.families.ipv4!.diff + j.families.ipv6!.diff)).toEqual(plus(d.out.slice(d.out.indexOf("\n--- ") + 1)));
    expect(j.families.ipv4!.diff).toContain("+ -A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n");
    expect(j.reachability.length).toBeGreaterThan(0);
    expect(err).toContain("check: applying /a.dw would change IPv4 and IPv6; nothing was changed");
  });

  it("after the apply: changed false, the same in every family, no diff; a changed policy is changed again", async () => {
    const a = await applyJson("/a.dw");
    expect(a).toMatchObject({ code: 0, j: { ok: true, check: false, changed: true } });
    const loaded = kernel();
    const again = await applyJson("/a.dw", "--check");
    expect(again.j).toMatchObject({ ok: true, changed: false, reachability: [] });
    expect(again.j.families).toEqual({ ipv4: { changed: false, diff: "" }, ipv6: { changed: false, diff: "" } });
    const b = await applyJson("/b.dw", "--check");
    expect(b.j.changed).toBe(true);
    expect(b.j.families.ipv6!.changed).toBe(false);
    // In the policy's words: the wan no longer reaches web, the lan does.
    expect(b.j.reachability.map((c) => `${c.after} ${c.from} -> ${c.column} (${c.path})`)).toEqual(["closed wan 0.0.0.0/0 in eth0 -> web:8080/tcp (dnat)", "open lan 192.168.1.0/24 in eth1 -> web:8080/tcp (dnat)"]);
    expect(kernel()).toEqual(loaded);
    // A second apply that changes nothing says so, as JSON too.
    expect((await applyJson("/a.dw")).j).toMatchObject({ ok: true, changed: false });
  });

  it("the lockout guard refuses in check mode as apply would: exit 2, refused 'lockout', the diagnostic; nothing loaded", async () => {
    const plain = m.io.run;
    m.io.run = (cmd, args, input) => (cmd === "ip" ? "2: eth0    inet 198.51.100.1/24 brd 198.51.100.255 scope global eth0\\       valid_lft forever preferred_lft forever\n" : plain(cmd, args, input));
    m.io.env = { SSH_CONNECTION: "198.51.100.2 50000 198.51.100.1 22" };
    const before = kernel();
    const { code, j, err } = await applyJson("/a.dw", "--check");
    expect(code).toBe(2);
    expect(j).toMatchObject({ ok: false, check: true, changed: true, refused: { reason: "lockout" } });
    expect(j.refused!.message).toMatch(/^would not apply: the new rules would not accept your SSH session's next connection \(198\.51\.100\.2 → 198\.51\.100\.1:22 on eth0\)/);
    expect(j.diagnostics.map((d) => `${d.severity} ${d.code}`)).toEqual(["error lockout"]);
    expect(err).toContain("dockwall: would not apply: the lockout guard refused (nothing was changed)");
    expect(kernel()).toEqual(before);
    expect(stateFiles()).toEqual([]);
  });

  it("a policy with errors: refused 'policy', its diagnostics as data; a bad command line: refused 'input'", async () => {
    const bad = await applyJson("/bad.dw", "--check");
    expect(bad.code).toBe(2);
    expect(bad.j).toMatchObject({ ok: false, changed: false, refused: { reason: "policy" } });
    expect(bad.j.diagnostics.filter((d) => d.severity === "error").length).toBe(1);
    const nowait = await applyJson("/a.dw", "--no-wait");
    expect(nowait.code).toBe(2);
    expect(nowait.j.refused).toEqual({ reason: "input", message: "dockwall: --no-wait goes with --confirm SECONDS (without --confirm, apply never waits)" });
    const both = await dw("apply", "/a.dw", "--check", "--confirm", "30");
    expect(both).toMatchObject({ code: 2, out: "" });
    expect(both.err).toContain("--check loads nothing");
    expect(m.kernel.loads).toEqual([]);
  });
});

describe("apply --confirm --no-wait, then confirm --token: confirmation over a new connection", () => {
  it("returns once the rules are loaded, with the token; 'confirm --token' of another token keeps nothing; of its own keeps the rules", async () => {
    await applyJson("/a.dw");
    const a = kernel();
    const { code, j } = await applyJson("/b.dw", "--confirm", "30", "--no-wait");
    expect(code).toBe(0);
    expect(j.pending).toEqual({ token: expect.any(String), deadline: "2025-01-01T00:00:30Z", seconds: 30 });
    expect(m.spawned).toEqual([["rollback", "--after", "30", "--token", j.pending!.token]]);
    expect(kernel()).not.toEqual(a);
    const b = kernel();
    const other = await dw("confirm", "--token", "nope", "--json");
    expect(other.code).toBe(2);
    const oj = JSON.parse(other.out) as object;
    expect(valid("message", oj)).toBe("");
    expect(oj).toEqual({ dockwall: 1, command: "confirm", ok: false, message: "the apply nope does not wait for confirmation (the apply of 2025-01-01T00:00:00Z (/b.dw) waits for confirmation, with another token)" });
    const mine = await dw("confirm", "--token", j.pending!.token, "--json");
    expect(mine.code).toBe(0);
    expect(JSON.parse(mine.out)).toEqual({ dockwall: 1, command: "confirm", ok: true, message: "confirmed the apply of 2025-01-01T00:00:00Z (/b.dw): its rules stay" });
    expect(kernel()).toEqual(b);
    // Nothing left behind: no pending apply, no outcome for an apply that no one waits on.
    expect(stateFiles()).toEqual(["/state/policy.json", "/state/rollback.json", "/state/rollback.v4", "/state/rollback.v6"]);
  });

  it("no confirmation: the timer rolls back at the deadline, and a late 'confirm --token' says so (exit 2) and keeps nothing", async () => {
    await applyJson("/a.dw");
    const a = kernel();
    const { j } = await applyJson("/b.dw", "--confirm", "5", "--no-wait");
    // What the detached timer runs.
    expect((await dw("rollback", "--after", "5", "--token", j.pending!.token)).code).toBe(0);
    expect(kernel()).toEqual(a);
    const late = await dw("confirm", "--token", j.pending!.token, "--json");
    expect(late.code).toBe(2);
    expect(JSON.parse(late.out)).toEqual({ dockwall: 1, command: "confirm", ok: false, message: `the apply ${j.pending!.token} no longer waits for confirmation: not confirmed in time, and rolled back: the rules of /a.dw (applied 2025-01-01T00:00:00Z) are back in place, compiled again with Docker's facts as they are now` });
    expect(kernel()).toEqual(a);
    expect(stateFiles().filter((f) => /outcome|pending|settling/.test(f))).toEqual([]);
  });

  it("a confirm after the deadline keeps nothing (exit 2), even when no rollback has run yet: the rollback is due, and 'dockwall rollback' does it", async () => {
    await applyJson("/a.dw");
    const a = kernel();
    const { j } = await applyJson("/b.dw", "--confirm", "5", "--no-wait");
    const b = kernel();
    await m.io.sleep(5_001);
    const late = await dw("confirm", "--token", j.pending!.token, "--json");
    expect(late.code).toBe(2);
    expect(JSON.parse(late.out)).toEqual({ dockwall: 1, command: "confirm", ok: false, message: "too late: the apply of 2025-01-01T00:00:00Z (/b.dw) had to be confirmed by 2025-01-01T00:00:05Z, and its rules are being put back; if they are not, 'dockwall rollback' puts them back" });
    expect(kernel()).toEqual(b);
    // No timer ran (its process is in memory here): the next apply says what to do, and rollback does it.
    expect((await applyJson("/a.dw")).j.refused?.message).toMatch(/was never confirmed, and its rollback \(due 2025-01-01T00:00:05Z\) did not run: 'dockwall rollback' puts back the rules from before it \(then apply again what should stay\)$/);
    expect((await dw("rollback")).code).toBe(0);
    expect(kernel()).toEqual(a);
  });

  it("rollback --json: what it did, as data", async () => {
    await applyJson("/a.dw");
    const a = kernel();
    await applyJson("/b.dw");
    const r = await dw("rollback", "--json");
    expect(r.code).toBe(0);
    const rj = JSON.parse(r.out) as object;
    expect(valid("message", rj)).toBe("");
    expect(rj).toMatchObject({ command: "rollback", ok: true });
    expect(kernel()).toEqual(a);
  });
});

describe("diff --json against the schema", () => {
  it("a fresh host and a converged one", async () => {
    const d = await diffOf("/a.dw", "--json");
    expect(d.code).toBe(1);
    expect(valid("diff", JSON.parse(d.out))).toBe("");
    await applyJson("/a.dw");
    const e = await diffOf("/a.dw", "--json");
    expect(e.code).toBe(0);
    expect(valid("diff", JSON.parse(e.out))).toBe("");
  });

  it("diff -f nft --json: against a saved nft list ruleset, none yet (all new) and the file itself (no change)", async () => {
    const text = "docker { version 20.10; iptables on; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to web:8080;\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\nnetwork bridge { bridge docker0; subnet 172.17.0.0/16; }\n";
    io.files.set("/c.dw", text);
    io.files.set("/none.txt", "");
    const none = await dw("diff", "/c.dw", "-f", "nft", "--live", "/none.txt", "--json");
    expect(none.code).toBe(1);
    const nj = JSON.parse(none.out) as { changed: boolean; parts: { status: string }[] };
    expect(valid("diffNft", nj)).toBe("");
    expect(nj.parts.every((p) => p.status === "added")).toBe(true);
    const file = await dw("compile", "/c.dw", "-f", "nft");
    io.files.set("/same.txt", file.out);
    const same = await dw("diff", "/c.dw", "-f", "nft", "--live", "/same.txt", "--json");
    expect([same.code, JSON.parse(same.out)]).toEqual([0, { dockwall: 1, command: "diff", format: "nft", changed: false, tables: ["inet dockwall"], parts: [], reachability: [] }]);
    expect(valid("diffNft", { ...nj, format: "ferm" })).not.toBe("");
  });

  it("the schema can fail: an apply without its families, a refusal for no reason", () => {
    expect(valid("apply", { dockwall: 1, command: "apply", policy: "p", ok: true, check: false, changed: false, reachability: [], refused: null, pending: null, outcome: null, kept: [], diagnostics: [] })).not.toBe("");
    expect(valid("apply", { dockwall: 1, command: "apply", policy: "p", ok: false, check: false, changed: false, families: {}, reachability: [], refused: { reason: "because", message: "" }, pending: null, outcome: null, kept: [], diagnostics: [] })).not.toBe("");
  });
});
