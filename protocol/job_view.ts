import { z } from "zod";
import { JobResultSchema, WorkerJobEventSchema } from "./events.ts";
import { JobIdSchema, JobSpecSchema, PHASES } from "./job_spec.ts";
import { TriggerSchema } from "./trigger.ts";

/** Where a job is in its life (DESIGN.md, Job lifecycle). */
export const JobStatusSchema = z.enum(["queued", "dispatched", "started", "done"]);
export type JobStatus = z.infer<typeof JobStatusSchema>;

const isoTime = z.iso.datetime();

/** One command as the API shows it: the sanitized command, its exit code and its output. */
export const CommandViewSchema = z.object({
  num: z.int(),
  command: z.string().describe("the shown (sanitized) command"),
  plugin: z.string().nullable(),
  exitCode: z.int().nullable(),
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  output: z.string(),
});
export type CommandView = z.infer<typeof CommandViewSchema>;

export const PhaseViewSchema = z.object({
  exitCode: z.int().nullable(),
  finished: z.boolean(),
  commands: z.array(CommandViewSchema),
});
export type PhaseView = z.infer<typeof PhaseViewSchema>;

export const AttemptViewSchema = z.object({
  attempt: z.int(),
  drone: z.string(),
  dispatchedAt: isoTime,
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  result: JobResultSchema.nullable(),
});
export type AttemptView = z.infer<typeof AttemptViewSchema>;

/**
 * Where a webhook job's commit status stands at its forge (the view's `reported`): what the
 * forge accepted last, what is being sent now, and why the last try failed.
 */
export const ReportedStatusSchema = z.object({
  forge: z.string(),
  commit: z.string(),
  state: z.string().nullable().describe("the state the forge accepted last; null before any"),
  wanted: z.string().describe("the state being reported"),
  at: isoTime.nullable().describe("when the forge accepted it"),
  tries: z.int(),
  error: z.string().nullable().describe("why the last try failed"),
});
export type ReportedStatus = z.infer<typeof ReportedStatusSchema>;

/**
 * A job spec as the API shows it: secret values, repository credentials and secret-named config
 * values (such as `config.env.DEPLOY_KEY`) replaced by `***`, which is a valid value of each, so
 * the schema is the job spec's own.
 */
export const PublicJobSpecSchema = JobSpecSchema;

/** The whole job: the seed's `job:info` job-data and the body of `GET /api/jobs/:id`. */
export const JobViewSchema = z.object({
  id: JobIdSchema,
  status: JobStatusSchema,
  result: JobResultSchema.nullable(),
  error: z.string().nullable(),
  waiting: z.string().nullable().describe("why a queued job has not gone out yet"),
  spec: PublicJobSpecSchema,
  drone: z.string().nullable(),
  attempt: z.int().describe("the current attempt; 0 before the first dispatch"),
  attempts: z.array(AttemptViewSchema),
  createdAt: isoTime,
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  tested: z.int().nullable().describe("exit code of the test phase (job:tested)"),
  deployed: z.int().nullable().describe("exit code of the deploy phase (job:deployed)"),
  phases: z.object(
    Object.fromEntries(PHASES.map((phase) => [phase, PhaseViewSchema])) as {
      [P in typeof PHASES[number]]: typeof PhaseViewSchema;
    },
  ),
  output: z.string().describe("job-level output that belongs to no command"),
  retryOf: JobIdSchema.nullable().describe("the job this one re-runs"),
  reported: ReportedStatusSchema.nullable().optional().describe(
    "the commit status last reported to the forge, for webhook jobs of projects that report",
  ),
});
export type JobView = z.infer<typeof JobViewSchema>;

/** One line of `GET /api/jobs`. */
export const JobSummarySchema = z.object({
  id: JobIdSchema,
  status: JobStatusSchema,
  result: JobResultSchema.nullable(),
  repo: z.string(),
  ref: z.string(),
  job_type: z.string(),
  trigger: TriggerSchema,
  drone: z.string().nullable(),
  attempt: z.int(),
  createdAt: isoTime,
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
});
export type JobSummary = z.infer<typeof JobSummarySchema>;

export const JobListSchema = z.object({
  jobs: z.array(JobSummarySchema),
  next: z.string().nullable().describe("cursor for the next page"),
});
export type JobList = z.infer<typeof JobListSchema>;

/** A connected worker as `GET /api/drones` shows it. */
export const DroneViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  speed: z.number(),
  capacity: z.int(),
  running: z.int(),
  queued: z.int(),
  jobs: z.array(z.string()),
  plugins: z.array(z.string()),
  labels: z.array(z.string()),
  draining: z.boolean(),
  connectedAt: isoTime,
  lastSeen: isoTime,
  queen: z.object({ id: z.string(), url: z.string() }).optional().describe(
    "with several queens (PostgreSQL): the queen the worker is connected to; any queen lists " +
      "the whole fleet, and the drones of another queen have ids `DRONE@QUEEN`",
  ),
});
export type DroneView = z.infer<typeof DroneViewSchema>;
export const DroneListSchema = z.object({ drones: z.array(DroneViewSchema) });

/** `POST /api/jobs` → 201. */
export const JobCreatedSchema = z.object({ id: JobIdSchema, status: JobStatusSchema });

/** Every 4xx body: a sentence for people and, for validation errors, each problem by path. */
export const ApiErrorSchema = z.object({
  error: z.string(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
export type ApiError = z.infer<typeof ApiErrorSchema>;

/** The queen's own note that it sent a job to a drone (recorded beside the worker's events). */
export const JobDispatchedEvent = z.object({
  event: z.literal("job:dispatched"),
  id: JobIdSchema,
  attempt: z.int().min(1),
  drone: z.string(),
  timestamp: z.number(),
});

/**
 * The queen's own note that an attempt went back to its queue before it started (its drone went
 * away, or it was taken back for a free slot elsewhere): the attempt is not charged.
 */
export const JobReturnedEvent = z.object({
  event: z.literal("job:returned"),
  id: JobIdSchema,
  attempt: z.int().min(1),
  timestamp: z.number(),
  reason: z.string(),
});

/** The queen's own ending of a job that no worker reported (lost, cancelled while queued). */
export const QueenJobDoneEvent = z.object({
  event: z.literal("job:done"),
  id: JobIdSchema,
  attempt: z.int().min(0),
  seq: z.literal(0),
  timestamp: z.number(),
  result: JobResultSchema,
  error: z.string().optional(),
});

/** What a job's event stream (SSE, `browser` frames) carries, numbered per job by `n`. */
export const RecordedEventSchema = z.object({
  n: z.int().min(1).describe("position in the job's stream; the SSE id"),
  at: z.number().describe("when the queen recorded it, ms since the Unix epoch"),
  data: z.union([WorkerJobEventSchema, JobDispatchedEvent, JobReturnedEvent, QueenJobDoneEvent]),
});
export type RecordedEvent = z.infer<typeof RecordedEventSchema>;
