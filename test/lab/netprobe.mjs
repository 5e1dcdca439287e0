// Listeners and probes for the policy lab (policylab.ts), run inside a network namespace with
// `nsenter --net=… node netprobe.mjs …`. Plain JavaScript: node runs it as it is.
//
//   node netprobe.mjs listen NAME tcp=80,443 udp=53 [bind=ADDR]
//     answers every TCP connection and UDP datagram with "NAME\n"; binds :: (IPv4 too)
//     unless bind= says where; prints "ready" once every port listens. Then it sends probes
//     from its namespace too: each line on standard input, { "id", "timeout", "probes": [...] },
//     is answered with a line { "id", "results": [...] } (a probe, as below, without a process
//     of its own: a lab sends hundreds).
//   node netprobe.mjs probe TIMEOUT_MS < [{ "src", "dst", "port", "sport"?, "proto" }, …]
//     all at once; prints one JSON array: { open, reply } per probe, in order. tcp and udp
//     from node's sockets (bound to src), icmp with busybox ping.
import net from "node:net";
import dgram from "node:dgram";
import { spawn } from "node:child_process";

const [mode, ...args] = process.argv.slice(2);

async function listen(name, specs) {
  const opts = Object.fromEntries(specs.map((s) => s.split("=")));
  const bind = opts.bind ?? "::";
  const ports = (k) => (opts[k] ? opts[k].split(",").filter(Boolean).map(Number) : []);
  const waits = [];
  for (const port of ports("tcp")) {
    const server = net.createServer((sock) => {
      sock.on("error", () => {});
      sock.end(`${name}\n`);
    });
    waits.push(new Promise((ok, fail) => server.once("error", fail).listen({ host: bind, port, ipv6Only: false }, ok)));
  }
  for (const port of ports("udp")) {
    const sock = dgram.createSocket({ type: bind.includes(".") ? "udp4" : "udp6", ipv6Only: false });
    sock.on("message", (_msg, from) => sock.send(`${name}\n`, from.port, from.address));
    waits.push(new Promise((ok, fail) => sock.once("error", fail).bind({ address: bind, port }, ok)));
  }
  await Promise.all(waits);
  process.stdout.write("ready\n");
  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.trim()) continue;
      const { id, timeout, probes } = JSON.parse(line);
      runProbes(probes, timeout).then((results) => process.stdout.write(JSON.stringify({ id, results }) + "\n"));
    }
  });
  // The lab ends a listener with SIGKILL; standard input closed (the lab gone) is no reason to stop answering connections.
  process.stdin.on("error", () => {});
}

/** A link-local source binds only with its interface named (the policy lab's neighbours: up0). */
function local(p) {
  return /^fe[89ab][0-9a-f]?:/i.test(p.src) && !p.src.includes("%") ? `${p.src}%${p.scope ?? "up0"}` : p.src;
}

function probeTcp(p, timeout) {
  return new Promise((done) => {
    let reply = "";
    const sock = net.connect({ host: p.dst, port: p.port, localAddress: local(p), ...(p.sport ? { localPort: p.sport } : {}) });
    const finish = (open) => {
      clearTimeout(timer);
      sock.destroy();
      done({ open, reply: reply.trim() });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on("data", (d) => {
      reply += d;
      if (reply.includes("\n")) finish(true);
    });
    sock.on("error", () => finish(false));
    sock.on("end", () => finish(reply.includes("\n")));
  });
}

function probeUdp(p, timeout) {
  return new Promise((done) => {
    const sock = dgram.createSocket(p.dst.includes(":") ? "udp6" : "udp4");
    const finish = (open, reply = "") => {
      clearTimeout(timer);
      try {
        sock.close();
      } catch {}
      done({ open, reply: reply.trim() });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on("message", (m) => finish(true, String(m)));
    sock.on("error", () => finish(false));
    sock.bind({ address: local(p), port: p.sport ?? 0 }, () => sock.send("ping\n", p.port, p.dst));
  });
}

function probeIcmp(p, timeout) {
  return new Promise((done) => {
    const argv = ["ping", ...(p.dst.includes(":") ? ["-6"] : ["-4"]), "-c", "1", "-W", String(Math.max(1, Math.ceil(timeout / 1000))), "-I", p.src, p.dst];
    const child = spawn("busybox", argv, { stdio: "ignore" });
    child.on("exit", (code) => done({ open: code === 0, reply: code === 0 ? "echo reply" : "" }));
    child.on("error", () => done({ open: false, reply: "" }));
  });
}

function runProbes(probes, timeout) {
  return Promise.all(probes.map((p) => (p.proto === "tcp" ? probeTcp(p, timeout) : p.proto === "udp" ? probeUdp(p, timeout) : probeIcmp(p, timeout))));
}

async function probe(timeout) {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  process.stdout.write(JSON.stringify(await runProbes(JSON.parse(input), timeout)) + "\n");
}

if (mode === "listen") {
  listen(args[0], args.slice(1)).catch((e) => {
    process.stderr.write(`listen: ${e.message}\n`);
    process.exit(1);
  });
} else if (mode === "probe") {
  probe(Number(args[0] ?? 800));
} else {
  process.stderr.write("usage: netprobe.mjs listen NAME tcp=P,… udp=P,… [bind=ADDR] | probe TIMEOUT_MS < probes.json\n");
  process.exit(2);
}
