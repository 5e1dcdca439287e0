// ansible-test sanity on the collection (ansible/), offline, with this machine's Python.
//
// ansible-test must run from .../ansible_collections/<namespace>/<name>/, so the collection is
// copied to a temporary tree. Some sanity tests install their tools with pip into a virtualenv
// (ansible-test bootstraps pip from ci-files.testing.ansible.com, then PyPI): with no network they
// cannot run, and are skipped here by name, each with its reason. What two of them check is done
// below with the tools Debian's ansible-core installs: ansible-doc (the module's DOCUMENTATION,
// EXAMPLES, RETURN and the role's argument_specs parse) and the playbook's syntax.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeIf, type Support } from "../lab/kernel.js";
import { run, which } from "../lab/proc.js";

const root = new URL("../../", import.meta.url).pathname;

/** Sanity tests that need pip (and so the network) for their virtualenv. */
const NEEDS_PIP: Record<string, string> = {
  "ansible-doc": "its virtualenv needs pip (jinja2, pyyaml, packaging): done below with the system ansible-doc",
  import: "its virtualenv needs pip",
  pep8: "needs pycodestyle from PyPI",
  pylint: "needs pylint from PyPI",
  "runtime-metadata": "needs voluptuous from PyPI: meta/runtime.yml is read below",
  "validate-modules": "needs voluptuous and antsibull-docs-parser from PyPI",
  yamllint: "needs yamllint from PyPI",
};

// Skipped where ansible-core is not installed; required (a failure) under DOCKWALL_REQUIRE_KERNEL=1, as in CI.
const support = (): Support => (["ansible-test", "ansible-doc", "python3"].every((t) => which(t)) ? { ok: true } : { ok: false, reason: "ansible-test (apt-get install ansible-core) is not installed" });

describeIf(support, "ansible", "the Ansible collection dockwall.firewall", () => {
  let top: string;
  let coll: string;
  const env = () => ({ LC_ALL: "C.UTF-8", ANSIBLE_COLLECTIONS_PATH: top, ANSIBLE_LOCAL_TEMP: join(top, "tmp"), ANSIBLE_CONFIG: join(top, "none.cfg") });
  beforeAll(() => {
    top = mkdtempSync(join(tmpdir(), "dockwall-sanity-"));
    coll = join(top, "ansible_collections/dockwall/firewall");
    mkdirSync(join(top, "ansible_collections/dockwall"), { recursive: true });
    cpSync(join(root, "ansible"), coll, { recursive: true, filter: (src) => !src.includes("/tests/output") && !src.includes("__pycache__") });
  });
  afterAll(() => {
    if (top) rmSync(top, { recursive: true, force: true });
  });

  it("galaxy.yml: dockwall.firewall, MIT, the version of package.json", () => {
    const galaxy = readFileSync(join(coll, "galaxy.yml"), "utf8");
    const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
    expect(galaxy).toMatch(/^namespace: dockwall$/m);
    expect(galaxy).toMatch(/^name: firewall$/m);
    expect(galaxy).toMatch(new RegExp(`^version: ${version.replace(/\./g, "\\.")}$`, "m"));
    expect(galaxy).toMatch(/^license:\n  - MIT$/m);
    expect(readFileSync(join(coll, "meta/runtime.yml"), "utf8")).toMatch(/^requires_ansible: ">=2\.14\.0"$/m);
  });

  it("ansible-test sanity passes (every test that runs offline)", () => {
    const python = run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.trim();
    const skips = Object.keys(NEEDS_PIP).flatMap((t) => ["--skip-test", t]);
    const r = run(["sh", "-c", `cd '${coll}' && exec ansible-test sanity --python ${python} --color no ${skips.join(" ")}`], { env: env(), timeoutMs: 300_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // the tests that ran: at least these (a test that ansible-test skipped would not say "Running")
    for (const t of ["action-plugin-docs", "compile", "future-import-boilerplate", "metaclass-boilerplate", "shebang", "no-assert", "use-argspec-type-path", "line-endings"])
      expect(r.stdout + r.stderr).toContain(`Running sanity test "${t}"`);
  }, 300_000);

  it("ansible-doc reads the module's documentation and the role's argument_specs", () => {
    const m = run(["ansible-doc", "-t", "module", "--json", "dockwall.firewall.policy"], { env: env() });
    expect(m.status, m.stderr).toBe(0);
    const doc = (JSON.parse(m.stdout) as Record<string, { doc: { options: Record<string, unknown> }; examples: string; return: Record<string, unknown> }>)["dockwall.firewall.policy"]!;
    expect(Object.keys(doc.doc.options).sort()).toEqual(["confirm", "confirm_token", "content", "docker", "executable", "facts", "force", "format", "src", "state_dir"]);
    expect(doc.examples).toContain("dockwall.firewall.policy:");
    expect(Object.keys(doc.return)).toEqual(expect.arrayContaining(["changed", "families", "diff", "reachability", "pending", "diagnostics"]));
    const role = run(["ansible-doc", "-t", "role", "--json", "dockwall.firewall.host"], { env: env() });
    expect(role.status, role.stderr).toBe(0);
    expect(role.stdout).toContain("dockwall_policy_template");
  });

  it("the playbook and the role pass ansible-playbook --syntax-check", () => {
    const r = run(["ansible-playbook", "--syntax-check", "dockwall.firewall.fleet_report"], { env: env() });
    expect(r.status, r.stderr).toBe(0);
    const play = join(top, "role.yml");
    run(["sh", "-c", `printf '%s\\n' '- hosts: all' '  roles: [dockwall.firewall.host]' > '${play}'`]);
    const r2 = run(["ansible-playbook", "--syntax-check", play], { env: env() });
    expect(r2.status, r2.stderr).toBe(0);
  });
});
