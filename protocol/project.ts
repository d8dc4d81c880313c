import { z } from "zod";
import { MatrixSchema, MAX_PARALLELISM } from "./matrix.ts";
import { LIMITS } from "./limits.ts";
import { refNameProblem } from "./refs.ts";
import {
  EnvNameSchema,
  JobTypeSchema,
  NameSchema,
  PluginConfigSchema,
  RepoSchema,
} from "./job_spec.ts";

/** What the API shows in place of a secret value that is set. */
export const SECRET_MASK = "***";

/** Longest project name (GitLab allows nested groups: `group/subgroup/repo`). */
const MAX_PROJECT_NAME = 255;

/** A project's name: the repository's full name on its forge, `owner/repo`. */
export const ProjectNameSchema = z.string().max(MAX_PROJECT_NAME).regex(
  /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/,
  "must be owner/repo (letters, digits, '.', '_' or '-' around each '/')",
).refine(
  (name) => name.split("/").every((part) => part !== "." && part !== ".."),
  "no part may be '.' or '..'",
);

/** A branch name, or `*` for every branch without an entry of its own. */
export const BranchKeySchema = z.string().max(LIMITS.ref).superRefine((key, ctx) => {
  if (key === "*") return;
  const problem = refNameProblem(key);
  if (problem) ctx.addIssue({ code: "custom", message: `branch name ${problem} (or use '*')` });
});

/** What runs for pushes to one branch (and for pull requests into it). */
export const BranchSettingsSchema = z.strictObject({
  plugins: z.array(NameSchema).max(LIMITS.entries).optional().describe(
    "plugin names, in order; without them the repository's strider.json decides",
  ),
  config: PluginConfigSchema.optional(),
  job_type: JobTypeSchema.optional().describe("wins over `deploy` when both are given"),
  deploy: z.boolean().optional().describe("true: pushes run TEST&DEPLOY; pull requests never"),
  matrix: MatrixSchema.optional().describe("each push makes one build: a job per combination"),
  parallelism: z.int().min(1).max(MAX_PARALLELISM).optional().describe("shards of each job"),
  fail_fast: z.boolean().optional().describe("the first failing job cancels the build's others"),
});
export type BranchSettings = z.infer<typeof BranchSettingsSchema>;

const notMask = (what: string) => (value: string) =>
  value === SECRET_MASK
    ? `'${SECRET_MASK}' is how the API shows a ${what} that is set; send the real value`
    : undefined;

function refusing(schema: z.ZodString, problem: (value: string) => string | undefined) {
  return schema.superRefine((value, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: "custom", message });
  });
}

/** Default name of the project secret holding the forge token that statuses are reported with. */
export const DEFAULT_FORGE_TOKEN_SECRET = "FORGE_TOKEN";

/**
 * Commit status reporting for the project's webhook jobs: on when the project has the secret
 * `token_secret` (a forge token allowed to set commit statuses).
 */
export const StatusSettingsSchema = z.strictObject({
  api: z.url({ protocol: /^https?$/ }).max(LIMITS.url).optional().describe(
    "the forge's API; by default https://api.github.com (or https://HOST/api/v3), " +
      "https://HOST/api/v4 for GitLab, https://HOST/api/v1 for Gitea, HOST from repo.url",
  ),
  context: z.string().min(1).max(255).optional().describe(
    "the status's name on the forge (default 'strider')",
  ),
  token_secret: EnvNameSchema.optional().describe(
    `the project secret holding the forge token (default ${DEFAULT_FORGE_TOKEN_SECRET}); it is ` +
      "used by the queen only, never passed to jobs",
  ),
});
export type StatusSettings = z.infer<typeof StatusSettingsSchema>;

/** A project as created (`POST /api/projects`) and as the queen keeps it, secrets included. */
export const ProjectSchema = z.strictObject({
  name: ProjectNameSchema,
  repo: RepoSchema.superRefine((repo, ctx) => {
    const auth = repo.auth;
    const secret = auth?.type === "https" ? auth.password : auth?.key;
    const problem = secret === undefined ? undefined : notMask("credential")(secret);
    if (problem) {
      ctx.addIssue({
        code: "custom",
        path: ["auth", auth?.type === "https" ? "password" : "key"],
        message: problem,
      });
    }
  }),
  branches: z.record(BranchKeySchema, BranchSettingsSchema)
    .refine(
      (branches) => Object.keys(branches).length <= LIMITS.entries,
      `may hold at most ${LIMITS.entries} branches`,
    )
    .default({ "*": {} })
    .describe("settings by branch name; '*' applies to branches without an entry"),
  secrets: z.record(EnvNameSchema, refusing(z.string().max(LIMITS.text), notMask("secret")))
    .refine(
      (secrets) => Object.keys(secrets).length <= LIMITS.entries,
      `may hold at most ${LIMITS.entries} secrets`,
    )
    .default({})
    .describe("sent to workers only inside jobs; the API shows their names, never their values"),
  webhook_secret: refusing(z.string().min(1).max(LIMITS.text), notMask("secret")).optional()
    .describe("verifies this project's webhooks instead of the queen's --webhook-secret"),
  status: StatusSettingsSchema.optional(),
});
/** A project as submitted (before defaults). */
export type ProjectInput = z.input<typeof ProjectSchema>;
/** A validated project with defaults applied, secrets included. Never sent to API clients. */
export type Project = z.infer<typeof ProjectSchema>;

const isoTime = z.iso.datetime();

/** A project as the API shows it: secret values and repository credentials are `***`. */
export const ProjectViewSchema = z.object({
  name: ProjectNameSchema,
  repo: RepoSchema,
  branches: z.record(z.string(), BranchSettingsSchema),
  secrets: z.record(z.string(), z.literal(SECRET_MASK)).describe("names only"),
  webhook_secret: z.literal(SECRET_MASK).nullable().describe("whether one is set"),
  status: StatusSettingsSchema.optional(),
  createdAt: isoTime,
  updatedAt: isoTime,
});
export type ProjectView = z.infer<typeof ProjectViewSchema>;

/** `GET /api/projects`. */
export const ProjectListSchema = z.object({ projects: z.array(ProjectViewSchema) });
export type ProjectList = z.infer<typeof ProjectListSchema>;
