/**
 * Where the queen keeps jobs and their events. One interface, so that the embedded store can be
 * swapped for a server database shared by several queens.
 */
import type { JobSpec, JobView, RecordedEvent } from "../protocol/mod.ts";

/** A job as stored: the full spec (with secrets, needed to dispatch it) and its current view. */
export interface JobRecord {
  id: string;
  /** The validated spec with defaults applied, secrets included. Never sent to API clients. */
  spec: JobSpec;
  view: JobView;
  /** Per attempt, the highest `seq` recorded, for dropping duplicates. */
  lastSeq: Record<number, number>;
  /** Number of the last recorded event. */
  lastN: number;
  /** Why the job went back to the queue, shown while it waits again. */
  requeued?: string;
}

/** Filters for listing jobs. */
export interface JobFilter {
  status?: string;
  result?: string;
  limit?: number;
}

/** The queen's storage. Synchronous, so that recording and fan-out happen in one step. */
export interface Store {
  /** Adds a new job. Throws a `RangeError` when the id is taken. */
  createJob(record: JobRecord): void;
  getJob(id: string): JobRecord | undefined;
  /** Newest first. */
  listJobs(filter?: JobFilter): JobRecord[];
  /** Jobs not finished yet, oldest first: what a queen must schedule or watch. */
  unfinishedJobs(): JobRecord[];
  /** Records `data` as the job's next event and persists the record's new state. */
  appendEvent(record: JobRecord, data: RecordedEvent["data"], at: number): RecordedEvent;
  /** The job's events after event number `after`, in order. */
  events(id: string, after?: number): RecordedEvent[];
  /** Persists changes to the record made outside `appendEvent`. */
  saveJob(record: JobRecord): void;
  close(): void;
}
