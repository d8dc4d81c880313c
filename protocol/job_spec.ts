import { z } from "zod";
import { ArtifactPatternsSchema, CacheListSchema } from "./job_files.ts";
import { LIMITS } from "./limits.ts";
import { fetchRefspecProblem, normalizeRepoUrl, refNameProblem, repoUrlProblem } from "./refs.ts";
import { TriggerSchema } from "./trigger.ts";
import { PHASES } from "./phases.ts";
import { BuildInfoSchema, MatrixSchema, MAX_PARALLELISM } from "./matrix.ts";

/** Adds `problem(value)` as a zod refinement: a returned string becomes the error message. */
function checked(schema: z.ZodString, problem: (value: string) => string | undefined) {
  return schema.superRefine((value, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: "custom", message });
  });
}

/** A plugin, label or drone name. */
export const NameSchema = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
  "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
);

/**
 * A label, or in a job with a matrix a label template naming its axes (`node-${node}`), which
 * the queen fills in per combination.
 */
export const LabelSchema = z.union([
  NameSchema,
  z.string().regex(
    /^[A-Za-z0-9._${}-]{1,160}$/,
    "must be a label (1-64 letters, digits, '.', '_' or '-') or a template such as node-${node}",
  ).refine((label) => label.includes("${"), "must be a label or a template such as node-${node}"),
]);

/** An environment variable name. */
export const EnvNameSchema = z.string().regex(
  /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
  "must be a valid environment variable name (letters, digits, '_'; not starting with a digit)",
);

/** A job id, chosen by the queen or the submitter. */
export const JobIdSchema = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
  "must be 1-64 letters, digits, '.', '_' or '-'",
);

/** Variables as `{NAME: value}`. */
export const EnvMapSchema = z.record(EnvNameSchema, z.string().max(LIMITS.text)).refine(
  (env) => Object.keys(env).length <= LIMITS.entries,
  `may hold at most ${LIMITS.entries} variables`,
);

export const RepoAuthSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("https"),
    username: z.string().max(LIMITS.url),
    password: z.string().max(LIMITS.text),
  }),
  z.strictObject({
    type: z.literal("ssh"),
    key: z.string().min(1).max(LIMITS.text).describe("a private key in OpenSSH or PEM format"),
  }),
]);

export const RepoSchema = z.strictObject({
  // Room for the `https://` a bare host/path gains, so a stored spec parses again as it is.
  url: z.string().max(LIMITS.url + 8).transform(normalizeRepoUrl).pipe(
    checked(z.string().max(LIMITS.url + 8), repoUrlProblem),
  ).describe("a URL, an absolute path, user@host:path, or host/path (read as https://host/path)"),
  auth: RepoAuthSchema.optional(),
  provider: z.enum(["github", "bitbucket", "gitlab", "gitea", "other"]).optional(),
  vcs: z.enum(["git", "hg"]).default("git"),
});

/** Either a branch (optionally pinned to a commit) or a refspec to fetch. */
export const RefSchema = z.union([
  z.strictObject({
    branch: checked(z.string().max(LIMITS.ref), refNameProblem),
    id: z.string().regex(/^[0-9a-fA-F]{4,64}$/, "must be a commit id (4-64 hex digits)")
      .optional(),
  }),
  z.strictObject({
    fetch: checked(z.string().max(LIMITS.ref), fetchRefspecProblem),
  }),
]);

export const JobTypeSchema = z.enum(["TEST", "DEPLOY", "TEST&DEPLOY"]);

export { PHASES };
export const PhaseSchema = z.enum(PHASES);

/** The `custom` plugin's config: one shell script per phase. */
export const CustomConfigSchema = z.strictObject(
  Object.fromEntries(PHASES.map((phase) => [phase, z.string().max(LIMITS.text).optional()])) as {
    [P in typeof PHASES[number]]: z.ZodOptional<z.ZodString>;
  },
);

/** Plugin configuration: known built-in plugins are checked here; others pass through. */
export const PluginConfigSchema = z.looseObject({
  env: EnvMapSchema.optional(),
  custom: CustomConfigSchema.optional(),
});

const list = <T extends z.ZodType>(item: T) =>
  z.array(item).max(LIMITS.entries, `may hold at most ${LIMITS.entries} entries`);

/** The seed's "what I'd like to see" job data, plus the optional fields in DESIGN.md. */
export const JobSpecSchema = z.strictObject({
  user_id: z.string().max(LIMITS.name).optional(),
  job_id: JobIdSchema.optional().describe("assigned by the queen when absent"),
  repo: RepoSchema,
  ref: RefSchema,
  job_type: JobTypeSchema.default("TEST"),
  trigger: TriggerSchema.optional().describe("defaults to a manual trigger from the API"),
  plugins: list(NameSchema).optional().describe(
    "plugin names, in order; without it the repository's strider.json decides",
  ),
  config: PluginConfigSchema.optional(),
  timeout: z.int().min(1).max(LIMITS.timeoutSeconds).optional().describe(
    "seconds for the whole job",
  ),
  labels: list(LabelSchema).optional().describe(
    "a drone must carry all of them; with a matrix, ${axis} stands for the job's value",
  ),
  secrets: EnvMapSchema.optional().describe("exported to commands, masked in all output"),
  network: z.boolean().optional().describe("false cuts the job off the network where possible"),
  priority: z.int().min(-1000).max(1000).optional().describe("higher goes first"),
  serialize: z.boolean().optional().describe("never run two jobs of this repo+branch at once"),
  cache: CacheListSchema.optional().describe("caches; without it the repository's strider.json's"),
  artifacts: ArtifactPatternsSchema.optional().describe(
    "files kept with the job, e.g. dist/** or coverage/; without it strider.json's",
  ),
  matrix: MatrixSchema.optional().describe("one job per combination of the axes' values"),
  parallelism: z.int().min(1).max(MAX_PARALLELISM).optional().describe(
    "copies of each job, with STRIDER_SHARD_INDEX and STRIDER_SHARD_TOTAL set",
  ),
  fail_fast: z.boolean().optional().describe(
    "the first failing job that may not fail cancels the build's other jobs",
  ),
  build: BuildInfoSchema.optional().describe("set by the queen on the jobs of a build"),
});

/** A job spec as submitted (before defaults are applied). */
export type JobSpecInput = z.input<typeof JobSpecSchema>;
/** A validated job spec with defaults applied. */
export type JobSpec = z.infer<typeof JobSpecSchema>;
export type RepoAuth = z.infer<typeof RepoAuthSchema>;
export type Ref = z.infer<typeof RefSchema>;
export type JobType = z.infer<typeof JobTypeSchema>;
export type Phase = z.infer<typeof PhaseSchema>;
export type PluginConfig = z.infer<typeof PluginConfigSchema>;

/** The job data a drone receives in `queue:new`: a spec whose id and trigger are settled. */
export const DispatchedJobSchema = JobSpecSchema.extend({
  job_id: JobIdSchema,
  trigger: TriggerSchema,
});
export type DispatchedJob = z.infer<typeof DispatchedJobSchema>;
