import { it } from "vitest";
import { compile } from "../../src/compile.js";
import { planPolicyLab } from "../lab/policylab.js";
it("x", () => {
const text = `docker { version 29; iptables on; ip6tables on; userland-proxy off; firewall-backend nftables; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network bridge1 { bridge bridge1; subnet 192.0.2.0/24; subnet 2001:db8:1::/64; }
container c1 { network bridge1 192.0.2.2, 2001:db8:1::2; publish 8080:80; }
allow lan to c1:8080;
host { allow lan tcp 22; allow wan tcp 2222; }
`;
const r = compile(text, { format: "nft" });
console.log(r.ok, r.diagnostics.map(d=>d.message));
console.log(r.output);
const q = compile(text, { noRender: true, format: "nft" });
const plan = planPolicyLab(q.policy!);
console.log(JSON.stringify(plan, null, 1).slice(0, 3000), plan.probes.length);
});
