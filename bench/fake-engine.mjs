// A fake Docker Engine API for the --docker benchmark (bench/engine.ts starts it):
//   node bench/fake-engine.mjs SOCKET ANSWERS.json
// answers GET PATH (an /v1.41-style prefix and a query string are ignored) with ANSWERS[PATH],
// a JSON object of path → answer, each serialized once at start, with dockerd 20.10's headers;
// 404 {"message": …} otherwise, as dockerd does. Prints "ready" once it listens; exits when
// its stdin closes (the bench ends or dies). Plain JavaScript: node runs it as it is.
import { createServer } from "node:http";
import { readFileSync, rmSync } from "node:fs";

const [socket, file] = process.argv.slice(2);
const answers = new Map(Object.entries(JSON.parse(readFileSync(file, "utf8"))).map(([path, v]) => [path, Buffer.from(JSON.stringify(v) + "\n")]));
const version = answers.has("/version") ? JSON.parse(answers.get("/version").toString()) : {};
const headers = {
  "Api-Version": version.ApiVersion ?? "1.41",
  "Content-Type": "application/json",
  "Docker-Experimental": "false",
  Ostype: "linux",
  Server: `Docker/${version.Version ?? "20.10.24"} (linux)`,
};

const server = createServer((req, res) => {
  const path = (req.url ?? "").replace(/\?.*$/, "").replace(/^\/v\d+\.\d+(?=\/)/, "");
  const body = req.method === "GET" ? answers.get(path) : undefined;
  if (body) {
    res.writeHead(200, { ...headers, "Content-Length": body.length });
    res.end(body);
    return;
  }
  const id = /^\/containers\/([^/]+)\/json$/.exec(path)?.[1];
  const missing = Buffer.from(JSON.stringify({ message: id ? `No such container: ${decodeURIComponent(id)}` : "page not found" }) + "\n");
  res.writeHead(404, { ...headers, "Content-Length": missing.length });
  res.end(missing);
});
rmSync(socket, { force: true });
server.listen(socket, () => process.stdout.write("ready\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
