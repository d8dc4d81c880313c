import { z } from "zod";
import { JobIdSchema } from "./job_spec.ts";
import { JobViewSchema, RecordedEventSchema } from "./job_view.ts";

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
});

export const BrowserErrorEvent = z.object({ event: z.literal("error"), message: z.string() });

export const QueenToBrowserSchema = z.discriminatedUnion("event", [
  BrowserEvent,
  JobInfoEvent,
  BrowserErrorEvent,
]);
export type QueenToBrowser = z.infer<typeof QueenToBrowserSchema>;

/** Browser → queen: ask for a job's full data and its live events from then on. */
export const JobQueryInfoEvent = z.object({
  event: z.literal("job:query-info"),
  id: JobIdSchema,
});

export const BrowserToQueenSchema = z.discriminatedUnion("event", [JobQueryInfoEvent]);
export type BrowserToQueen = z.infer<typeof BrowserToQueenSchema>;
