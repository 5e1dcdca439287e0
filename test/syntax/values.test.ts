// Value parsers: `publish` specs take a one-pass path for plain `HOST:CONTAINER[/proto]` and
// the careful path for the rest; both must agree on what a spec means and on every error.
import { expect, test } from "vitest";
import { isError, parsePublish, type PublishSpec, type ValueError } from "../../src/model/values.js";

const port = (from: number, to = from) => ({ from, to });
const spec = (host: number | [number, number], container: number | [number, number], proto: "tcp" | "udp" = "tcp", hostIp?: PublishSpec["hostIp"]): PublishSpec => ({
  hostIp,
  host: typeof host === "number" ? port(host) : port(...host),
  container: typeof container === "number" ? port(container) : port(...container),
  proto,
});

test.each<[string, PublishSpec]>([
  ["8080:80", spec(8080, 80)],
  ["8080:80/tcp", spec(8080, 80)],
  ["5353:53/udp", spec(5353, 53, "udp")],
  ["1:65535", spec(1, 65535)],
  ["080:80", spec(80, 80)],
  ["8000-8002:80-82", spec([8000, 8002], [80, 82])],
  ["127.0.0.1:9000:9000", spec(9000, 9000, "tcp", { family: 4, value: 0x7f000001n })],
  ["[::1]:53:53/udp", spec(53, 53, "udp", { family: 6, value: 1n })],
])("%s means what docker run -p means", (text, want) => {
  expect(parsePublish(text)).toStrictEqual(want);
});

test.each<[string, Partial<ValueError>]>([
  ["0:80", { error: "port 0 is out of range", offset: 0, length: 1 }],
  ["65536:80", { error: "port 65536 is out of range", offset: 0, length: 5 }],
  ["123456:80", { error: "port 123456 is out of range", offset: 0, length: 6 }],
  ["8080:0", { error: "port 0 is out of range", offset: 5, length: 1 }],
  ["8080:", { error: "'' is not a port number", offset: 5, length: 1 }],
  [":80", { error: "'' is not a port number", offset: 0, length: 1 }],
  ["8080:80/", { error: "unknown protocol ''", offset: 8, length: 1 }],
  ["8080:80/sctp", { error: "unknown protocol 'sctp'", offset: 8, length: 4 }],
  ["8080:8o", { error: "'8o' is not a port number", offset: 5, length: 2 }],
  ["80", { error: "'80' is not a publish spec", offset: 0, length: 2 }],
])("%s is refused where it is wrong", (text, want) => {
  const got = parsePublish(text);
  expect(isError(got)).toBe(true);
  expect(got).toMatchObject(want);
});
