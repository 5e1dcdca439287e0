// A fake Docker Engine API for the --docker and watch benchmarks (bench/engine.ts starts it):
//   node bench/fake-engine.mjs SOCKET ANSWERS.json
// answers GET PATH (an /v1.41-style prefix and a query string are ignored, but for GET
// /containers/json's `id` filter) with ANSWERS[PATH],
// a JSON object of path → answer, each serialized once at start, with dockerd 20.10's headers;
// 404 {"message": …} otherwise, as dockerd does. Prints "ready" once it listens; exits when
// its stdin closes (the bench ends or dies). Plain JavaScript: node runs it as it is.
//
// For `dockwall watch` (bench/live.ts) it also follows GET /events as dockerd does (200, then
// one JSON object per line, chunked, for as long as the client stays), and the bench changes
// its state through two requests of its own, which dockerd does not have:
//   POST /bench/start {"container": INSPECTED, "summary": LISTED}: the container runs from now
//     on (its inspection answered, first in GET /containers/json), and a `container start`
//     event goes to every open GET /events;
//   POST /bench/die {"id": ID}: it is gone (404 to its inspection, not listed), and a
//     `container die` event goes out.
// Each answers {"streams": N}: how many event streams the event was written to.
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

// GET /containers/json, kept as one serialized entry per container (newest first) once the
// bench starts changing it, and joined again after each change.
let listed;
function listedEntries() {
  if (!listed) listed = (answers.has("/containers/json") ? JSON.parse(answers.get("/containers/json").toString()) : []).map((s) => ({ id: s.Id, text: JSON.stringify(s) }));
  return listed;
}
const relist = () => answers.set("/containers/json", Buffer.from(`[${listed.map((s) => s.text).join(",")}]\n`));

/** The open GET /events answers. */
const streams = new Set();
function emit(action, c) {
  const nano = BigInt(Date.now()) * 1_000_000n;
  const attributes = { image: c.Config?.Image ?? "", name: String(c.Name ?? "").replace(/^\//, "") };
  const event = { status: action, id: c.Id, from: attributes.image, Type: "container", Action: action, Actor: { ID: c.Id, Attributes: attributes }, scope: "local", time: Number(nano / 1_000_000_000n), timeNano: Number(nano) };
  const line = JSON.stringify(event) + "\n";
  for (const res of streams) res.write(line);
  return streams.size;
}

function body(req) {
  return new Promise((ok, fail) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        ok(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (e) {
        fail(e);
      }
    });
    req.on("error", fail);
  });
}

function answer(res, status, value) {
  const b = Buffer.from(JSON.stringify(value) + "\n");
  res.writeHead(status, { ...headers, "Content-Length": b.length });
  res.end(b);
}

async function control(path, req, res) {
  const b = await body(req);
  const entries = listedEntries();
  if (path === "/bench/start") {
    const c = b.container;
    answers.set(`/containers/${c.Id}/json`, Buffer.from(JSON.stringify(c) + "\n"));
    const i = entries.findIndex((s) => s.id === c.Id);
    if (i >= 0) entries.splice(i, 1);
    entries.unshift({ id: c.Id, text: JSON.stringify(b.summary) });
    relist();
    answer(res, 200, { streams: emit("start", c) });
    return;
  }
  const key = `/containers/${b.id}/json`;
  const c = answers.has(key) ? JSON.parse(answers.get(key).toString()) : { Id: b.id };
  answers.delete(key);
  listed = entries.filter((s) => s.id !== b.id);
  relist();
  answer(res, 200, { streams: emit("die", c) });
}

/** The `id` filter of a request's `filters` query parameter, if it has one. */
function filterIds(url) {
  const f = new URL(url, "http://x").searchParams.get("filters");
  const id = f ? JSON.parse(f).id : undefined;
  return Array.isArray(id) ? id.map(String) : undefined;
}

const server = createServer((req, res) => {
  const path = (req.url ?? "").replace(/\?.*$/, "").replace(/^\/v\d+\.\d+(?=\/)/, "");
  if (req.method === "POST" && (path === "/bench/start" || path === "/bench/die")) {
    control(path, req, res).catch((e) => answer(res, 400, { message: String(e.message ?? e) }));
    return;
  }
  if (req.method === "GET" && path === "/events") {
    // dockerd sends the headers at once, then each event as it happens (chunked).
    res.writeHead(200, { ...headers });
    res.flushHeaders();
    streams.add(res);
    res.on("close", () => streams.delete(res));
    return;
  }
  // GET /containers/json?filters={"id":[…]} (dockwall watch after an event): the entries whose id starts with one of them, as dockerd.
  const ids = path === "/containers/json" ? filterIds(req.url ?? "") : undefined;
  if (req.method === "GET" && ids) {
    const b = Buffer.from(`[${listedEntries().filter((s) => ids.some((id) => s.id.startsWith(id))).map((s) => s.text).join(",")}]\n`);
    res.writeHead(200, { ...headers, "Content-Length": b.length });
    res.end(b);
    return;
  }
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
