// `factsErrors: "warn"` (what dockwall watch compiles with): an error that only Docker's facts
// cause costs the allow target it concerns — a warning that says so, and that target admits
// nothing — while the rest of the policy compiles. compile/check/apply keep it an error, and
// errors in the policy's text stay errors. Pure: compile with facts from the corpus.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { memoryIo } from "../support/io.js";

const state = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const publishTcp = state("../facts/corpus/publish-tcp/state.json"); // web on docker0 at 172.17.0.2, 8080:80
const compose = state("../facts/compose/state.json"); // shop/web: shop_web_1 on 32770, shop_web_2 on 32771; web on 8080; …

const HEAD = `docker { version 20.10; iptables off; userland-proxy on; }\nzone lan { interface eth1; from 192.168.1.0/24; }\n`;

function compiled(policy: string, facts: string, warn: boolean) {
  const r = compile(policy, { format: "iptables", file: "p.dw", facts: { raw: JSON.parse(facts), source: "host.json" }, factsErrors: warn ? "warn" : undefined });
  const shown = formatDiagnostics(r.diagnostics, "p.dw", policy);
  return { ...r, shown, leftOut: formatDiagnostics(r.diagnostics.filter((d) => d.leftOut), "p.dw", policy) };
}

/** dockwall's own rules (DOCKER-USER, DOCKWALL-PROXY), in order. */
function owned(out: string): string[] {
  return out.split("\n").filter((l) => l.startsWith("-A DOCKER-USER") || l.startsWith("-A DOCKWALL-PROXY"));
}

describe("an allow that the facts of the moment break", () => {
  // Line 3: a port web does not publish (it did before a redeploy); line 4: the protocol it does not; line 5: good.
  const policy = HEAD + "allow lan to web:9090;\nallow lan to web:8080/udp;\nallow lan to web:8080;\n";

  test("compile and check: an error, nothing compiled", async () => {
    const r = compiled(policy, publishTcp, false);
    expect(r.ok).toBe(false);
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => `${d.code} ${d.span.line}:${d.span.col}`)).toEqual(["not-published 3:14", "not-published 4:14"]);
    const io = memoryIo({ "p.dw": policy, "host.json": publishTcp });
    expect(await run(["check", "p.dw", "--facts", "host.json"], io)).toBe(2);
    expect(io.err.join("")).toMatch(/^p\.dw:3:14: error: container 'web' does not publish port 9090\n/);
  });

  test("factsErrors warn: each is a warning that says what is left out; the rules are the policy's without them", () => {
    const r = compiled(policy, publishTcp, true);
    expect(r.ok, r.shown).toBe(true);
    expect(r.leftOut).toBe(
      "p.dw:3:14: warning: container 'web' does not publish port 9090; web:9090 is left out of this allow until it does (it admits nothing meanwhile)\n" +
        "3 | allow lan to web:9090;\n" +
        "  |              ^^^^^^^^\n" +
        "  = help: allow names host ports; 'web' publishes 8080/tcp\n" +
        "host.json: container 'web' (b50a5ada9129): note: what Docker publishes for it\n" +
        "p.dw:4:14: warning: container 'web' does not publish port 8080/udp; web:8080/udp is left out of this allow until it does (it admits nothing meanwhile)\n" +
        "4 | allow lan to web:8080/udp;\n" +
        "  |              ^^^^^^^^^^^^\n" +
        "  = help: 'web' publishes 8080/tcp: write web:8080/tcp\n" +
        "host.json: container 'web' (b50a5ada9129): note: what Docker publishes for it\n",
    );
    expect(r.policy!.allows.map((a) => a.targets.length)).toEqual([0, 0, 1]);
    // Admits nothing: the same rules as the policy without those two lines.
    const without = compiled(HEAD + "#\n#\nallow lan to web:8080;\n", publishTcp, false);
    expect(without.ok, without.shown).toBe(true);
    expect(r.output).toBe(without.output);
    expect(owned(r.output!).filter((l) => l.includes("192.168.1.0/24"))).toEqual([
      "-A DOCKER-USER -s 192.168.1.0/24 -d 172.17.0.2/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN",
      "-A DOCKWALL-PROXY -s 192.168.1.0/24 -i eth1 -p tcp -m tcp --dport 8080 -j RETURN",
    ]);
  });

  test("with only the broken allow: web's port falls to the catch-all rules (closed on every path)", () => {
    const r = compiled(HEAD + "allow lan to web:9090;\n", publishTcp, true);
    expect(r.ok, r.shown).toBe(true);
    expect(owned(r.output!)).toEqual([
      "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      "-A DOCKER-USER -i docker0 -j RETURN",
      "-A DOCKER-USER -m conntrack --ctstate DNAT --ctorigdst 127.0.0.0/8 -j DROP",
      "-A DOCKER-USER -o docker0 -j DROP",
      "-A DOCKER-USER -j RETURN",
      "-A DOCKWALL-PROXY -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
      "-A DOCKWALL-PROXY -i lo -j RETURN",
      "-A DOCKWALL-PROXY -i docker0 -j RETURN",
      "-A DOCKWALL-PROXY -p tcp -m tcp --dport 8080 -j DROP",
    ]);
  });

  test("a compose service whose replica lacks the port: only that replica's target is left out", () => {
    const p = HEAD + "allow lan to shop/web:32770;\n";
    expect(compiled(p, compose, false).ok).toBe(false);
    const r = compiled(p, compose, true);
    expect(r.ok, r.shown).toBe(true);
    expect(r.leftOut.split("\n")[0]).toBe("p.dw:3:14: warning: container 'shop_web_2' does not publish port 32770; shop_web_2:32770 is left out of this allow until it does (it admits nothing meanwhile)");
    expect(r.policy!.allows[0]!.targets.map((t) => t.value.container)).toEqual(["shop_web_1"]);
  });

  test("errors in the policy's text stay errors under warn", () => {
    const r = compiled(HEAD + "allow lan to web:9090;\nallow lna to web:8080;\n", publishTcp, true);
    expect(r.ok).toBe(false);
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => `${d.code} ${d.span.line}:${d.span.col}`)).toEqual(["unknown-name 4:7"]);
  });
});

describe("a declaration that Docker disagrees with", () => {
  // web is declared at 172.17.0.9; Docker has it at 172.17.0.2.
  const policy = HEAD + "container web { network bridge 172.17.0.9; publish 8080:80; }\nallow lan to web:8080;\n";

  test("compile: an error at the declaration", () => {
    const r = compiled(policy, publishTcp, false);
    expect(r.ok).toBe(false);
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => `${d.code} ${d.span.line}:${d.span.col}`)).toEqual(["facts-mismatch 3:17"]);
  });

  test("factsErrors warn: the rules follow what Docker has, and the allows that name it are left out", () => {
    const r = compiled(policy, publishTcp, true);
    expect(r.ok, r.shown).toBe(true);
    expect(r.leftOut).toBe(
      "p.dw:3:17: warning: container 'web' is declared on 'bridge 172.17.0.9', but Docker has it on 'bridge 172.17.0.2'; until they agree, the rules follow what Docker has, and the allows of 'web' are left out (they admit nothing)\n" +
        "3 | container web { network bridge 172.17.0.9; publish 8080:80; }\n" +
        "  |                 ^^^^^^^^^^^^^^^^^^^^^^^^^^\n" +
        "  = help: remove or correct the network lines, or leave them out and let the facts give them\n" +
        "host.json: container 'web' (b50a5ada9129): note: what Docker has\n" +
        "p.dw:4:14: warning: container 'web' is not as the policy declares it; web:8080 is left out of this allow until they agree (it admits nothing meanwhile)\n" +
        "4 | allow lan to web:8080;\n" +
        "  |              ^^^^^^^^\n" +
        "p.dw:3:17: note: declared here\n" +
        "3 | container web { network bridge 172.17.0.9; publish 8080:80; }\n" +
        "  |                 ^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
    );
    // The rules of Docker's web (DNAT to 172.17.0.2), and no allow: as if the policy had neither line.
    const without = compiled(HEAD + "#\n#\n", publishTcp, false);
    expect(r.output).toBe(without.output);
    expect(r.output).toContain("-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80");
  });

  test("a declared network that disagrees: the allows of its containers are left out", () => {
    const p = HEAD + "network bridge { bridge docker0; subnet 172.17.0.0/16; icc off; }\nallow lan to web:8080;\n";
    expect(compiled(p, publishTcp, false).ok).toBe(false);
    const r = compiled(p, publishTcp, true);
    expect(r.ok, r.shown).toBe(true);
    expect(r.diagnostics.filter((d) => d.leftOut).map((d) => `${d.code} ${d.span.line}:${d.span.col} ${d.message}`)).toEqual([
      "facts-mismatch 3:9 network 'bridge' is declared with icc off, but Docker has on; until they agree, the rules follow what Docker has, and the allows of its containers are left out (they admit nothing)",
      "facts-mismatch 4:14 container 'web' is on network 'bridge', which is not as the policy declares it; web:8080 is left out of this allow until they agree (it admits nothing meanwhile)",
    ]);
    expect(r.policy!.allows[0]!.targets).toEqual([]);
  });
});
