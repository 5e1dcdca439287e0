// Issue 22, item 4, on a real dockerd 20.10: `apply --confirm` of policy B over policy A, and
// while it waits db is removed, a new container (cache) takes db's address, listening on db's
// port but publishing nothing, and api starts. The confirmation times out. The rollback must
// go back to policy A for the containers that run now: from the wan, db's old published port
// must not lead to cache (IPv4; IPv6 straight to the containers' addresses), and api, started
// during the wait, must be reachable as A says. Judged with real connections from the lab's
// wan; the real command (bin/dockwall) and its detached rollback, in the lab's namespaces.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";
import { runAsync } from "../lab/proc.js";

const LAB_TIMEOUT = 120_000;
const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

/** The scenario, for dockerd with "iptables": false (dockwall writes Docker's chains) or true (dockerd does). */
function scenario(iptables: boolean) {
  // With iptables off, dockwall writes Docker's IPv6 chains too (as dockerd 20.10 with
  // --experimental --ip6tables would): published ports are DNAT'd over IPv6 as well. The lab's
  // dockerd itself runs with "ip6tables": false, so with iptables on there is no IPv6 NAT.
  const head = `docker { version auto; iptables ${iptables ? "on" : "off; ip6tables on"}; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
`;
  // api does not run when A is applied: a warning, its allow takes effect when it runs.
  const A = `${head}allow wan to web:8080, db:5432, api:9000;\n`;
  const B = `${head}allow wan to web:8080;\n`;

  describeDocker(`rollback of an unconfirmed apply after Docker's facts changed (dockerd "iptables": ${iptables})`, () => {
    let lab: Lab;
    let dir: string;
    const env = () => ({ DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state"), SSH_CONNECTION: undefined });
    const dockwall = (...args: string[]) => runAsync(["ip", "netns", "exec", lab.host.name, bin, ...args], { env: env() });
    const docker = async (...args: string[]) => {
      const r = await lab.docker(args);
      if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const reply = async (addr: string, port: number) => {
      const r = await lab.probe("wan", addr, port, "tcp", { timeout: 1 });
      return r.open ? `open: ${r.answeredBy}` : "closed";
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "dockwall-rollback-"));
      writeFileSync(join(dir, "a.dw"), A);
      writeFileSync(join(dir, "b.dw"), B);
      lab = await startLab({
        userlandProxy: false,
        ipv6: true,
        iptables,
        containers: [
          { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
          { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
        ],
      });
    }, LAB_TIMEOUT);
    afterAll(async () => {
      await lab?.stop();
      rmSync(dir, { recursive: true, force: true });
    }, LAB_TIMEOUT);

    it("the rollback goes back to A for the containers that run then: no way from the wan to cache at db's old address; api reachable as A says", async () => {
      const db = lab.containers.db!;
      const a = await dockwall("apply", join(dir, "a.dw"), "--docker");
      expect(a.status, a.stderr).toBe(0);
      expect(await reply(ADDR.hostWan, 5432)).toBe("open: db");
      if (!iptables) expect(await reply(ADDR.hostWan6, 5432)).toBe("open: db");
      expect(lab.save(4)).toContain(`--to-destination ${db.ip}:5432`);
      if (!iptables) expect(lab.save(6)).toContain(`--to-destination [${db.ip6}]:5432`);
      expect(await reply(ADDR.hostWan, 8080)).toBe("open: web");

      const applying = dockwall("apply", join(dir, "b.dw"), "--docker", "--confirm", "6");
      // While it waits: db goes, cache takes its address (listening on db's port, publishing
      // nothing), api starts and publishes 9000.
      await waitFor(() => existsSync(join(dir, "state", "pending.json")));
      expect(await reply(ADDR.hostWan, 5432)).toBe("closed");
      await docker("rm", "-f", "db");
      await docker("run", "-d", "--name", "cache", IMAGE_REF, "listen", "cache", "tcp:5432");
      await docker("run", "-d", "--name", "api", "-p", "9000:9000", IMAGE_REF, "listen", "api", "tcp:9000");
      expect(await docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "cache")).toBe(db.ip);
      const cache6 = await docker("inspect", "-f", "{{.NetworkSettings.GlobalIPv6Address}}", "cache");
      expect(cache6).toBe(db.ip6);
      // All of it within the wait (the apply still waits for confirmation).
      expect(existsSync(join(dir, "state", "pending.json"))).toBe(true);
      const r = await applying;

      // From the wan, db's old published port leads nowhere now (IPv4, and IPv6 where it was DNAT'd).
      expect.soft(await reply(ADDR.hostWan, 5432)).toBe("closed");
      if (!iptables) expect.soft(await reply(ADDR.hostWan6, 5432)).toBe("closed");
      // api, started during the wait: reachable as A says; web as before.
      expect.soft(await reply(ADDR.hostWan, 9000)).toBe("open: api");
      if (!iptables) expect.soft(await reply(ADDR.hostWan6, 9000)).toBe("open: api");
      expect.soft(await reply(ADDR.hostWan, 8080)).toBe("open: web");
      expect(r.stderr).toMatch(/dockwall: not confirmed in time: the rules of \S+a\.dw \(applied \S+\) are back in place, compiled again with Docker's facts as they are now \(read from dockerd\)\n$/);
      expect(r.status).toBe(3);
      // The kernel's rules: none leads to db's old address on db's port.
      expect(lab.save(4)).not.toContain(`--to-destination ${db.ip}:5432`);
      if (!iptables) expect(lab.save(6)).not.toContain(`--to-destination [${db.ip6}]:5432`);
      // And `dockwall diff` with A and the facts now finds nothing to change.
      const diff = await dockwall("diff", join(dir, "a.dw"), "--docker");
      expect(diff.stdout).toMatch(/no changes/);
      expect(diff.status).toBe(0);
    }, LAB_TIMEOUT);
  });
}

scenario(false);
scenario(true);

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (cond()) return;
    } catch {
      /* not there yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("timed out waiting");
}
