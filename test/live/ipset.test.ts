// What ipsets hold, read from `ipset save` for the evaluator (src/live/ipset.ts): Docker 28.0.0's FORWARD rules match its
// bridges' subnets in docker-ext-bridges-v4/-v6; without their members, every forwarded packet's answer was unknown.
import { describe, expect, it } from "vitest";
import { matchesIpsets, parseIpsetSave } from "../../src/live/ipset.js";
import { parseSave, toRuleset } from "../../src/live/save.js";

describe("parseIpsetSave", () => {
  it("sets of networks and addresses, by name, each member as a network; an empty one too", () => {
    const text = [
      "create docker-ext-bridges-v4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x8c2b6f2c",
      "add docker-ext-bridges-v4 172.17.0.0/16",
      "add docker-ext-bridges-v4 172.20.0.0/16",
      "create docker-ext-bridges-v6 hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1",
      "add docker-ext-bridges-v6 fd00:20::/64",
      "create banned hash:ip family inet hashsize 1024 maxelem 65536",
      "add banned 192.0.2.7 timeout 300",
      "create empty hash:net family inet",
      "",
    ].join("\n");
    expect(parseIpsetSave(text)).toEqual({ "docker-ext-bridges-v4": ["172.17.0.0/16", "172.20.0.0/16"], "docker-ext-bridges-v6": ["fd00:20::/64"], banned: ["192.0.2.7/32"], empty: [] });
  });
  it("a set of another type, or with an exception (nomatch), or a member not read: left out (its rules stay unknown)", () => {
    const text = ["create ports hash:ip,port family inet", "add ports 10.0.0.1,tcp:80", "create holes hash:net family inet", "add holes 10.0.0.0/8", "add holes 10.1.0.0/16 nomatch", "create odd hash:net family inet", "add odd nonsense"].join("\n");
    expect(parseIpsetSave(text)).toEqual({});
  });
  it("matchesIpsets: whether a rule of the set matches one", () => {
    const rs = (rule: string) => toRuleset(parseSave(`*filter\n:FORWARD DROP [0:0]\n${rule}\nCOMMIT\n`), 4);
    expect(matchesIpsets(rs("-A FORWARD -m set --match-set docker-ext-bridges-v4 dst -j DOCKER-FORWARD"))).toBe(true);
    expect(matchesIpsets(rs("-A FORWARD -d 10.0.0.0/8 -j ACCEPT"))).toBe(false);
    expect(matchesIpsets(undefined)).toBe(false);
  });
});
