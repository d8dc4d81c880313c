/**
 * Builds from the command line: listing builds (`strider builds`), and `strider shard`, which a
 * sharded job runs to pick its share of a list of test files. (Following a build:
 * `build_follow.ts`.)
 * @module
 */
import { BuildListSchema, shardShare, ShardTimingsSchema, validate } from "../protocol/mod.ts";
import { requestJson } from "./api_client.ts";
import { help, type Output, QUEEN_FLAGS, target } from "./client_commands.ts";
import { int, parseFlags, str, UsageError } from "./options.ts";
import type { Flags } from "./options.ts";

const BUILDS_FLAGS: Flags = {
  ...QUEEN_FLAGS,
  status: { type: "string", value: "S", help: "running or done" },
  limit: { type: "string", value: "N", help: "how many", default: "50" },
  json: { type: "boolean", help: "print JSON" },
};

/** `strider builds`: the newest builds, one a line. */
export async function builds(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, BUILDS_FLAGS);
  if (values.help) return help("strider builds [flags]", BUILDS_FLAGS, output);
  const api = await target(values);
  const query = new URLSearchParams({ limit: String(int(values, "limit", 1, 1000)) });
  const status = str(values, "status");
  if (status) query.set("status", status);
  const list = await requestJson(api, `/api/builds?${query}`, BuildListSchema);
  if (values.json) {
    output.out(JSON.stringify(list, null, 2) + "\n");
    return 0;
  }
  for (const b of list.builds) {
    output.out(
      [b.id, b.result ?? b.status, `${b.passed}/${b.jobs} passed`, b.branch ?? "-", b.repo]
        .join("\t") + "\n",
    );
  }
  return 0;
}

const SHARD_FLAGS: Flags = {
  index: {
    type: "string",
    value: "N",
    help: "this shard, from 0",
    env: "STRIDER_SHARD_INDEX",
  },
  total: { type: "string", value: "N", help: "how many shards", env: "STRIDER_SHARD_TOTAL" },
  timings: {
    type: "string",
    value: "JSON",
    help: "seconds per file from earlier runs (set by the queen)",
    env: "STRIDER_SHARD_TIMINGS",
  },
};

/**
 * `strider shard`: reads file names (one a line) on stdin and prints this shard's share. Every
 * shard of a build computes the same split, so together they cover each file exactly once.
 */
export async function shard(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, SHARD_FLAGS);
  if (values.help) {
    return help("ls tests/*.bats | strider shard [--index N --total N]", SHARD_FLAGS, output);
  }
  const total = int(values, "total", 1, 10_000) ?? 1;
  const index = int(values, "index", 0, total - 1) ?? 0;
  let timings = {};
  const text = str(values, "timings");
  if (text) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError('--timings (STRIDER_SHARD_TIMINGS) must be JSON: {"file": seconds}');
    }
    const checked = validate(ShardTimingsSchema, parsed);
    if (!checked.ok) throw new UsageError(`--timings is not {"file": seconds}: ${checked.error}`);
    timings = checked.value;
  }
  const input = await new Response(Deno.stdin.readable).text();
  const files = input.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.trim());
  for (const file of shardShare(files, index, total, timings)) output.out(`${file}\n`);
  return 0;
}
