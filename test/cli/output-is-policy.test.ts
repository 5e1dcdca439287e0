// `-o` must never name the policy being compiled: by the same path, another spelling of it, a
// symlink to it or a hard link of it (the same device and inode), dockwall refuses, exits 2 and
// leaves the policy as it was.
import { spawnSync } from "node:child_process";
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { root } from "../support/policies.js";

const good = `docker { version 20.10; userland-proxy off; }\nzone lan { interface eth1; }\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\nallow lan to web:8080;\n`;

describe("compile -o naming the policy itself", () => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-self-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sh = (args: string[], input?: string) => spawnSync(join(root, "bin/dockwall"), args, { encoding: "utf8", cwd: dir, input });
  writeFileSync(join(dir, "p.dw"), good);
  mkdirSync(join(dir, "sub"));
  symlinkSync(join(dir, "p.dw"), join(dir, "sub/link.ferm"));
  linkSync(join(dir, "p.dw"), join(dir, "hard.ferm"));

  test.each([
    ["the same path", ["p.dw", "-o", "p.dw"]],
    ["another spelling of the path", ["p.dw", "-o", "./sub/../p.dw"]],
    ["an absolute path", ["p.dw", "-o", join(dir, "p.dw")]],
    ["a symlink to the policy", ["p.dw", "-o", "sub/link.ferm"]],
    ["a hard link of the policy", ["p.dw", "-o", "hard.ferm"]],
    ["the policy through a symlink", ["sub/link.ferm", "-o", "p.dw"]],
  ])("%s: refused, exit 2, the policy unchanged", (_what, args) => {
    const r = sh(["compile", ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^dockwall: -o \S+ is the policy file itself \(\S+\): writing the output there would overwrite the policy; name another output file, e.g\. -o \S+\n$/);
    expect(readFileSync(join(dir, "p.dw"), "utf8")).toBe(good);
    expect(r.stdout).toBe("");
  });

  test("the policy on standard input, redirected from the output file: refused", () => {
    const r = spawnSync("sh", ["-c", `"${join(root, "bin/dockwall")}" compile - -o p.dw < p.dw`], { encoding: "utf8", cwd: dir });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("is the policy file itself");
    expect(readFileSync(join(dir, "p.dw"), "utf8")).toBe(good);
  });

  test("another file is written as before", () => {
    const r = sh(["compile", "p.dw", "-o", "p.ferm"]);
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, "p.ferm"), "utf8")).toContain("domain ip");
  });
});
