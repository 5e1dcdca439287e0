// --docker-version auto: the Engine API client against fake dockerds, and the CLI using it.
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { dockerVersion, engineEndpoint } from "../../src/facts/engine.js";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";

describe("the Engine API client", () => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-api-"));
  const sock = join(dir, "docker.sock");
  let unix: Server;
  let tcp: Server;
  let port = 0;
  beforeAll(async () => {
    const handler = (version: string) => (req: { url?: string }, res: { statusCode: number; end: (s: string) => void }) => {
      if (req.url !== "/version") {
        res.statusCode = 404;
        return res.end("{}");
      }
      res.end(JSON.stringify({ Version: version, ApiVersion: "1.41" }));
    };
    unix = createServer(handler("20.10.24+dfsg1"));
    await new Promise<void>((r) => unix.listen(sock, r));
    tcp = createServer(handler("28.5.2"));
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
    port = (tcp.address() as { port: number }).port;
  });
  afterAll(() => {
    unix?.close();
    tcp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("over a unix socket (DOCKER_HOST=unix://…), distribution suffix removed", async () => {
    expect(await dockerVersion({ DOCKER_HOST: `unix://${sock}` })).toBe("20.10.24");
  });

  test("over tcp", async () => {
    expect(await dockerVersion({ DOCKER_HOST: `tcp://127.0.0.1:${port}` })).toBe("28.5.2");
  });

  test("default endpoint is /var/run/docker.sock", () => {
    expect(engineEndpoint({}).socketPath).toBe("/var/run/docker.sock");
  });

  test("no dockerd: a clear error", async () => {
    await expect(dockerVersion({ DOCKER_HOST: `unix://${dir}/none.sock` })).rejects.toThrow(/no dockerd is listening there .*; give the version instead/);
    expect(() => engineEndpoint({ DOCKER_HOST: "ssh://host" })).toThrow(/not supported/);
  });
});

describe("dockwall compile --docker-version", () => {
  const policy = `docker { iptables off; userland-proxy off; published open; }\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\n`;

  test("auto: the running dockerd's release picks the layout, and no 'no version' warning", async () => {
    const io = memoryIo({ "p.dw": policy }, { dockerVersion: async () => "28.5.2" });
    expect(await run(["compile", "p.dw", "-f", "iptables", "--docker-version", "auto"], io)).toBe(0);
    expect(io.out.join("")).toContain("# Docker 28.5.2, iptables off");
    expect(io.out.join("")).toContain(":DOCKER-FORWARD - [0:0]");
    expect(io.err.join("")).toBe("");
  });

  test("an explicit release overrides the policy's version", async () => {
    const io = memoryIo({ "p.dw": policy.replace("docker {", "docker { version 20.10;") });
    expect(await run(["compile", "p.dw", "-f", "iptables", "--docker-version", "29"], io)).toBe(0);
    expect(io.out.join("")).toContain(":DOCKER-INTERNAL - [0:0]");
  });

  test("auto with no dockerd running: exit 2 and why", async () => {
    const io = memoryIo({ "p.dw": policy });
    expect(await run(["compile", "p.dw", "--docker-version", "auto"], io)).toBe(2);
    expect(io.err.join("")).toMatch(/^dockwall: cannot ask dockerd for its version at unix:\/\/\/var\/run\/docker.sock: no dockerd is running there/);
    expect(io.out).toEqual([]);
  });

  test("a release no layout covers: the error names --docker-version, not the policy's version line", async () => {
    const io = memoryIo({ "p.dw": policy.replace("docker {", "docker { version 20.10;") });
    expect(await run(["compile", "p.dw", "--docker-version", "99"], io)).toBe(2);
    expect(io.err.join("")).toBe(
      "dockwall: --docker-version 99: error: Docker 99 is not supported\n" +
        "  = help: dockwall knows the chain layouts of dockerd 20.10 – 26.1, 27.0 – 27.5, 28.0.0, 28.0.1 – 28.5, 29.0 – 29.7\n" +
        "dockwall: 1 error; nothing was written\n",
    );
  });

  test("auto: a release the daemon gives that is newer than any dockwall knows is a warning naming --docker-version auto", async () => {
    const io = memoryIo({ "p.dw": policy }, { dockerVersion: async () => "29.9.1" });
    expect(await run(["check", "p.dw", "--docker-version", "auto"], io)).toBe(0);
    expect(io.err.join("")).toMatch(/^dockwall: --docker-version auto \(the running dockerd's 29\.9\.1\): warning: Docker 29\.9\.1 is newer than the newest release dockwall knows \(29\.7\.2\); reproducing 29\.7\.2's chains\n/);
  });

  test("a major Docker never released, given as --docker-version: the error and its help speak of the option", async () => {
    const io = memoryIo({ "p.dw": policy });
    expect(await run(["check", "p.dw", "--docker-version", "22"], io)).toBe(2);
    expect(io.err.join("")).toBe(
      "dockwall: --docker-version 22: error: there was no Docker 22: after 20.10 came 23.0\n" +
        "  = help: give the release this host runs ('dockerd --version' tells), e.g. --docker-version 20.10 or --docker-version 23.0\n" +
        "dockwall: 1 error\n",
    );
  });

  test("nonsense is refused", async () => {
    const io = memoryIo({ "p.dw": policy });
    expect(await run(["compile", "p.dw", "--docker-version", "latest"], io)).toBe(2);
    expect(io.err.join("")).toBe("dockwall: --docker-version takes 'auto' or a version like 28.5, not 'latest'\n");
  });
});
