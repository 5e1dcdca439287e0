// watch -f nft's deltas through one nft -i (live/nftsession.ts): each line sent is one
// transaction, its answer is what nft printed before the marker's own error. Against a fake
// nft -i here (the answers as nft 1.0.6 prints them), and the real one in a namespace.
import { spawn } from "node:child_process";
import { expect, test } from "vitest";
import { MarkerReader, NftSession, SESSION_BYTES, SESSION_ENV, SessionFailed, sessionLine, type Interactive } from "../../src/live/nftsession.js";
import { createNetns, deleteNetns, describeKernel } from "../lab/kernel.js";

/** nft 1.0.6's error for a marker line, as it prints it. */
const markerError = (n: number) => `Error: syntax error, unexpected newline, expecting string\ndockwall-done-${n}\n${" ".repeat(`dockwall-done-${n}`.length)}^\n`;

test("a line per transaction: commands joined by ';'; what cannot go on one line is refused", () => {
  expect(sessionLine("add rule ip t c accept\ndelete rule ip t c handle 4\n")).toBe("add rule ip t c accept; delete rule ip t c handle 4");
  expect(sessionLine('add rule ip t c counter accept comment "a # b"\n')).toBe('add rule ip t c counter accept comment "a # b"');
  expect(sessionLine("add rule ip t c accept # why\nadd rule ip t c drop\n")).toBeUndefined();
  expect(sessionLine("add rule ip t c\taccept\n")).toBeUndefined();
  expect(sessionLine("\n\n")).toBeUndefined();
  expect(sessionLine(`add rule ip t c accept comment "${"x".repeat(70000)}"\n`)).toBeUndefined();
});

test("the reader: each answer once the marker's error is complete, in order; an error before the marker is the transaction's", () => {
  const r = new MarkerReader((n) => `dockwall-done-${n}`);
  const refused = "Error: Could not process rule: No such file or directory\nadd rule ip t x drop\n                ^\n";
  const all = markerError(1) + refused + markerError(2) + markerError(3);
  // Fed a character at a time: nothing until the caret line of each marker.
  const got: { n: number; said: string }[] = [];
  for (const ch of all) got.push(...r.feed(ch));
  expect(got).toEqual([
    { n: 1, said: "" },
    { n: 2, said: refused },
    { n: 3, said: "" },
  ]);
  expect(() => new MarkerReader((n) => `dockwall-done-${n}`).feed("nothing\ndockwall-done-1\n^\n")).toThrow(/without an error/);
});

/** A fake nft -i: what was written, and the stderr and exit it is told to give. */
function fake() {
  const written: string[] = [];
  const timers: (() => void)[] = [];
  let onErr: (c: string) => void = () => {};
  let onExit: (why: string) => void = () => {};
  let starts = 0;
  let killed = 0;
  const session = new NftSession({
    start: (e, x): Interactive => {
      starts++;
      onErr = e;
      onExit = x;
      return { pid: 100 + starts, write: (t) => void written.push(t), close: () => void killed++ };
    },
    timer: (_ms, f) => {
      timers.push(f);
      const i = timers.length - 1;
      return { cancel: () => void (timers[i] = () => {}) };
    },
  });
  return { session, written, timers, err: (c: string) => onErr(c), exit: (why: string) => onExit(why), starts: () => starts, killed: () => killed };
}

test("a run resolves when nft answers, rejects with nft's error; one process for every run", async () => {
  const f = fake();
  const a = f.session.run("add rule ip t c accept\n");
  const b = f.session.run("add rule ip t x drop\n");
  expect(f.written).toEqual(["add rule ip t c accept\ndockwall-done-1\n", "add rule ip t x drop\ndockwall-done-2\n"]);
  f.err(markerError(1) + "Error: Could not process rule: No such file or directory\nadd rule ip t x drop\n               ^\n" + markerError(2));
  await expect(a).resolves.toBe("");
  await expect(b).rejects.toThrow(/^Error: Could not process rule: No such file or directory/);
  expect(f.session.pid).toBe(101);
  expect(f.starts()).toBe(1);
  // A warning (not an error) is said, and the transaction went in.
  const c = f.session.run("add rule ip t c accept\n");
  f.err("Warning: something\n" + markerError(3));
  await expect(c).resolves.toBe("Warning: something");
});

test("no answer in time: nft -i is killed, and the run is not known (rejected) only once it is gone; the next run starts another", async () => {
  const f = fake();
  const a = f.session.run("add rule ip t c accept\n");
  let settled = false;
  void a.catch(() => (settled = true));
  f.timers[0]!(); // the 2 s limit
  expect(f.killed()).toBe(1);
  await Promise.resolve();
  expect(settled).toBe(false); // a transaction it still had could land after the whole file
  f.exit("signal SIGKILL");
  await expect(a).rejects.toThrow(/did not answer in 2000 ms/);
  await expect(a).rejects.toBeInstanceOf(SessionFailed); // not nft refusing it: not known
  expect(f.session.pid).toBeUndefined();
  const b = f.session.run("add rule ip t c accept\n");
  expect(f.starts()).toBe(2);
  f.err(markerError(1));
  await expect(b).resolves.toBe("");
});

test("nft -i keeps every line in its history: another is started once a megabyte went through the one running, when it is idle", async () => {
  const f = fake();
  const rule = `add rule ip t c accept comment "${"x".repeat(60_000)}"\n`;
  let n = 0;
  while (n * 60_000 <= SESSION_BYTES) {
    const run = f.session.run(rule);
    f.err(markerError(++n));
    await expect(run).resolves.toBe("");
  }
  expect(f.starts()).toBe(1);
  expect(f.killed()).toBe(1); // past the limit, idle: ended
  f.exit("signal SIGKILL");
  const next = f.session.run("add rule ip t c accept\n");
  expect(f.starts()).toBe(2);
  f.err(markerError(1));
  await expect(next).resolves.toBe("");
});

test("a process that never ends once killed: the run is rejected a second later all the same", async () => {
  const f = fake();
  const a = f.session.run("add rule ip t c accept\n");
  f.timers[0]!();
  f.timers[1]!(); // the second after the kill
  await expect(a).rejects.toThrow(/did not answer/);
});

test("nft -i gone by itself: what waits is rejected at once; answers that do not fit end the session", async () => {
  const f = fake();
  const a = f.session.run("add rule ip t c accept\n");
  f.exit("exit 1");
  await expect(a).rejects.toThrow(/nft -i ended \(exit 1\)/);
  const b = f.session.run("add rule ip t c accept\n");
  f.err("garbage\ndockwall-done-1\n^\n");
  expect(f.killed()).toBe(1);
  f.exit("signal SIGKILL");
  await expect(b).rejects.toThrow(/without an error/);
  await expect(f.session.run("add rule ip t c accept # no\nadd rule ip t c drop\n")).rejects.toThrow(/cannot be sent as one line/);
});

describeKernel("nft -i in a namespace: each run one transaction", () => {
  test("a run goes in whole or not at all; nft's error is the run's; a killed nft -i is started again", async () => {
    const ns = createNetns("-i");
    const session = new NftSession({
      start: (onErr, onExit) => {
        const child = spawn("nsenter", [`--net=${ns.path}`, "nft", "-i"], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, ...SESSION_ENV } });
        child.stderr.setEncoding("utf8").on("data", onErr);
        child.on("close", (code, sig) => onExit(`exit ${code ?? sig}`));
        return { pid: child.pid, write: (t) => void child.stdin.write(t), close: () => void child.kill("SIGKILL") };
      },
      timer: (ms, f) => {
        const t = setTimeout(f, ms);
        return { cancel: () => clearTimeout(t) };
      },
    });
    const list = () => ns.run(["nft", "list", "ruleset"]).stdout.replace(/\s+/g, " ").trim();
    try {
      await expect(session.run('add table ip t\nadd chain ip t c\nadd rule ip t c tcp dport 22 accept comment "a; b"\n')).resolves.toBe("");
      expect(list()).toBe('table ip t { chain c { tcp dport 22 accept comment "a; b" } }');
      // The second command fails: the first is not in either.
      await expect(session.run("add rule ip t c udp dport 53 accept\nadd rule ip t nosuch drop\n")).rejects.toThrow(/No such file or directory/);
      expect(list()).toBe('table ip t { chain c { tcp dport 22 accept comment "a; b" } }');
      const pid = session.pid!;
      process.kill(pid, "SIGKILL");
      await new Promise((r) => setTimeout(r, 100));
      await expect(session.run("add rule ip t c udp dport 53 accept\n")).resolves.toBe("");
      expect(session.pid).not.toBe(pid);
      expect(list()).toBe('table ip t { chain c { tcp dport 22 accept comment "a; b" udp dport 53 accept } }');
    } finally {
      session.close();
      deleteNetns(ns.name);
    }
  });
});
