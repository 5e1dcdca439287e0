// The first connection a client makes to a container's published port right after
// `docker run -d` returns, as a user's health check or load balancer would (issue 26, item 2):
// how long until it is answered, and whether it stalled on the way. A connection that is
// refused (the container's server is not listening yet) is tried again after 5 ms, as Docker's
// own rules also need (the lab's containers answer an HTTP request with "tcp NAME CLIENT"); one that completes the handshake and is never answered (dockerd's socket
// holding the port, before a DNAT rule is in place) or is not answered within a second (a
// dropped SYN) is a stall, and tried again. The client runs in a namespace of the lab, started
// before `docker run`, and is told to go on its stdin.
import { spawn } from "node:child_process";

export interface FirstConnection {
  /** ms from the go to the first answer. */
  ms: number;
  /** Connections that completed the handshake and were not answered within 1 s. */
  hung: number;
  /** Connections with no handshake within 1 s (a dropped SYN). */
  dropped: number;
  reply: string;
}

const CLIENT = `
const net = require("node:net");
const [addr, port] = process.argv.slice(-2);
process.stdin.once("data", () => {
  const t0 = performance.now();
  let hung = 0, dropped = 0;
  const attempt = () => {
    if (performance.now() - t0 > 15000) { console.log(JSON.stringify({ error: "no answer within 15 s", hung, dropped })); process.exit(1); }
    let shook = false, reply = "";
    const s = net.connect({ host: addr, port: Number(port) });
    const timer = setTimeout(() => { shook ? hung++ : dropped++; s.destroy(); attempt(); }, 1000);
    s.on("connect", () => { shook = true; s.write("GET /cgi-bin/id HTTP/1.0\\r\\n\\r\\n"); });
    s.on("data", (d) => {
      reply += d;
      const m = /\\n(tcp \\S+ \\S+)\\r?\\n/.exec(reply);
      if (!m) return;
      reply = m[1];
      clearTimeout(timer);
      s.destroy();
      console.log(JSON.stringify({ ms: performance.now() - t0, hung, dropped, reply: reply.trim() }));
      process.exit(0);
    });
    s.on("error", () => { clearTimeout(timer); setTimeout(attempt, 5); });
  };
  attempt();
});
console.log("ready");
`;

/** A client in netns NS, ready to connect to ADDR:PORT when go() is called. */
export async function firstConnection(ns: string, addr: string, port: number): Promise<{ go: () => Promise<FirstConnection> }> {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", CLIENT, addr, String(port)], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", r));
  for (let i = 0; i < 200 && !out.includes("ready"); i++) await new Promise((r) => setTimeout(r, 10));
  if (!out.includes("ready")) throw new Error(`the client in ${ns} did not start: ${err}`);
  return {
    go: async () => {
      child.stdin!.write("go\n");
      const code = await exited;
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) throw new Error(`the first connection to ${addr}:${port} failed: ${line ?? err}`);
      return JSON.parse(line) as FirstConnection;
    },
  };
}
