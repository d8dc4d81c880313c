/**
 * Builds as the API shows them (`GET /api/builds`, `GET /api/builds/:id`): a group of jobs made
 * from one trigger, running until every job is final, passed only when every job that may not
 * fail passed.
 * @module
 */
import { z } from "zod";
import { JobResultSchema } from "./events.ts";
import { JobIdSchema } from "./job_spec.ts";
import { JobStatusSchema } from "./job_view.ts";
import { AxisNameSchema, AxisValueSchema, CombinationSchema } from "./matrix.ts";

const isoTime = z.iso.datetime();

export const BuildStatusSchema = z.enum(["running", "done"]);
export const BuildResultSchema = z.enum(["passed", "failed", "cancelled"]);
export type BuildStatus = z.infer<typeof BuildStatusSchema>;
export type BuildResult = z.infer<typeof BuildResultSchema>;

/** One job of a build. */
export const BuildJobViewSchema = z.object({
  id: JobIdSchema,
  name: z.string(),
  matrix: CombinationSchema.optional(),
  shard: z.object({ index: z.int(), total: z.int() }).optional(),
  allow_failure: z.boolean(),
  status: JobStatusSchema,
  result: JobResultSchema.nullable(),
  drone: z.string().nullable(),
});
export type BuildJobView = z.infer<typeof BuildJobViewSchema>;

/** The body of `GET /api/builds/:id`. */
export const BuildViewSchema = z.object({
  id: JobIdSchema,
  status: BuildStatusSchema,
  result: BuildResultSchema.nullable(),
  repo: z.string(),
  branch: z.string().nullable(),
  fail_fast: z.boolean(),
  createdAt: isoTime,
  finishedAt: isoTime.nullable(),
  rerunOf: JobIdSchema.nullable().describe("the build this one re-runs"),
  axes: z.array(z.object({ name: AxisNameSchema, values: z.array(AxisValueSchema) })).describe(
    "the matrix axes, for showing the jobs as a grid",
  ),
  jobs: z.array(BuildJobViewSchema),
});
export type BuildView = z.infer<typeof BuildViewSchema>;

/** One line of `GET /api/builds`. */
export const BuildSummarySchema = BuildViewSchema.omit({ axes: true, jobs: true }).extend({
  jobs: z.int().describe("how many jobs the build holds"),
  passed: z.int().describe("how many of them passed"),
});
export type BuildSummary = z.infer<typeof BuildSummarySchema>;

/** The body of `GET /api/builds`. */
export const BuildListSchema = z.object({
  builds: z.array(BuildSummarySchema),
  next: z.string().nullable(),
});
export type BuildList = z.infer<typeof BuildListSchema>;

/** What `POST /api/jobs` answers: the first job (as before) and its build. */
export const SubmittedSchema = z.object({
  id: JobIdSchema.describe("the first job's id (the only one, for a build of one)"),
  status: JobStatusSchema,
  build: JobIdSchema,
  jobs: z.array(JobIdSchema),
});
export type Submitted = z.infer<typeof SubmittedSchema>;
