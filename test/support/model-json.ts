// The model as stable, readable JSON for golden files: spans as "line:col-line:col",
// addresses printed, bigints as strings.
import { parse } from "../../src/parse.js";
import { buildModel } from "../../src/model/build.js";
import { formatIp } from "../../src/model/values.js";

function replacer(this: unknown, key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if ("line" in v && "col" in v && "endLine" in v && "endCol" in v) return `${v.line}:${v.col}-${v.endLine}:${v.endCol}`;
    if ("family" in v && typeof v.value === "bigint") {
      const ip = formatIp({ family: v.family as 4 | 6, value: v.value });
      return "prefix" in v ? `${ip}/${v.prefix}` : ip;
    }
    if ("family" in v && typeof v.from === "bigint" && typeof v.to === "bigint") {
      return `${formatIp({ family: v.family as 4 | 6, value: v.from })}-${formatIp({ family: v.family as 4 | 6, value: v.to })}`;
    }
  }
  return value;
}

export function modelJson(text: string): string {
  const parsed = parse(text);
  if (!parsed.statements) return "null\n";
  const { policy } = buildModel(parsed.statements);
  return JSON.stringify(policy, replacer, 2) + "\n";
}
