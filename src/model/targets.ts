// Stage "resolve targets": what each allow's written targets name, as one container's host
// port(s) each. `web:8080` is itself; `web` is every port web publishes; `shop/web[:8080]` is
// every running replica of compose service web of project shop. A name that nothing has is an
// error without Docker's facts and a warning with them (the allow takes effect when such a
// container runs).
import { suggestion, closest, type Problems, type Span } from "../diagnostics.js";
import type { AllowRule, Container, Located, Policy } from "./types.js";
import type { TargetRef, TargetSpec } from "./values.js";
import { isLoopback } from "./derive.js";

function portsOf(c: Container, ref: TargetRef, span: Span): Located<TargetSpec>[] {
  if (ref.ports) return [{ value: ref.proto ? { container: c.name, ports: ref.ports, proto: ref.proto } : { container: c.name, ports: ref.ports }, span }];
  // Every port it publishes where a client outside the host can reach it: one bound to a
  // loopback address is the host's own (and dockwall closes the routing leak to it).
  return c.publishes.filter((p) => !p.spec.hostIp || !isLoopback(p.spec.hostIp)).map((p) => ({ value: { container: c.name, ports: p.spec.host, proto: p.spec.proto }, span }));
}

function unknownContainer(p: Policy, byName: Map<string, Container>, problems: Problems, name: string, span: Span): void {
  const at = { ...span, endCol: span.col + name.length };
  const names = [...byName.keys()];
  const near = closest(name, names);
  const target = near ? byName.get(near) : undefined;
  const notes = target && !target.span.docker ? [{ message: `'${near}' is declared here`, span: target.span }] : [];
  if (!p.withFacts) {
    // Most often a policy written for Docker's facts, compiled without them.
    const help = near ? suggestion(name, names, "container") : `the containers dockerd runs come with --docker (or --facts FILE); without them, declare it: container ${name} { network NET ADDR; publish …; }`;
    problems.error("unknown-name", at, `unknown container '${name}'`, { help, notes });
    return;
  }
  const unbridged = p.withFacts.unbridged.includes(name);
  problems.warning("not-running", at, unbridged ? `container '${name}' runs on no bridge network (host or none networking): this allow opens nothing` : `no running container is called '${name}': this allow takes effect when one runs`, {
    help: unbridged ? undefined : near ? `did you mean '${near}'?` : `running containers (${p.withFacts.source}): ${names.slice(0, 8).join(", ") || "none"}${names.length > 8 ? ", …" : ""}`,
  });
}

export function resolveTargets(p: Policy, problems: Problems): void {
  const byName = new Map<string, Container>();
  for (const c of p.containers) if (!byName.has(c.name)) byName.set(c.name, c);
  let byService: Map<string, Container[]> | undefined;
  const replicas = (project: string, service: string): Container[] => {
    if (!byService) {
      byService = new Map();
      for (const c of p.containers) {
        if (!c.compose) continue;
        const k = `${c.compose.project}/${c.compose.service}`;
        const l = byService.get(k);
        if (l) l.push(c);
        else byService.set(k, [c]);
      }
    }
    return byService.get(`${project}/${service}`) ?? [];
  };
  for (let i = 0; i < p.allows.length; i++) {
    const a: AllowRule = p.allows[i]!;
    const out: Located<TargetSpec>[] = [];
    for (let k = 0; k < a.written.length; k++) {
      const w = a.written[k]!;
      const ref = w.value;
      if (ref.service) {
        const { project, service } = ref.service;
        if (!p.withFacts) {
          problems.error("needs-facts", w.span, `'${ref.name}' names a compose service, whose containers only Docker knows`, {
            help: `compile with Docker's facts: --docker (ask the daemon) or --facts FILE (saved with 'dockwall facts')`,
          });
          continue;
        }
        const cs = replicas(project, service);
        if (cs.length === 0) {
          const known = [...new Set(p.containers.filter((c) => c.compose).map((c) => `${c.compose!.project}/${c.compose!.service}`))];
          problems.warning("not-running", w.span, `no running container belongs to compose service '${service}' of project '${project}': this allow takes effect when one runs`, {
            help: known.length ? suggestion(ref.name, known, "compose service").replace(/^declared/, "running") : `no compose project runs (${p.withFacts.source})`,
          });
          continue;
        }
        for (const c of cs) out.push(...portsOf(c, ref, w.span));
        continue;
      }
      const c = byName.get(ref.name);
      if (!c) {
        unknownContainer(p, byName, problems, ref.name, w.span);
        continue;
      }
      if (!ref.ports && c.publishes.length === 0) {
        problems.warning("nothing-published", w.span, `container '${c.name}' publishes no port: this allow opens nothing`, {
          help: p.withFacts ? `publish a port (docker run -p HOSTPORT:PORT), or remove this target` : `add 'publish HOSTPORT:CONTAINERPORT;' to it, or remove this target`,
        });
        continue;
      }
      out.push(...portsOf(c, ref, w.span));
    }
    a.targets = out.slice();
  }
}
