// The interfaces covered-allow tries an allow on: one of each kind the zones' interfaces tell apart.
import { expect, test } from "vitest";
import { interfaceKinds } from "../../src/policy/interfaces.js";

test("a wildcard's stand-in is never an interface a zone names, nor one a longer wildcard takes", () => {
  expect(interfaceKinds(["eth0", "eth+"])).toEqual(["eth0", "eth1", "dwnone0"]);
  expect(interfaceKinds(["eth+", "eth0+"])).toEqual(["eth1", "eth00", "dwnone0"]);
  expect(interfaceKinds(["eth+", ...[..."0123456789"].map((d) => `eth${d}+`)])[0]).toBe("etha");
  // Past names the zones name (wg0 to wg9): a letter.
  expect(interfaceKinds(["wg+", ...[..."0123456789"].map((d) => `wg${d}`)])).toContain("wga");
});

test("the interface no zone names is one no wildcard takes either", () => {
  expect(interfaceKinds(["eth0"])).toEqual(["eth0", "dwnone0"]);
  const kinds = interfaceKinds(["eth0", "dw+"]);
  expect(kinds.slice(0, 2)).toEqual(["eth0", "dw0"]);
  expect(kinds).toHaveLength(3);
  expect(kinds[2]!.startsWith("dw")).toBe(false);
  expect(kinds[2]).not.toBe("eth0");
  expect(interfaceKinds(["d+"]).at(-1)!.startsWith("d")).toBe(false);
});

test("a kind no name can be of has no stand-in: a 15-character stem that a zone names whole", () => {
  expect(interfaceKinds(["abcdefghijklmno", "abcdefghijklmno+"])).toEqual(["abcdefghijklmno", "dwnone0"]);
});
