// Asks a running dockerd for its version (Docker Engine API, GET /version) over
// /var/run/docker.sock or DOCKER_HOST (unix:// or tcp://). Used by --docker-version auto.
import { request } from "node:http";

export class DockerApiError extends Error {}

export function engineEndpoint(env: NodeJS.ProcessEnv): { socketPath?: string; host?: string; port?: number; describe: string } {
  const h = env.DOCKER_HOST;
  if (!h) return { socketPath: "/var/run/docker.sock", describe: "unix:///var/run/docker.sock" };
  if (h.startsWith("unix://")) return { socketPath: h.slice("unix://".length), describe: h };
  const m = /^tcp:\/\/([^:/]+|\[[^\]]+\]):(\d+)\/?$/.exec(h);
  if (m) return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]), describe: h };
  throw new DockerApiError(`DOCKER_HOST=${h} is not supported (use unix:///path or tcp://host:port)`);
}

/** The Engine's version, e.g. "20.10.24" (a "+dfsg1" or "-ce" suffix removed). */
export function dockerVersion(env: NodeJS.ProcessEnv, timeoutMs = 3000): Promise<string> {
  const ep = engineEndpoint(env);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: ep.socketPath, host: ep.host, port: ep.port, path: "/version", method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
          const v = String((JSON.parse(body) as { Version?: unknown }).Version ?? "");
          const m = /^v?(\d+(?:\.\d+){0,2})/.exec(v);
          if (!m) throw new Error(`unexpected version '${v}'`);
          resolve(m[1]!);
        } catch (e) {
          reject(new DockerApiError(`dockerd at ${ep.describe} answered, but not with a version: ${(e as Error).message}`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("no answer within 3 s")));
    req.on("error", (e: NodeJS.ErrnoException) => {
      const why = e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "no dockerd is running there" : e.code === "EACCES" ? "permission denied (run as root or in the docker group)" : e.message;
      reject(new DockerApiError(`cannot ask dockerd for its version at ${ep.describe}: ${why}; give the version instead (--docker-version 28.5, or 'version' in the docker block)`));
    });
    req.end();
  });
}
