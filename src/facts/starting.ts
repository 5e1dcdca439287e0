// A container that is starting, as the facts of a running one: so that `dockwall watch` has its
// rules in the kernel before its process runs, as Docker has its own.
//
// What dockerd does at `docker run` (seen on 20.10 here): the `create` event; then, at the
// start, it makes the container's endpoint on each network (the address is allocated, the port
// mapping and dockerd's own socket for each published port are set up) and sends a network
// `connect` event for it; about 200 ms later the process runs and the `start` event comes.
// Until then an inspection of the container waits (the start holds the container's lock), but
// the network's inspection names the endpoint and its addresses, and the container's files in
// Docker's data root (config.v2.json, hostconfig.json, written at create) say its name, labels,
// networks and the host ports it asked for. A port asked for without a host port (`-P`, `-p 80`)
// or with a range is only chosen then: such a container waits for its start event.
//
// Pure: the files and the network objects come from facts/engine.ts.

/** The network objects (GET /networks/NAME) of each network the container is configured for. */
export type NetworkObjects = Map<string, unknown>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Docker's container files: `config.v2.json` and `hostconfig.json` under DATA-ROOT/containers/ID/. */
export function containerFiles(dataRoot: string, id: string): { config: string; hostConfig: string } {
  const dir = `${dataRoot.replace(/\/+$/, "")}/containers/${id}`;
  return { config: `${dir}/config.v2.json`, hostConfig: `${dir}/hostconfig.json` };
}

/** The networks the container is configured for, by name (config.v2.json's NetworkSettings.Networks), or why they cannot be told. */
export function configuredNetworks(config: unknown): string[] | string {
  const nets = isObject(config) && isObject(config.NetworkSettings) ? config.NetworkSettings.Networks : undefined;
  if (!isObject(nets)) return "its config.v2.json names no networks";
  return Object.keys(nets);
}

/**
 * The inspect object of the container as it will run (the fields facts/read.ts reads), from
 * its files and its networks' objects; or why it cannot be told yet (a string): an endpoint not
 * made yet, a port Docker has not chosen yet, a network that is not a bridge.
 */
export function startingContainer(id: string, config: unknown, hostConfig: unknown, networks: NetworkObjects, startedAt: string): Record<string, unknown> | string {
  if (!isObject(config) || typeof config.Name !== "string") return "its config.v2.json has no Name";
  if (!isObject(hostConfig)) return "its hostconfig.json is not an object";
  const names = configuredNetworks(config);
  if (typeof names === "string") return names;
  if (names.length === 0) return "it is on no network";
  const endpoints: Record<string, unknown> = {};
  for (const name of names) {
    const net = networks.get(name);
    if (!isObject(net)) return `network '${name}' cannot be read`;
    if (net.Driver !== "bridge") return `network '${name}' is not a bridge network`;
    const ep = isObject(net.Containers) ? net.Containers[id] : undefined;
    if (!isObject(ep)) return `its endpoint on network '${name}' is not made yet`;
    const v4 = typeof ep.IPv4Address === "string" ? ep.IPv4Address.replace(/\/\d+$/, "") : "";
    if (!v4) return `its endpoint on network '${name}' has no IPv4 address yet`;
    endpoints[name] = {
      NetworkID: typeof net.Id === "string" ? net.Id : "",
      EndpointID: typeof ep.EndpointID === "string" ? ep.EndpointID : "",
      IPAddress: v4,
      GlobalIPv6Address: typeof ep.IPv6Address === "string" ? ep.IPv6Address.replace(/\/\d+$/, "") : "",
    };
  }
  if (hostConfig.PublishAllPorts === true) return "Docker chooses the host ports of -P (publish all) only as it starts";
  const asked = hostConfig.PortBindings ?? {};
  if (!isObject(asked)) return "its hostconfig.json's PortBindings is not an object";
  const ports: Record<string, unknown> = {};
  for (const [key, list] of Object.entries(asked)) {
    if (list === null) continue;
    if (!Array.isArray(list)) return `its PortBindings['${key}'] is not a list`;
    const bound: { HostIp: string; HostPort: string }[] = [];
    for (const b of list) {
      const hostPort = isObject(b) && typeof b.HostPort === "string" ? b.HostPort : "";
      if (!/^\d+$/.test(hostPort)) return `Docker chooses the host port of ${key} only as it starts (${hostPort ? `the range ${hostPort}` : "no host port asked for"})`;
      bound.push({ HostIp: isObject(b) && typeof b.HostIp === "string" ? b.HostIp : "", HostPort: hostPort });
    }
    ports[key] = bound;
  }
  const inner = isObject(config.Config) ? config.Config : {};
  return {
    Id: id,
    Name: config.Name,
    State: { Running: true, StartedAt: startedAt },
    Config: { Labels: isObject(inner.Labels) ? inner.Labels : {}, ExposedPorts: isObject(inner.ExposedPorts) ? inner.ExposedPorts : {} },
    HostConfig: { NetworkMode: typeof hostConfig.NetworkMode === "string" ? hostConfig.NetworkMode : "default", PortBindings: asked },
    NetworkSettings: { Networks: endpoints, Ports: ports },
  };
}
