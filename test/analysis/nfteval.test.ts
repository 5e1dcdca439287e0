import { it } from "vitest";
import { compile } from "../../src/compile.js";
import { planPolicyLab } from "../lab/policylab.js";
it("x", () => {
const text = `docker { version 29.7; iptables off; userland-proxy on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network app { bridge br-app; subnet 172.24.0.0/24; subnet fd00:24::/64; }
container web { network app 172.24.0.2, fd00:24::2; publish 8080:80; publish 8443:443; }
container db { network app 172.24.0.3, fd00:24::3; publish 127.0.0.1:5432:5432; }
allow lan to web:8080;
allow wan to web:8443;
forward lan to wan;
host { allow lan tcp 22; }
`;
const r = compile(text, { format: "nft" });
console.log(r.ok, r.diagnostics.map(d=>d.message));
console.log(r.output?.split("table inet dockwall {")[1]);
console.log(r.output?.match(/chain (nat-prerouting-and-output|raw-PREROUTING|nat-OUTPUT) \{[^}]*\}/g)?.join("\n"));
const q = compile(text, { noRender: true, format: "nft" });
const plan = planPolicyLab(q.policy!);
console.log(plan.probes.length, JSON.stringify(plan.hostListeners));
});
