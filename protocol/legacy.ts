/**
 * Strider's older job data (strider/lib/jobs.js, the seed's "Current" list), accepted at the
 * edge and converted to the job spec; inside strider only the new shape exists.
 */
import { z } from "zod";
import { LIMITS } from "./limits.ts";
import type { JobSpecInput } from "./job_spec.ts";

const text = z.string().max(LIMITS.text);

/** The older format's `github_commit_info`. */
const CommitInfoSchema = z.looseObject({
  id: z.string().max(64).optional(),
  branch: z.string().max(LIMITS.ref).optional(),
  message: text.optional(),
  timestamp: z.union([z.string().max(64), z.number()]).optional(),
  url: z.string().max(LIMITS.url).optional(),
  author: z.looseObject({
    name: z.string().max(LIMITS.url).optional(),
    email: z.string().max(LIMITS.url).optional(),
    username: z.string().max(LIMITS.url).optional(),
  }).optional(),
});

/** The older format: `user_id, github_apikey, job_id, repo_config, deploy_config, ...`. */
export const LegacyJobSchema = z.looseObject({
  user_id: z.string().max(LIMITS.name).optional(),
  github_apikey: z.string().max(LIMITS.text).optional(),
  job_id: z.string().max(64).optional(),
  repo_config: z.looseObject({
    privkey: z.string().max(LIMITS.text).optional(),
    url: z.string().max(LIMITS.url).optional(),
    branch: z.string().max(LIMITS.ref).optional(),
    plugins: z.array(z.looseObject({
      id: z.string().max(LIMITS.name),
      enabled: z.boolean().optional(),
      config: z.record(z.string(), z.unknown()).optional(),
    })).max(LIMITS.entries).optional(),
  }).optional(),
  deploy_config: z.record(z.string(), z.unknown()).optional(),
  deploy_target: z.string().max(LIMITS.url).optional(),
  repo_ssh_url: z.string().max(LIMITS.url),
  job_type: z.enum(["TEST_ONLY", "TEST_AND_DEPLOY", "DEPLOY_ONLY"]),
  github_commit_info: CommitInfoSchema.optional(),
});
export type LegacyJob = z.infer<typeof LegacyJobSchema>;

/** Whether a request body is in the older format (it has the older format's own fields). */
export function isLegacyJob(body: unknown): boolean {
  return typeof body === "object" && body !== null &&
    ("repo_ssh_url" in body || "repo_config" in body || "github_commit_info" in body);
}

const JOB_TYPES = {
  TEST_ONLY: "TEST",
  TEST_AND_DEPLOY: "TEST&DEPLOY",
  DEPLOY_ONLY: "DEPLOY",
} as const;

/**
 * Converts older job data to a job spec (still to be validated): the SSH URL with the
 * repository's private key, the commit as ref and trigger, enabled plugins with their config,
 * and the deploy target as `STRIDER_DEPLOY_TARGET`.
 */
export function convertLegacyJob(legacy: LegacyJob): JobSpecInput {
  const commit = legacy.github_commit_info;
  const branch = commit?.branch ?? legacy.repo_config?.branch ?? "master";
  const enabled = (legacy.repo_config?.plugins ?? []).filter((p) => p.enabled !== false);
  const config: Record<string, unknown> = Object.fromEntries(
    enabled.map((p) => [p.id, p.config ?? {}]),
  );
  if (legacy.deploy_target) {
    const env = (config.env ?? {}) as Record<string, string>;
    config.env = { ...env, STRIDER_DEPLOY_TARGET: legacy.deploy_target };
  }
  const privkey = legacy.repo_config?.privkey;
  const timestamp = legacyTime(commit?.timestamp);
  return {
    ...(legacy.user_id ? { user_id: legacy.user_id } : {}),
    ...(legacy.job_id ? { job_id: legacy.job_id } : {}),
    repo: {
      url: legacy.repo_ssh_url,
      provider: "github",
      ...(privkey ? { auth: { type: "ssh" as const, key: privkey } } : {}),
    },
    ref: { branch, ...(commit?.id ? { id: commit.id } : {}) },
    job_type: JOB_TYPES[legacy.job_type],
    trigger: {
      type: commit ? "commit" : "manual",
      ...(commit?.author
        ? {
          author: {
            ...(commit.author.name ? { name: commit.author.name } : {}),
            ...(commit.author.email ? { email: commit.author.email } : {}),
            ...(commit.author.username ? { username: commit.author.username } : {}),
          },
        }
        : {}),
      ...(commit?.message ? { message: commit.message } : {}),
      ...(commit?.url ? { url: commit.url } : {}),
      timestamp,
      source: { type: "plugin", plugin: "github" },
    },
    ...(enabled.length ? { plugins: enabled.map((p) => p.id) } : {}),
    ...(Object.keys(config).length ? { config } : {}),
  };
}

/** An ISO 8601 time from the older format's string or epoch milliseconds; now when neither. */
function legacyTime(value: string | number | undefined): string {
  const time = new Date(value ?? NaN);
  return Number.isNaN(time.getTime()) ? new Date().toISOString() : time.toISOString();
}
