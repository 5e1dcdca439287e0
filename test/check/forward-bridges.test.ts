// `forward` through a zone whose wildcard interface also takes the bridges dockerd names itself
// (br-<12 hex digits>, docker0) is refused (forward-docker-bridges); a wildcard that cannot take
// one is not, nor a network's own bridge name, which dockwall's rules already keep out of the
// forwards (a review: a network made later with a custom bridge name must not stop the policy
// compiling, under watch).
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";

const codes = (iface: string, extra = "") => {
  const r = compile(`docker { version 20.10; iptables on; userland-proxy off; }\nzone wan { interface eth0; }\nzone vms { interface ${iface}; }\n${extra}forward vms to wan;\n`, { format: "iptables" });
  return r.diagnostics.filter((d) => d.severity === "error").map((d) => d.code);
};

test("refused where the wildcard takes a bridge dockerd names itself, and nowhere else", () => {
  expect(["br+", "b+", "br-+", "br-0+", "br-0123456789a+", "docker+", "d+", "docker0+"].map((i) => [i, codes(i)])).toEqual(
    ["br+", "b+", "br-+", "br-0+", "br-0123456789a+", "docker+", "d+", "docker0+"].map((i) => [i, ["forward-docker-bridges"]]),
  );
  expect(["br-lan+", "br-vm+", "br0+", "vnet+", "eth+", "br-lan", "docker1+"].map((i) => [i, codes(i)])).toEqual(["br-lan+", "br-vm+", "br0+", "vnet+", "eth+", "br-lan", "docker1+"].map((i) => [i, []]));
  // A network with a bridge name of its own that the wildcard takes: its rules keep it out of the forward.
  expect(codes("vnet+", "network v { bridge vnet-docker; subnet 172.31.0.0/16; }\n")).toEqual([]);
});
