import { z } from "zod";
import { JobIdSchema, JobSpecSchema } from "./job_spec.ts";
import {
  DroneViewSchema,
  JobSummarySchema,
  JobViewSchema,
  RecordedEventSchema,
} from "./job_view.ts";

/** Queen → browser: a proxied `job:*` event (the seed's `browser eventtype, [args]`). */
export const BrowserEvent = z.object({
  event: z.literal("browser"),
  type: z.string(),
  args: z.array(RecordedEventSchema),
});

/** Queen → browser: the whole job, answering `job:query-info`. */
export const JobInfoEvent = z.object({
  event: z.literal("job:info"),
  id: JobIdSchema,
  job: JobViewSchema,
  n: z.int().min(0).describe("the last event number the job holds; live events follow it"),
  omitted: z.record(z.string(), z.int().min(0)).optional().describe(
    "when job:query-info asked for a tail: characters left out at the start of each shortened " +
      "output, by command num ('job' for the job-level output)",
  ),
  complete: z.boolean().optional().describe(
    "false when the job's output outgrew what the queen folds into the view; " +
      "the full log (GET /api/jobs/:id/log) holds the rest",
  ),
  logBytes: z.int().min(0).optional().describe("the size of the job's full log"),
});

/** A queued job as the dashboard lists it: its summary and why it has not gone out yet. */
export const QueuedJobSchema = JobSummarySchema.extend({
  waiting: z.string().nullable(),
});
export type QueuedJob = z.infer<typeof QueuedJobSchema>;

/** Queen → browser: connected drones, the queue and recent jobs, sent again on every change. */
export const OverviewEvent = z.object({
  event: z.literal("overview"),
  drones: z.array(DroneViewSchema),
  queue: z.array(QueuedJobSchema),
  jobs: z.array(JobSummarySchema).describe("the most recent jobs, newest first"),
});
export type Overview = Omit<z.infer<typeof OverviewEvent>, "event">;

export const BrowserErrorEvent = z.object({ event: z.literal("error"), message: z.string() });

/** Queen → browser: a job the browser submitted with `queue:new` is queued. */
export const QueueAcceptedEvent = z.object({
  event: z.literal("queue:accepted"),
  id: JobIdSchema,
});

export const QueenToBrowserSchema = z.discriminatedUnion("event", [
  BrowserEvent,
  JobInfoEvent,
  OverviewEvent,
  BrowserErrorEvent,
  QueueAcceptedEvent,
]);
export type QueenToBrowser = z.infer<typeof QueenToBrowserSchema>;

/** Browser → queen: ask for a job's full data and its live events from then on. */
export const JobQueryInfoEvent = z.object({
  event: z.literal("job:query-info"),
  id: JobIdSchema,
  tail: z.int().min(1).max(100_000).optional().describe(
    "send only the last `tail` lines of each output (see job:info's omitted); all when absent",
  ),
});

/** Browser → queen: send `overview` now and again whenever drones, the queue or jobs change. */
export const OverviewFollowEvent = z.object({ event: z.literal("overview:follow") });

/**
 * Browser → queen: submit a job (the seed's `queue:new`). Needs the API token, either in the
 * frame or through the dashboard session the socket was opened with.
 */
export const BrowserQueueNewEvent = z.object({
  event: z.literal("queue:new"),
  job: JobSpecSchema,
  token: z.string().max(1024).optional(),
});

export const BrowserToQueenSchema = z.discriminatedUnion("event", [
  JobQueryInfoEvent,
  OverviewFollowEvent,
  BrowserQueueNewEvent,
]);
export type BrowserToQueen = z.infer<typeof BrowserToQueenSchema>;
