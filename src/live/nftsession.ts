// watch -f nft's loads of a delta through one `nft -i` kept running, instead of an `nft -f` per
// reconcile. Why: the kernel frees a deleted rule or element only after an RCU grace period, and
// every nfnetlink socket that closes waits for that (nf_tables' NETLINK_URELEASE handler flushes
// its destroy work): an `nft -f` that deletes the final drop of Docker's per-bridge chain to
// append it after a new container's accept took 15–22 ms at 2,000 containers, against 5 ms for
// appends alone, most of it in close(). A session's socket stays open; its deletes are freed in
// the background.
//
// nft -i reads a line at a time and runs each line as one transaction (the commands on it are
// joined by `;`): all of them or none. It prints nothing when a line succeeds and its errors on
// stderr. To know when a line is done and how it went, each is followed by a line that cannot
// parse (`dockwall-done-N`): nft's error for it, which echoes that line, ends the answer; any
// `Error:` before it is the transaction's. Anything unexpected (no answer in time, the process
// gone, text that does not fit) ends the session and rejects: the caller loads the whole file
// with nft -f, which replaces the tables whatever this one did.
export interface Interactive {
  pid: number | undefined;
  write: (text: string) => void;
  close: () => void;
}

/**
 * The session failed, not the transaction: nft -i did not answer in time, ended, answered what
 * does not fit, or the commands cannot go on one line. What it did is not known; the caller
 * loads the whole file (nft -f), which replaces the tables whatever it did.
 */
export class SessionFailed extends Error {}

/**
 * nft -i keeps every line it reads in its history (libedit: no limit), and writes it to
 * $HOME/.nft.history when its input ends: it is started without a home (SESSION_ENV), and
 * another is started once this many characters went through the one running.
 */
export const SESSION_BYTES = 1 << 20;
/** What nft -i is started with: no home, so no history file is read or written. */
export const SESSION_ENV = { HOME: "/proc/nonexistent" };

export interface SessionDeps {
  /** Starts `nft -i`; onErr gets its stderr as it comes, onExit once it is gone. */
  start: (onErr: (chunk: string) => void, onExit: (why: string) => void) => Interactive;
  /** Calls back after ms unless cancelled. */
  timer: (ms: number, f: () => void) => { cancel: () => void };
  timeoutMs?: number;
}

/** What can go to nft -i as one line: no line breaks or tabs (a tab is readline's completion), not too long. */
export function sessionLine(commands: string): string | undefined {
  const lines = commands.split("\n").filter((l) => l.trim() !== "");
  if (!lines.length || /[\t\r]/.test(commands) || commands.length > 65536) return undefined;
  // A command ending in a comment would swallow the next one.
  if (lines.some((l) => /#/.test(l.replace(/"[^"]*"/g, "")))) return undefined;
  return lines.join("; ");
}

/**
 * Reads nft -i's stderr: for each line sent, the text nft printed before the marker's own error.
 * Pure: feed it chunks, it returns each answer complete so far, in order.
 */
export class MarkerReader {
  private buf = "";
  constructor(private readonly markerOf: (n: number) => string) {}
  private next = 1;

  feed(chunk: string): { n: number; said: string }[] {
    this.buf += chunk;
    const out: { n: number; said: string }[] = [];
    for (;;) {
      const mark = this.markerOf(this.next);
      // The marker's error: `Error: …` then the line echoed, then a line of carets.
      const at = this.buf.indexOf(`\n${mark}\n`);
      if (at < 0) break;
      const end = this.buf.indexOf("\n", at + mark.length + 2);
      if (end < 0) break;
      const errorLine = this.buf.lastIndexOf("Error:", at);
      if (errorLine < 0) throw new Error(`nft -i answered the marker without an error: ${JSON.stringify(this.buf.slice(0, end))}`);
      out.push({ n: this.next++, said: this.buf.slice(0, errorLine) });
      this.buf = this.buf.slice(end + 1);
    }
    return out;
  }
}

/** One nft -i process and what waits on its answers. */
interface Running {
  proc: Interactive;
  reader: MarkerReader;
  sent: number;
  /** Characters sent to it (another is started past SESSION_BYTES). */
  bytes: number;
  waiting: Map<number, { resolve: (warnings: string) => void; reject: (e: Error) => void }>;
  /** Set once the process is gone. */
  gone: boolean;
  /** Called when it is gone. */
  onGone?: () => void;
}

export class NftSession {
  private cur?: Running;
  private readonly markerOf = (n: number) => `dockwall-done-${n}`;

  constructor(private readonly deps: SessionDeps) {}

  /** The pid of nft -i while it runs (its commits are the watcher's own, in nft monitor's reports). */
  get pid(): number | undefined {
    return this.cur?.proc.pid;
  }

  /**
   * Runs the commands (one per line) as one transaction. Resolves with what nft warned, if
   * anything; rejects with nft's error (nothing changed), or when the session fails (not
   * known: the caller loads the whole file).
   */
  run(commands: string): Promise<string> {
    const line = sessionLine(commands);
    if (line === undefined) return Promise.reject(new SessionFailed("these commands cannot be sent as one line"));
    const r = (this.cur ??= this.begin());
    const n = ++r.sent;
    r.bytes += line.length;
    const limit = this.deps.timeoutMs ?? 2000;
    return new Promise<string>((resolve, reject) => {
      const t = this.deps.timer(limit, () => this.end(r, `nft -i did not answer in ${limit} ms`));
      r.waiting.set(n, {
        resolve: (w) => {
          t.cancel();
          resolve(w);
        },
        reject: (e) => {
          t.cancel();
          reject(e);
        },
      });
      try {
        r.proc.write(`${line}\n${this.markerOf(n)}\n`);
      } catch (e) {
        this.end(r, `cannot write to nft -i: ${(e as Error).message}`);
      }
    });
  }

  close(): void {
    if (this.cur) this.end(this.cur, "closed");
  }

  private begin(): Running {
    const r: Running = { reader: new MarkerReader(this.markerOf), sent: 0, bytes: 0, waiting: new Map(), gone: false } as Running;
    r.proc = this.deps.start(
      (chunk) => {
        if (this.cur !== r) return;
        let answers: { n: number; said: string }[];
        try {
          answers = r.reader.feed(chunk);
        } catch (e) {
          return this.end(r, (e as Error).message);
        }
        for (const a of answers) {
          const w = r.waiting.get(a.n);
          r.waiting.delete(a.n);
          if (!w) continue;
          if (/^Error:/m.test(a.said)) w.reject(new Error(a.said.trim()));
          else w.resolve(a.said.trim());
        }
        // Its history grows with every line: another one next time, once this one is idle.
        if (r.bytes > SESSION_BYTES && r.waiting.size === 0) this.end(r, "renewed");
      },
      (why) => {
        r.gone = true;
        if (this.cur === r) this.end(r, `nft -i ended (${why})`);
        r.onGone?.();
      },
    );
    return r;
  }

  /**
   * Ends a session: what waits on it is told it is not known once nft -i is gone (a transaction
   * it still had could otherwise land after the whole file the caller loads instead), or a
   * second later; the next run starts another.
   */
  private end(r: Running, why: string): void {
    if (this.cur === r) this.cur = undefined;
    const waiting = [...r.waiting.values()];
    r.waiting.clear();
    let told = false;
    let t: { cancel: () => void } | undefined;
    const tell = () => {
      if (told) return;
      told = true;
      t?.cancel();
      for (const w of waiting) w.reject(new SessionFailed(why));
    };
    if (r.gone) return tell();
    t = waiting.length ? this.deps.timer(1000, tell) : undefined;
    r.onGone = tell;
    try {
      r.proc.close();
    } catch {
      tell();
    }
  }
}
