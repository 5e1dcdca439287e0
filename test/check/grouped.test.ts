// Many published ports that no allow names (issue 26: at 2,000 containers compile printed about
// 2,000 near-identical warnings): up to five are said one by one, more in one warning with a count.
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";

const policy = (n: number) =>
  `docker { version 20.10; userland-proxy off; }\nzone lan { interface eth1; }\n` +
  Array.from({ length: n }, (_, i) => `container c${i} { network bridge 172.17.0.${i + 2}; publish ${8000 + i}:80; }\n`).join("");

test("five: five warnings", () => {
  const w = compile(policy(5), { format: "iptables" }).diagnostics.filter((d) => d.code === "unreachable-port");
  expect(w.map((d) => d.message)).toEqual([0, 1, 2, 3, 4].map((i) => `no allow names c${i}:${8000 + i}/tcp, so it is unreachable from outside the host (published closed)`));
});

test("seven: one warning at the first, with the count and the first three", () => {
  const w = compile(policy(7), { format: "iptables" }).diagnostics.filter((d) => d.code === "unreachable-port");
  expect(w.map((d) => [d.message, d.span.line, d.help])).toEqual([
    [
      "no allow names 7 published ports, so they are unreachable from outside the host (published closed): c0:8000/tcp, c1:8001/tcp, c2:8002/tcp and 4 more",
      3,
      "add e.g. 'allow lan to c0:8000;', or set 'published open;' in the docker block for Docker's behaviour",
    ],
  ]);
});
