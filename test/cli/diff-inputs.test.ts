// dockwall diff's inputs: standard input is read once at most, IPv6 is never compared alone
// (that would skip IPv4 without a word), and the header says which side is which.
import { expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { memoryIo } from "../support/io.js";

const policy = `docker { version 28.5; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\nallow lan to web:8080;\n`;
const v4 = compile(policy, { format: "iptables" }).output!;
const v6 = compile(policy, { format: "ip6tables" }).output!;

/** A memory Io that counts how often standard input is read. */
function io(files: Record<string, string>) {
  let reads = 0;
  const m = memoryIo(files, {
    readStdin: () => {
      reads++;
      return files["-"] ?? "";
    },
  });
  return { m, reads: () => reads };
}

const two = (which: string) => `dockwall: standard input can be read only once, but ${which} both name it (-): give one of them as a file\n`;

test.each([
  [["diff", "-", "--live", "-"], two("the policy and --live")],
  [["diff", "p.dw", "--live", "-", "--live6", "-"], two("--live and --live6")],
  [["diff", "-", "--live", "-", "--live6", "-"], "dockwall: standard input can be read only once, but the policy, --live and --live6 all name it (-): give all but one of them as files\n"],
  [["compile", "-", "--diff", "--live", "-"], two("the policy and --live")],
])("dockwall %j: refused, exit 2, standard input not read", async (argv, message) => {
  const t = io({ "-": policy, "p.dw": policy });
  expect(await run(argv, t.m)).toBe(2);
  expect(t.m.err.join("")).toBe(message);
  expect(t.reads()).toBe(0);
  expect(t.m.out).toEqual([]);
});

test("one standard input is fine: the policy from stdin, the dumps from files, or the other way round", async () => {
  const t = io({ "-": policy, "live.v4": v4, "live.v6": v6 });
  expect(await run(["diff", "-", "--live", "live.v4", "--live6", "live.v6"], t.m)).toBe(0);
  expect(t.reads()).toBe(1);
  const u = io({ "-": v4, "p.dw": policy, "live.v6": v6 });
  expect(await run(["diff", "p.dw", "--live", "-", "--live6", "live.v6"], u.m)).toBe(0);
  expect(u.reads()).toBe(1);
});

test("--live6 alone: refused, exit 2, saying to give --live too", async () => {
  const t = io({ "p.dw": policy, "live.v6": v6 });
  expect(await run(["diff", "p.dw", "--live6", "live.v6"], t.m)).toBe(2);
  expect(t.m.err.join("")).toBe(
    "dockwall: --live6 gives only the IPv6 dump, and IPv4 would not be compared: give the IPv4 dump with --live FILE too, or neither option to compare with this host's live rules (iptables-save and ip6tables-save)\n",
  );
  expect(t.m.out).toEqual([]);
});

test("the header says which side is which, and where each family's live rules came from", async () => {
  const t = io({ "p.dw": policy, "live.v4": v4.replace(":FORWARD DROP", ":FORWARD ACCEPT"), "live.v6": v6.replace(":FORWARD DROP", ":FORWARD ACCEPT") });
  expect(await run(["diff", "p.dw", "--live", "live.v4", "--live6", "live.v6"], t.m)).toBe(1);
  const out = t.m.out.join("").split("\n");
  const header = out.findIndex((l) => l.startsWith("--- "));
  expect(out.slice(header, header + 2)).toEqual([
    "--- live: IPv4 from live.v4, IPv6 from live.v6 (lines marked - would be removed by loading the compiled rules)",
    "+++ compiled from p.dw (lines marked + would be added)",
  ]);
  const one = io({ "p.dw": policy, "-": v4.replace(":FORWARD DROP", ":FORWARD ACCEPT") });
  expect(await run(["diff", "p.dw", "--live", "-"], one.m)).toBe(1);
  expect(one.m.out.join("").split("\n").find((l) => l.startsWith("--- "))).toBe("--- live: IPv4 from standard input (lines marked - would be removed by loading the compiled rules)");
  const live = io({ "p.dw": policy });
  live.m.runProgram = (cmd) => (cmd === "iptables-save" ? v4.replace(":FORWARD DROP", ":FORWARD ACCEPT") : v6);
  expect(await run(["diff", "p.dw"], live.m)).toBe(1);
  // What loading changes in who reaches what comes first.
  const lines = live.m.out.join("").split("\n");
  expect(lines.slice(0, 2)).toEqual(["reachability (IPv4):", "+ open   lan 0.0.0.0/0 in eth1 -> web:8080/tcp (dnat)                allow lan to web:8080;   p.dw:4:1"]);
  expect(lines.find((l) => l.startsWith("--- "))).toBe("--- live: IPv4 from iptables-save, IPv6 from ip6tables-save (lines marked - would be removed by loading the compiled rules)");
});
