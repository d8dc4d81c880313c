/**
 * `strider artifacts ID [PATH] [--out DIR]`: lists a job's artifacts, prints one to stdout, or
 * downloads them all into DIR, each checked against its SHA-256 before it takes its name.
 */
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { ArtifactListSchema, artifactPathProblem } from "../protocol/mod.ts";
import { ApiError, request, requestJson } from "./api_client.ts";
import type { ApiTarget } from "./api_client.ts";
import { QUEEN_FLAGS, target } from "./client_commands.ts";
import type { Output } from "./client_commands.ts";
import { parseFlags, str, usage, UsageError } from "./options.ts";
import type { Flags } from "./options.ts";

const ARTIFACTS_FLAGS: Flags = {
  ...QUEEN_FLAGS,
  out: {
    type: "string",
    value: "DIR",
    help: "download every artifact into DIR (needs --allow-write)",
    env: false,
  },
  json: { type: "boolean", help: "print the list as JSON" },
};

const SYNOPSIS = "strider artifacts ID [PATH] [--out DIR] [flags]";

export async function artifacts(args: string[], output: Output): Promise<number> {
  const { values, positionals } = parseFlags(args, ARTIFACTS_FLAGS, { maxPositionals: 2 });
  if (values.help) {
    output.out(usage(SYNOPSIS, ARTIFACTS_FLAGS) + "\n");
    return 0;
  }
  const [id, one] = positionals;
  if (!id) throw new UsageError("which job? give its id: strider artifacts ID");
  const api = await target(values);
  const base = `/api/jobs/${encodeURIComponent(id)}/artifacts`;
  if (one !== undefined) {
    const problem = artifactPathProblem(one);
    if (problem) throw new UsageError(`PATH ${problem}`);
    const response = await request(api, `${base}/${encodePath(one)}`, { stream: true });
    // Bytes as they are: an artifact need not be text.
    try {
      await response.body!.pipeTo(Deno.stdout.writable, { preventClose: true });
    } catch (error) {
      if (error instanceof Deno.errors.BrokenPipe) return 0;
      throw error;
    }
    return 0;
  }
  const list = await requestJson(api, base, ArtifactListSchema);
  const out = str(values, "out");
  if (!out) {
    if (values.json) output.out(JSON.stringify(list, null, 2) + "\n");
    else {
      if (list.artifacts.length === 0) output.err(`job ${id} has no artifacts\n`);
      for (const a of list.artifacts) output.out(`${a.path}  ${a.size}  ${a.sha256}\n`);
    }
    return 0;
  }
  await Deno.mkdir(out, { recursive: true });
  const root = await Deno.realPath(out);
  for (const artifact of list.artifacts) {
    await download(api, `${base}/${encodePath(artifact.path)}`, root, artifact);
    output.err(`${join(out, artifact.path)}  ${artifact.size} bytes\n`);
  }
  output.err(`${list.artifacts.length} artifacts of job ${id} in ${out}\n`);
  return 0;
}

const encodePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

/** Downloads one artifact under `root`, by its checked path, verified before it is renamed. */
async function download(
  api: ApiTarget,
  url: string,
  root: string,
  artifact: { path: string; sha256: string },
): Promise<void> {
  const problem = artifactPathProblem(artifact.path);
  if (problem) throw new ApiError(`the queen sent an artifact path that ${problem}`, 0);
  const file = resolve(root, artifact.path);
  await Deno.mkdir(dirname(file), { recursive: true });
  // A symlink already in DIR must not carry the download elsewhere.
  if (!(await Deno.realPath(dirname(file)) + "/").startsWith(root + "/")) {
    throw new ApiError(`'${artifact.path}' would be written outside ${root}: not written`, 0);
  }
  const temp = `${file}.${crypto.randomUUID()}.part`;
  const hash = createHash("sha256");
  try {
    const response = await request(api, url, { stream: true });
    {
      using handle = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
      const writer = handle.writable.getWriter();
      for await (const chunk of response.body!) {
        hash.update(chunk);
        await writer.write(chunk);
      }
      await writer.close();
    }
    const digest = hash.digest("hex");
    if (digest !== artifact.sha256) {
      throw new ApiError(
        `'${artifact.path}' arrived with SHA-256 ${digest}, not ${artifact.sha256}`,
        0,
      );
    }
    await Deno.rename(temp, file);
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}
