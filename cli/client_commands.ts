/**
 * `strider submit | jobs | drones | logs | retry | cancel`: clients of the queen's HTTP API.
 */
import { isAbsolute, resolve } from "node:path";
import type { JobSpecInput, RecordedEvent } from "../protocol/mod.ts";
import {
  DroneListSchema,
  JobCreatedSchema,
  JobListSchema,
  JobSpecSchema,
  JobViewSchema,
  MAX_PARALLELISM,
  normalizeRepoUrl,
  SubmittedSchema,
  validate,
} from "../protocol/mod.ts";
import { request, requestJson, resolveToken } from "./api_client.ts";
import type { ApiTarget } from "./api_client.ts";
import { followJob } from "./follow.ts";
import { shownUrl } from "./shown_url.ts";
import { followBuild } from "./build_follow.ts";
import { triggerColumn, triggerHeader } from "./trigger_text.ts";
import { int, list, pairs, parseFlags, required, str, usage, UsageError } from "./options.ts";
import type { Flags } from "./options.ts";

/** The flags every API client command takes: where the queen is, and the token. */
export const QUEEN_FLAGS: Flags = {
  queen: {
    type: "string",
    value: "URL",
    help: "the queen's URL",
    default: "http://127.0.0.1:3000",
  },
  token: {
    type: "string",
    value: "T",
    help: "API token (else ./strider-data/api-token)",
    env: "STRIDER_API_TOKEN",
  },
};

/** Something a command prints; tests capture it. */
export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

/**
 * Writes all of `text` to `file`. A reader that went away (`strider jobs | head -1`) ends the
 * command quietly with status 0, as `ls | head -1` does: nothing more is wanted.
 */
function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = new TextEncoder().encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    throw error;
  }
}

export const consoleOutput: Output = {
  out: (text) => writeAll(Deno.stdout, text),
  err: (text) => writeAll(Deno.stderr, text),
};

export async function target(values: Record<string, unknown>): Promise<ApiTarget> {
  const queen = values.queen as string;
  try {
    new URL(queen);
  } catch {
    throw new UsageError(
      `--queen must be a URL such as http://127.0.0.1:3000, not '${shownUrl(queen)}'`,
    );
  }
  return { queen, token: await resolveToken(values.token as string | undefined) };
}

export const SUBMIT_FLAGS: Flags = {
  ...QUEEN_FLAGS,
  repo: { type: "string", value: "URL", help: "repository URL or local path" },
  branch: { type: "string", value: "B", help: "branch to check out (default main)" },
  commit: { type: "string", value: "SHA", help: "commit id on the branch" },
  fetch: { type: "string", value: "REFSPEC", help: "fetch this refspec instead" },
  type: {
    type: "string",
    value: "T",
    help: "TEST, DEPLOY or TEST&DEPLOY",
    default: "TEST",
  },
  environment: { type: "string", value: "CMD", help: "environment phase script" },
  prepare: { type: "string", value: "CMD", help: "prepare phase script" },
  test: { type: "string", value: "CMD", help: "test phase script" },
  deploy: { type: "string", value: "CMD", help: "deploy phase script" },
  cleanup: { type: "string", value: "CMD", help: "cleanup phase script" },
  env: {
    type: "string",
    value: "K=V",
    help: "variable for the job (repeatable)",
    multiple: true,
  },
  plugins: {
    type: "string",
    value: "a,b",
    help: "plugins (default env,custom when a phase is given)",
  },
  label: {
    type: "string",
    value: "L",
    help: "a label the drone must carry (repeatable)",
    multiple: true,
  },
  timeout: { type: "string", value: "S", help: "seconds for the whole job" },
  artifact: {
    type: "string",
    value: "GLOB",
    help: "files to keep, e.g. dist/** (repeatable; see strider artifacts)",
    multiple: true,
  },
  priority: { type: "string", value: "N", help: "higher goes first" },
  message: { type: "string", value: "TEXT", help: "trigger message" },
  follow: {
    type: "boolean",
    help: "print the job's (or build's) output live; exit 0 only if it passed",
  },
  matrix: {
    type: "string",
    value: "AXIS=a,b",
    help: "a matrix axis: one job per combination (repeatable)",
    multiple: true,
  },
  parallel: { type: "string", value: "N", help: "run N shards of each job" },
  "fail-fast": { type: "boolean", help: "the first failing job cancels the build's others" },
};

/** `--matrix node=18,20 --matrix os=linux` as `{node: ["18", "20"], os: ["linux"]}`. */
function matrixFromFlags(values: Record<string, string | string[] | boolean | undefined>) {
  const raw = values.matrix;
  const items = Array.isArray(raw) ? raw : typeof raw === "string" ? [raw] : [];
  const matrix: Record<string, string[]> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--matrix takes AXIS=a,b, not '${item}'`);
    const values = item.slice(eq + 1).split(",").map((v) => v.trim()).filter(Boolean);
    if (!values.length) throw new UsageError(`--matrix ${item}: give at least one value`);
    matrix[item.slice(0, eq)] = [...(matrix[item.slice(0, eq)] ?? []), ...values];
  }
  return Object.keys(matrix).length ? matrix : undefined;
}

function existsLocally(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Turns `submit`'s flags into a job spec (validated by the queen and here). */
export function specFromFlags(values: Record<string, unknown>): JobSpecInput {
  const v = values as Record<string, string | string[] | boolean | undefined>;
  let repo = required(v, "repo");
  // A local path is made absolute, so the worker finds it whatever its working directory.
  const looksRemote = /^[a-z][a-z0-9+.-]*:\/\//i.test(repo) || /^[^/]+@[^/]+:/.test(repo);
  // `github.com/owner/repo.git` that is no folder here is the seed's form of a remote address.
  const bareRemote = normalizeRepoUrl(repo) !== repo && !existsLocally(repo);
  if (!looksRemote && !bareRemote && !isAbsolute(repo)) repo = resolve(repo);
  const fetch = str(v, "fetch");
  const branch = str(v, "branch");
  if (fetch && (branch || str(v, "commit"))) {
    throw new UsageError("give either --fetch or --branch/--commit, not both");
  }
  const ref = fetch
    ? { fetch }
    : { branch: branch ?? "main", ...(str(v, "commit") ? { id: str(v, "commit") } : {}) };
  const custom: Record<string, string> = {};
  for (const phase of ["environment", "prepare", "test", "deploy", "cleanup"]) {
    const script = str(v, phase);
    if (script) custom[phase] = script;
  }
  const env = pairs(v, "env");
  let plugins: string[] | undefined = list(v, "plugins");
  if (plugins.length === 0) {
    plugins = Object.keys(custom).length || Object.keys(env).length ? ["env", "custom"] : undefined;
  }
  const message = str(v, "message");
  return {
    repo: { url: repo },
    ref,
    job_type: required(v, "type") as JobSpecInput["job_type"],
    trigger: {
      type: "manual",
      timestamp: new Date().toISOString(),
      source: { type: "API", app: "strider-cli" },
      ...(message ? { message } : {}),
    },
    ...(plugins ? { plugins } : {}),
    config: { env, custom },
    ...(list(v, "label").length ? { labels: list(v, "label") } : {}),
    ...(str(v, "timeout") ? { timeout: int(v, "timeout", 1, 7 * 24 * 3600) } : {}),
    ...(str(v, "priority") ? { priority: int(v, "priority", -1000, 1000) } : {}),
    ...(list(v, "artifact").length ? { artifacts: list(v, "artifact") } : {}),
    ...(matrixFromFlags(v) ? { matrix: matrixFromFlags(v) } : {}),
    ...(str(v, "parallel") ? { parallelism: int(v, "parallel", 1, MAX_PARALLELISM) } : {}),
    ...(v["fail-fast"] ? { fail_fast: true } : {}),
  };
}

/** Prints one event as a person reading a terminal wants it. */
function printEvent(event: RecordedEvent, output: Output): void {
  const e = event.data;
  switch (e.event) {
    case "job:dispatched":
      output.err(`--- job ${e.id} attempt ${e.attempt} on ${e.drone}\n`);
      break;
    case "job:cmd:start":
      output.err(`$ ${e.screencmd}\n`);
      break;
    case "job:cmd:stdout":
    case "job:stdout":
      output.out(e.text);
      break;
    case "job:cmd:stderr":
    case "job:stderr":
      output.err(e.text);
      break;
    case "job:done":
      if (e.error) output.err(`${e.error}\n`);
      break;
  }
}

/** Follows a job to its end; returns the exit code: 0 passed, 1 anything else. */
async function followToEnd(api: ApiTarget, id: string, output: Output): Promise<number> {
  const start = await requestJson(api, `/api/jobs/${encodeURIComponent(id)}`, JobViewSchema);
  if (start.spec.trigger) output.err(triggerHeader(id, start.spec.trigger));
  for await (const event of followJob(api, id)) printEvent(event, output);
  const job = await requestJson(api, `/api/jobs/${encodeURIComponent(id)}`, JobViewSchema);
  output.err(`job ${id} ${job.result ?? job.status}\n`);
  return job.result === "passed" ? 0 : 1;
}

export async function submit(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, SUBMIT_FLAGS);
  if (values.help) return help("strider submit --repo URL [flags]", SUBMIT_FLAGS, output);
  const spec = specFromFlags(values);
  const checked = validate(JobSpecSchema, spec);
  if (!checked.ok) throw new UsageError(`the job would be invalid:\n${checked.error}`);
  const api = await target(values);
  const created = await requestJson(api, "/api/jobs", SubmittedSchema, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(spec),
  });
  // A build of several jobs is known by its build id; a single job by its own, as always.
  const several = created.jobs.length > 1 || created.build !== created.id;
  if (!values.follow) {
    output.out(`${several ? created.build : created.id}\n`);
    return 0;
  }
  if (several) return await followBuild(api, created.build, output);
  output.err(`job ${created.id} queued\n`);
  return await followToEnd(api, created.id, output);
}

const LIST_FLAGS: Flags = {
  ...QUEEN_FLAGS,
  status: { type: "string", value: "S", help: "queued, dispatched, started or done" },
  limit: { type: "string", value: "N", help: "how many", default: "50" },
  json: { type: "boolean", help: "print JSON" },
};

export async function jobs(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, LIST_FLAGS);
  if (values.help) return help("strider jobs [flags]", LIST_FLAGS, output);
  const limit = int(values, "limit", 1, 1000);
  const query = new URLSearchParams({ limit: String(limit) });
  if (str(values, "status")) query.set("status", str(values, "status")!);
  const list = await requestJson(await target(values), `/api/jobs?${query}`, JobListSchema);
  if (values.json) {
    output.out(JSON.stringify(list, null, 2) + "\n");
    return 0;
  }
  for (const job of list.jobs) {
    const state = job.result ?? job.status;
    output.out(
      `${job.id}  ${state.padEnd(10)} ${job.repo} ${job.ref}  ${job.drone ?? "-"}  ` +
        `${triggerColumn(job.trigger)}\n`,
    );
  }
  return 0;
}

const DRONES_FLAGS: Flags = {
  queen: QUEEN_FLAGS.queen,
  json: { type: "boolean", help: "print JSON" },
};

export async function drones(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, DRONES_FLAGS);
  if (values.help) return help("strider drones [flags]", DRONES_FLAGS, output);
  const list = await requestJson(await target(values), "/api/drones", DroneListSchema);
  if (values.json) {
    output.out(JSON.stringify(list, null, 2) + "\n");
    return 0;
  }
  for (const d of list.drones) {
    output.out(
      `${d.name}  speed ${d.speed}  ${d.running}/${d.capacity} running  ${d.queued} queued  ` +
        `plugins ${d.plugins.join(",")}${d.labels.length ? `  labels ${d.labels.join(",")}` : ""}${
          d.queen ? `  on queen ${d.queen.id}` : ""
        }\n`,
    );
  }
  return 0;
}

const LOGS_FLAGS: Flags = {
  queen: QUEEN_FLAGS.queen,
  follow: { type: "boolean", help: "keep printing until the job ends" },
};

export async function logs(args: string[], output: Output): Promise<number> {
  const { values, positionals } = parseFlags(args, LOGS_FLAGS, { maxPositionals: 1 });
  if (values.help) return help("strider logs ID [--follow]", LOGS_FLAGS, output);
  const id = positionals[0];
  if (!id) throw new UsageError("which job? give its id: strider logs ID");
  const api = await target(values);
  if (values.follow) return await followToEnd(api, id, output);
  const response = await request(api, `/api/jobs/${encodeURIComponent(id)}/log`);
  output.out(await response.text());
  return 0;
}

const RETRY_FLAGS: Flags = {
  ...QUEEN_FLAGS,
  follow: {
    type: "boolean",
    help: "print the new job's output live; exit 0 only if it passed",
  },
};

/** `strider retry ID`: runs a job again as a new job; prints the new id (or follows it). */
export async function retry(args: string[], output: Output): Promise<number> {
  const { values, positionals } = parseFlags(args, RETRY_FLAGS, { maxPositionals: 1 });
  if (values.help) return help("strider retry ID [--follow] [flags]", RETRY_FLAGS, output);
  const id = positionals[0];
  if (!id) throw new UsageError("which job? give its id: strider retry ID");
  const api = await target(values);
  const created = await requestJson(
    api,
    `/api/jobs/${encodeURIComponent(id)}/retry`,
    JobCreatedSchema,
    { method: "POST" },
  );
  if (!values.follow) {
    output.out(`${created.id}\n`);
    return 0;
  }
  output.err(`job ${created.id} queued (a re-run of ${id})\n`);
  return await followToEnd(api, created.id, output);
}

export async function cancel(args: string[], output: Output): Promise<number> {
  const { values, positionals } = parseFlags(args, QUEEN_FLAGS, { maxPositionals: 1 });
  if (values.help) return help("strider cancel ID [flags]", QUEEN_FLAGS, output);
  const id = positionals[0];
  if (!id) throw new UsageError("which job? give its id: strider cancel ID");
  const api = await target(values);
  await request(api, `/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  output.err(`job ${id}: cancel requested\n`);
  return 0;
}

export function help(synopsis: string, flags: Flags, output: Output): number {
  output.out(usage(synopsis, flags) + "\n");
  return 0;
}
