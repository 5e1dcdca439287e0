// Facts from a real dockerd: for every docker-corpus scenario, a policy with only its docker
// block, compiled with the scenario's state.json (docker network inspect + docker inspect of a
// real dockerd 20.10), gives exactly what that dockerd wrote — rule for rule, in order, with
// the br-<id> bridge names as captured. And it agrees with the parity fixture, whose policy
// spells every network, container and port out by hand.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { parseFactsText, type RawFacts } from "../../src/facts/read.js";
import { forwardDropped, parseSave } from "../support/save.js";

const root = new URL(".", import.meta.url).pathname;
const parity = new URL("../parity/corpus/", import.meta.url).pathname;
const scenarios = readdirSync(join(root, "corpus")).sort();

/** Scenarios where dockwall writes something else than dockerd on purpose (their parity notes say why): compared with the parity fixture. */
const onPurpose: Record<string, string> = {
  "ip-forward-preset": "FORWARD's policy: dockwall writes DROP whatever ip_forward was (parity notes)",
  "iptables-off": "dockerd ran with --iptables=false and wrote nothing; dockwall writes what it would have",
  ipv6: "IPv6 with ip6tables off: dockerd wrote no IPv6 rules; dockwall owns FORWARD and lets the bridge's traffic through under DROP (parity notes)",
};

export function loadFacts(dir: string): RawFacts {
  const raw = parseFactsText(readFileSync(join(dir, "state.json"), "utf8"));
  if (typeof raw === "string") throw new Error(raw);
  return raw;
}

/** Rules as iptables-save prints them, table by table, without the counters. */
function rules(text: string): string[] {
  return text.split("\n").filter((l) => l.startsWith("-A ") || l.startsWith(":") || l.startsWith("*")).map((l) => l.replace(/ \[\d+:\d+\]$/, ""));
}

test("every docker-corpus scenario with a state.json is a fixture", () => {
  expect(scenarios.length).toBe(19);
});

describe.each(scenarios)("corpus/%s", (name) => {
  const dir = join(root, "corpus", name);
  const text = readFileSync(join(dir, "policy.dw"), "utf8");
  const facts = { raw: loadFacts(dir), source: `${name}/state.json` };
  for (const [format, file] of [["iptables", "iptables.v4"], ["ip6tables", "iptables.v6"]] as const) {
    test(`${format}: what dockerd wrote, in order`, () => {
      const r = compile(text, { format, file: "policy.dw", facts });
      expect(r.ok, formatDiagnostics(r.diagnostics, "policy.dw", text)).toBe(true);
      expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
      if (onPurpose[name]) {
        const expected = join(parity, name, format === "iptables" ? "expected.v4" : "expected.v6");
        const want = parseSave(existsSync(expected) ? readFileSync(expected, "utf8") : "");
        expect(parseSave(r.output!)).toEqual(format === "iptables" ? want : forwardDropped(want));
      } else if (format === "iptables") {
        expect(rules(r.output!)).toEqual(rules(readFileSync(join(dir, file), "utf8")));
      } else {
        // IPv6: dockwall owns FORWARD in both families (policy DROP), where dockerd left it ACCEPT.
        expect(parseSave(r.output!)).toEqual(forwardDropped(parseSave(readFileSync(join(dir, file), "utf8"))));
      }
    });
  }
  test("the same rules as the parity policy that spells everything out", () => {
    const spelled = readFileSync(join(parity, name, "policy.dw"), "utf8");
    const bridges = new Map<string, string>();
    for (const n of facts.raw.networks as { Name: string; Id: string; Options?: Record<string, string> }[]) {
      if (!n.Options?.["com.docker.network.bridge.name"]) bridges.set(`br-${n.Name}`, `br-${n.Id.slice(0, 12)}`);
    }
    // The parity policy names user bridges br-NETWORK (the corpus' *.norm form).
    const mapped = spelled.replace(/\bbr-[A-Za-z0-9_.-]+/g, (b) => bridges.get(b) ?? b);
    for (const format of ["iptables", "ip6tables"] as const) {
      const withFacts = compile(text, { format, facts });
      const byHand = compile(mapped, { format });
      expect(byHand.ok, formatDiagnostics(byHand.diagnostics, "policy.dw", mapped)).toBe(true);
      expect(parseSave(withFacts.output!)).toEqual(parseSave(byHand.output!));
    }
  });
});
