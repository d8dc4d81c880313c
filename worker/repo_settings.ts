import { join } from "node:path";
import { z } from "zod";
import type { DispatchedJob, PluginConfig } from "../protocol/mod.ts";
import type { CacheSpec, FanOut } from "../protocol/mod.ts";
import {
  ArtifactPatternsSchema,
  CacheListSchema,
  MatrixSchema,
  MAX_PARALLELISM,
  NameSchema,
  PluginConfigSchema,
  validate,
} from "../protocol/mod.ts";

/** A repository's own `strider.json`: the plugins to run and their config. */
export const StriderJsonSchema = z.object({
  plugins: z.array(NameSchema).max(256),
  config: PluginConfigSchema.optional(),
  cache: CacheListSchema.optional(),
  artifacts: ArtifactPatternsSchema.optional(),
  matrix: MatrixSchema.optional(),
  parallelism: z.int().min(1).max(MAX_PARALLELISM).optional(),
  fail_fast: z.boolean().optional(),
});

/** Larger than any real settings file. */
const MAX_STRIDER_JSON = 1024 * 1024;

/** The plugins a job runs and their config, or why they cannot be known. */
export type RepoSettings =
  | {
    ok: true;
    plugins: string[];
    config: PluginConfig;
    /** The job's caches, else the file's (plugins add their own defaults later). */
    cache: CacheSpec[];
    /** The job's artifact patterns, else the file's. */
    artifacts: string[];
    /**
     * The file asks for a build (`matrix`, `parallelism`) and this job is not one of a build
     * yet: it runs nothing, and the queen makes the build's jobs.
     */
    fanOut?: FanOut;
  }
  | { ok: false; error: string };

/**
 * A job that names its plugins runs those; one that does not runs what the repository's
 * `strider.json` says, with the job's config merged over the file's (job wins per plugin key).
 */
export async function repoSettings(job: DispatchedJob, src: string): Promise<RepoSettings> {
  if (job.plugins) {
    return {
      ok: true,
      plugins: job.plugins,
      config: job.config ?? {},
      cache: job.cache ?? [],
      artifacts: job.artifacts ?? [],
    };
  }
  let text: string;
  const path = join(src, "strider.json");
  try {
    // The worker reads this file, not the job: a link to /etc/shadow or /proc/self/environ would
    // show its start in the parse error. Only a plain file of the repository counts.
    const info = await Deno.lstat(path);
    if (!info.isFile) {
      return { ok: false, error: "strider.json must be a regular file, not a link or folder" };
    }
    if (info.size > MAX_STRIDER_JSON) {
      return { ok: false, error: `strider.json is over ${MAX_STRIDER_JSON} bytes` };
    }
    text = await Deno.readTextFile(path);
  } catch {
    return {
      ok: false,
      error: "the job names no plugins and the repository has no strider.json: " +
        'add "plugins" to the job or a strider.json to the repository',
    };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `strider.json is not JSON: ${(error as Error).message}` };
  }
  const file = validate(StriderJsonSchema, raw);
  if (!file.ok) return { ok: false, error: `strider.json is invalid:\n${file.error}` };
  const config: PluginConfig = { ...file.value.config };
  for (const [key, value] of Object.entries(job.config ?? {})) {
    const base = config[key];
    config[key] = isObject(base) && isObject(value) ? { ...base, ...value } : value;
  }
  const { matrix, parallelism, fail_fast } = file.value;
  const fans = !job.build && (matrix !== undefined || (parallelism ?? 1) > 1);
  return {
    ok: true,
    plugins: file.value.plugins,
    config,
    cache: job.cache ?? file.value.cache ?? [],
    artifacts: job.artifacts ?? file.value.artifacts ?? [],
    ...(fans
      ? {
        fanOut: {
          ...(matrix ? { matrix } : {}),
          ...(parallelism ? { parallelism } : {}),
          ...(fail_fast ? { fail_fast } : {}),
        },
      }
      : {}),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
