/**
 * What a job spec says to fan out into a build (`matrix`, `parallelism`), and what each job of a
 * build carries of it (`build`): its build's id, its name, its matrix values and its shard. The
 * queen makes the jobs (`queen/builds/expand.ts`); the worker turns `build` into `STRIDER_MATRIX_*`
 * and `STRIDER_SHARD_*` variables (`buildEnv`).
 * @module
 */
import { z } from "zod";

/** Combinations one matrix may make; past it the job is refused (400). */
export const MAX_MATRIX_COMBINATIONS = 64;
/** Copies `parallelism` may ask for. */
export const MAX_PARALLELISM = 64;
/** Jobs one build may hold (combinations × parallelism). */
export const MAX_BUILD_JOBS = 256;

/** The keys of `matrix` that are not axes. */
export const MATRIX_KEYWORDS = ["exclude", "include", "allow_failure"] as const;

/** An axis name: it becomes part of an environment variable name. */
export const AxisNameSchema = z.string().regex(
  /^[a-z][a-z0-9_]{0,31}$/,
  "matrix axis names are 1-32 lowercase letters, digits or '_', starting with a letter",
);

/** An axis value: it becomes part of labels, job ids and status contexts. */
export const AxisValueSchema = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/,
  "matrix values are 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit",
);

/** One combination (or, in `exclude`/`allow_failure`, a pattern of some axes' values). */
export const CombinationSchema = z.record(AxisNameSchema, AxisValueSchema).refine(
  (combination) => Object.keys(combination).length <= 16,
  "a combination names at most 16 axes",
);
export type Combination = z.infer<typeof CombinationSchema>;

const combinations = z.array(CombinationSchema).max(MAX_MATRIX_COMBINATIONS);

/**
 * `{ node: ["18", "20"], os: ["linux"], exclude: [...], include: [...], allow_failure: [...] }`:
 * one job per combination of the axes' values, less those matching an `exclude` entry, plus each
 * `include` entry; a combination matching an `allow_failure` entry may fail without failing the
 * build.
 */
export const MatrixSchema = z.object({
  exclude: combinations.optional().describe("combinations (or parts of them) to leave out"),
  include: combinations.optional().describe("extra combinations to add"),
  allow_failure: combinations.optional().describe(
    "combinations (or parts of them) that may fail without failing the build",
  ),
}).catchall(z.array(AxisValueSchema).min(1).max(MAX_MATRIX_COMBINATIONS)).superRefine(
  (matrix, ctx) => {
    const axes = Object.keys(matrix).filter((key) => !isKeyword(key));
    for (const axis of axes) {
      const parsed = AxisNameSchema.safeParse(axis);
      if (!parsed.success) {
        ctx.addIssue({ code: "custom", path: [axis], message: parsed.error.issues[0].message });
      }
    }
    if (axes.length > 16) ctx.addIssue({ code: "custom", message: "at most 16 axes" });
    if (!axes.length && !(matrix.include as unknown[] | undefined)?.length) {
      ctx.addIssue({ code: "custom", message: 'name at least one axis, e.g. {"node": ["20"]}' });
    }
  },
);
export type Matrix = z.infer<typeof MatrixSchema>;

function isKeyword(key: string): boolean {
  return (MATRIX_KEYWORDS as readonly string[]).includes(key);
}

/** The axes of a matrix with their values, in the order written. */
export function matrixAxes(matrix: Matrix): [string, string[]][] {
  return Object.entries(matrix).filter(([key]) => !isKeyword(key)) as [string, string[]][];
}

/**
 * What a job reports in its `job:done` when the repository's `strider.json` asks for a build
 * (`matrix`, `parallelism`): the queen then makes the build's jobs, on the commit this job fetched.
 */
export const FanOutSchema = z.strictObject({
  matrix: MatrixSchema.optional(),
  parallelism: z.int().min(1).max(MAX_PARALLELISM).optional(),
  fail_fast: z.boolean().optional(),
  commit: z.string().regex(/^[0-9a-fA-F]{4,64}$/).optional().describe("the commit fetched"),
});
export type FanOut = z.infer<typeof FanOutSchema>;

/** Recorded seconds per test file, for `strider shard`. */
export const ShardTimingsSchema = z.record(z.string().max(1024), z.number().min(0).max(1e7));
export type ShardTimings = z.infer<typeof ShardTimingsSchema>;

/** What a job of a build knows of it; set by the queen, refused from submitters. */
export const BuildInfoSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).describe("the build's id"),
  name: z.string().max(256).describe("the job's name in its build, e.g. node-20 or shard-1"),
  matrix: CombinationSchema.optional().describe("this job's matrix values"),
  shard: z.strictObject({
    index: z.int().min(0).max(MAX_PARALLELISM - 1),
    total: z.int().min(1).max(MAX_PARALLELISM),
  }).optional(),
  allow_failure: z.boolean().optional().describe("its failure does not fail the build"),
  timings: ShardTimingsSchema.optional().describe(
    "seconds per test file from earlier runs of the project, for `strider shard`",
  ),
});
export type BuildInfo = z.infer<typeof BuildInfoSchema>;

/** Bytes of JSON the timings a job carries may take (they travel as one variable). */
export const MAX_TIMINGS_BYTES = 32 * 1024;

/** The variables a build's job gets: its matrix values, its shard and the recorded timings. */
export function buildEnv(build: BuildInfo | undefined): Record<string, string> {
  if (!build) return {};
  const env: Record<string, string> = { STRIDER_BUILD_ID: build.id, STRIDER_BUILD_JOB: build.name };
  for (const [axis, value] of Object.entries(build.matrix ?? {})) {
    env[`STRIDER_MATRIX_${axis.toUpperCase()}`] = value;
  }
  if (build.shard) {
    env.STRIDER_SHARD_INDEX = String(build.shard.index);
    env.STRIDER_SHARD_TOTAL = String(build.shard.total);
  }
  if (build.timings && Object.keys(build.timings).length) {
    env.STRIDER_SHARD_TIMINGS = JSON.stringify(build.timings);
  }
  return env;
}
