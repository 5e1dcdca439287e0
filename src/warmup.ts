// Building the start-up snapshot (src/main.ts): run each command once, in memory, so that
// the snapshot holds every module loaded and set up, and the code of the common paths
// compiled. Nothing here touches the process's files, streams or arguments.
import { run, type Io } from "./cli.js";

/** A policy that takes every stage through its common paths (both families, every format). */
const SAMPLE = `docker { version 20.10; iptables off; ip6tables on; userland-proxy on; published closed; }
zone lan { interface eth1; from 192.168.0.0/16, fd00::/8; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80, 127.0.0.1:9000:9000, 53:53/udp; }
allow lan to web:8080, web:53/udp;
host { allow lan tcp 22; allow any icmp; }
`;

const LIVE = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -s 192.168.0.0/16 -p tcp -m tcp --dport 22 -m comment --comment "ssh" -j ACCEPT
COMMIT
`;

function memory(files: Record<string, string>, out: string[]): Io {
  return {
    stdout: (s) => void out.push(s),
    stderr: (s) => void out.push(s),
    readFile: (p) => {
      if (!(p in files)) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
      return files[p]!;
    },
    writeFile: () => {},
    readStdin: () => "",
    runProgram: () => {
      throw new Error("no programs while building the snapshot");
    },
    isTTY: false,
    stdoutIsTTY: false,
    dockerVersion: async () => "20.10.24",
    dockerFacts: async () => {
      throw new Error("no daemon while building the snapshot");
    },
    system: () => {
      throw new Error("no system while building the snapshot");
    },
    dockerEngine: () => {
      throw new Error("no daemon while building the snapshot");
    },
    onSignal: () => {},
  };
}

/**
 * A V8 snapshot cannot hold an ICU object, and string-width (yargs' help layout) makes an
 * Intl.Segmenter when it loads. While the snapshot is built, Intl.Segmenter makes stand-ins
 * that create the real segmenter on first use; before the heap is saved, they forget it.
 */
function lazySegmenters(): () => void {
  const Real = Intl.Segmenter;
  const made: { real?: Intl.Segmenter }[] = [];
  class Segmenter {
    real?: Intl.Segmenter;
    constructor(private readonly args: ConstructorParameters<typeof Intl.Segmenter>) {
      made.push(this);
    }
    segment(input: string): Intl.Segments {
      return (this.real ??= new Real(...this.args)).segment(input);
    }
    resolvedOptions(): Intl.ResolvedSegmenterOptions {
      return (this.real ??= new Real(...this.args)).resolvedOptions();
    }
  }
  const set = (v: unknown) => Object.defineProperty(Intl, "Segmenter", { value: v, writable: true, configurable: true });
  set(function (...args: ConstructorParameters<typeof Intl.Segmenter>) {
    return new Segmenter(args);
  });
  return () => {
    for (const s of made) s.real = undefined;
    set(Real);
  };
}

export async function warmUp(): Promise<void> {
  const restoreSegmenter = lazySegmenters();
  // yargs reads process.stdout.columns when it is first imported; a real stdout here would
  // be a native handle the snapshot cannot hold (and the build's terminal). dockwall sets
  // the width itself at run time (cli.ts), so yargs sees no terminal while it loads.
  const stdout = Object.getOwnPropertyDescriptor(process, "stdout")!;
  Object.defineProperty(process, "stdout", { value: { columns: undefined }, configurable: true, enumerable: stdout.enumerable });
  try {
    const files = { "sample.dw": SAMPLE, "live.v4": LIVE, "bad.dw": SAMPLE.replace("172.17.0.2", "172.17.0.300") };
    const runs: [string[], number][] = [
      [["--help"], 0],
      [["compile", "sample.dw"], 0],
      [["compile", "sample.dw", "-f", "iptables"], 0],
      [["compile", "sample.dw", "-f", "ip6tables"], 0],
      [["check", "bad.dw"], 2],
      [["diff", "sample.dw", "--live", "live.v4"], 1],
    ];
    for (const [args, expected] of runs) {
      const out: string[] = [];
      const code = await run(args, memory(files, out));
      if (code !== expected) throw new Error(`dockwall ${args.join(" ")} exited ${code}, not ${expected}, while building the snapshot:\n${out.join("")}`);
    }
  } finally {
    Object.defineProperty(process, "stdout", stdout);
    restoreSegmenter();
  }
}
