import { z } from "zod";
import { LIMITS } from "./limits.ts";
import { FanOutSchema } from "./matrix.ts";
import { DispatchedJobSchema, JobIdSchema, NameSchema, PhaseSchema } from "./job_spec.ts";

/** The results a finished job can have (DESIGN.md, Job lifecycle). */
export const JobResultSchema = z.enum([
  "passed",
  "failed",
  "errored",
  "cancelled",
  "timeout",
  "lost",
]);
export type JobResult = z.infer<typeof JobResultSchema>;

const attempt = z.int().min(1).max(1000);
const seq = z.int().min(1).max(Number.MAX_SAFE_INTEGER);
const timestamp = z.number().int().nonnegative().describe("milliseconds since the Unix epoch");
const output = z.string().max(LIMITS.output);
const num = z.int().min(0).max(1_000_000);
/** The capability both sides announce; see protocol/output_frame.ts for the layout. */
const binaryOutput = z.int().min(1).max(255).optional().describe(
  "the newest binary output frame layout this side reads (protocol/README.md, " +
    '"Binary output frames"); output goes in binary frames only when both sides announce it',
);
const exitCode = z.int().min(-1).max(255).describe("-1 when the command could not run");

/** Every `job:*` event from a worker names its job, its attempt and its per-attempt `seq`. */
const jobEvent = <E extends string, S extends z.ZodRawShape>(event: E, shape: S) =>
  z.object({ event: z.literal(event), id: JobIdSchema, attempt, seq, ...shape });

// The seed's "events the remote fires to the drone".
export const JobQueuedEvent = jobEvent("job:queued", { timestamp });
export const JobStartedEvent = jobEvent("job:started", { timestamp });
export const JobCmdStartEvent = jobEvent("job:cmd:start", {
  num,
  command: z.string().max(LIMITS.text),
  screencmd: z.string().max(LIMITS.text).describe("the sanitized command shown to people"),
  phase: PhaseSchema,
  plugin: z.string().max(LIMITS.name).optional(),
  timestamp: timestamp.optional(),
});
export const JobCmdDoneEvent = jobEvent("job:cmd:done", {
  num,
  exitCode,
  timestamp: timestamp.optional(),
});
export const JobCmdStdoutEvent = jobEvent("job:cmd:stdout", { num, text: output });
export const JobCmdStderrEvent = jobEvent("job:cmd:stderr", { num, text: output });
export const JobPluginEvent = jobEvent("job:plugin", {
  plugin: z.string().max(LIMITS.name),
  data: z.unknown().optional(),
});
export const JobStdoutEvent = jobEvent("job:stdout", { text: output });
export const JobStderrEvent = jobEvent("job:stderr", { text: output });
export const JobTestedEvent = jobEvent("job:tested", { code: exitCode, timestamp });
export const JobDeployedEvent = jobEvent("job:deployed", { code: exitCode, timestamp });
export const JobDoneEvent = jobEvent("job:done", {
  timestamp,
  result: JobResultSchema.exclude(["lost"]).describe("beyond the seed: how the attempt ended"),
  error: z.string().max(LIMITS.text).optional().describe("why the job errored, for people"),
  fan_out: FanOutSchema.optional().describe(
    "the repository's strider.json asks for a build: the queen makes its jobs",
  ),
});

/** The events a worker streams about a job; these are recorded and numbered by `seq`. */
export const WorkerJobEventSchema = z.discriminatedUnion("event", [
  JobQueuedEvent,
  JobStartedEvent,
  JobCmdStartEvent,
  JobCmdDoneEvent,
  JobCmdStdoutEvent,
  JobCmdStderrEvent,
  JobPluginEvent,
  JobStdoutEvent,
  JobStderrEvent,
  JobTestedEvent,
  JobDeployedEvent,
  JobDoneEvent,
]);
export type WorkerJobEvent = z.infer<typeof WorkerJobEventSchema>;
export type WorkerJobEventName = WorkerJobEvent["event"];
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A job event before the worker's outbox numbers it (`id`, `attempt` and `seq` come then). */
export type JobEventBody = DistributiveOmit<WorkerJobEvent, "id" | "attempt" | "seq">;

/**
 * A dispatch's lease token: a secret the queen sends with `queue:new` to the one worker it picks,
 * and that worker alone proves the attempt is its own with. Never logged, never shown.
 */
export const LeaseTokenSchema = z.string().min(16).max(200).describe(
  "secret proof that the holder was dispatched this attempt; never logged or shown",
);

/**
 * An attempt a reconnecting worker is still running, with the last `seq` it produced and the
 * lease token `queue:new` gave it: a claim without the right token is refused.
 */
export const RunningAttemptSchema = z.object({
  id: JobIdSchema,
  attempt,
  seq: z.int().min(0),
  lease: LeaseTokenSchema.optional(),
});
export type RunningAttempt = z.infer<typeof RunningAttemptSchema>;

export const DroneInfoEvent = z.object({
  event: z.literal("drone:info"),
  name: NameSchema,
  version: z.string().max(LIMITS.name),
  protocol: z.int().min(1).max(1000),
  speed: z.number().positive().max(1_000_000),
  capacity: z.int().min(1).max(10_000),
  plugins: z.array(NameSchema).max(LIMITS.entries),
  labels: z.array(NameSchema).max(LIMITS.entries),
  running: z.array(RunningAttemptSchema).max(10_000),
  draining: z.boolean().optional().describe("the worker takes no new jobs (it is shutting down)"),
  accepts: z.int().min(0).max(1_000_000).optional().describe(
    "how many more jobs the worker takes before it exits (--max-jobs); absent: no limit",
  ),
  binary_output: binaryOutput,
});
export type DroneInfo = z.infer<typeof DroneInfoEvent>;

export const PongEvent = z.object({ event: z.literal("pong"), t: timestamp });
export const ErrorEvent = z.object({
  event: z.literal("error"),
  message: z.string().max(LIMITS.text),
  id: JobIdSchema.optional().describe("the job whose dispatch (queue:new) this error refuses"),
  attempt: attempt.optional().describe("the attempt of that dispatch"),
});

/** The worker's answer to `queue:take`: whether the job was still waiting, and so is given back. */
export const QueueTakenEvent = z.object({
  event: z.literal("queue:taken"),
  id: JobIdSchema,
  attempt,
  taken: z.boolean().describe(
    "true: it was waiting and the worker dropped it; false: it has started (or is unknown)",
  ),
});

/** Every frame a worker may send to the queen. */
export const WorkerFrameSchema = z.discriminatedUnion("event", [
  ...WorkerJobEventSchema.options,
  DroneInfoEvent,
  PongEvent,
  ErrorEvent,
  QueueTakenEvent,
]);
export type WorkerFrame = z.infer<typeof WorkerFrameSchema>;

// The seed's "events the drone will fire to the remote", plus DESIGN.md's additions.
export const DroneQueryInfoEvent = z.object({
  event: z.literal("drone:query-info"),
  binary_output: binaryOutput,
});
export const QueueNewEvent = z.object({
  event: z.literal("queue:new"),
  attempt,
  lease: LeaseTokenSchema,
  job: DispatchedJobSchema,
});
/**
 * The queen asks for a job back that waits in the worker's own queue (not started), to give it
 * to a drone with a free slot. The worker answers `queue:taken`.
 */
export const QueueTakeEvent = z.object({
  event: z.literal("queue:take"),
  id: JobIdSchema,
  attempt,
});
export const JobCancelEvent = z.object({
  event: z.literal("job:cancel"),
  id: JobIdSchema,
  attempt,
  reason: z.enum(["cancelled", "timeout", "superseded"]),
});
export const JobAckEvent = z.object({
  event: z.literal("job:ack"),
  id: JobIdSchema,
  attempt,
  seq: seq.describe("every event of this attempt up to and including seq is recorded"),
});
export const PingEvent = z.object({ event: z.literal("ping"), t: timestamp });
export const DroneDrainEvent = z.object({ event: z.literal("drone:drain") });

/** Every frame the queen may send to a worker. */
export const QueenFrameSchema = z.discriminatedUnion("event", [
  DroneQueryInfoEvent,
  QueueNewEvent,
  QueueTakeEvent,
  JobCancelEvent,
  JobAckEvent,
  PingEvent,
  DroneDrainEvent,
  ErrorEvent,
]);
export type QueenFrame = z.infer<typeof QueenFrameSchema>;

/** How one attempt ended, as its worker reports it (only the queen decides `lost`). */
export type AttemptResult = Exclude<JobResult, "lost">;
