/**
 * Where the queen keeps jobs, their events and their logs. One interface, so that the embedded
 * SQLite store can be swapped for a server database shared by several queens.
 */
import type { JobSpec, JobView, RecordedEvent } from "../protocol/mod.ts";

/**
 * A job as the queen holds it: the full spec (with secrets, needed to dispatch it), its current
 * view, and its positions in its event stream and log. Only the recorder (`recorder.ts`, with the
 * fold of `job_state.ts`) changes a record; the store keeps what it is given.
 */
export interface JobRecord {
  id: string;
  /** The validated spec with defaults applied, secrets included. Never sent to API clients. */
  spec: JobSpec;
  view: JobView;
  /** The last event number folded into `view`. */
  viewN: number;
  /** Per attempt, the highest `seq` recorded, for dropping duplicates. */
  lastSeq: Record<number, number>;
  /** Number of the last recorded event. */
  lastN: number;
  /** Bytes of the merged log so far. */
  logBytes: number;
  /** Whether the log ends with a newline, and the attempt it last showed (to resume it). */
  logEndsWithNewline: boolean;
  logAttempt: number;
  /** Bytes of output folded into `view` (it is capped; the log holds everything). */
  viewBytes: number;
  /** Why the job went back to the queue, shown while it waits again. */
  requeued?: string;
  /** A cancel was asked for while the job ran: resent on reconnect, and no retry follows. */
  cancelRequested?: boolean;
}

/** What one event adds to a job's merged log, at its byte position. */
export interface LogChunk {
  /** Byte offset of the chunk in the job's log. */
  start: number;
  text: string;
  /** Length of `text` in UTF-8 bytes. */
  bytes: number;
  /** `text` as UTF-8, when at hand already (a binary output frame's): stored without encoding. */
  raw?: Uint8Array;
}

/** Filters for listing jobs, newest first. */
export interface JobFilter {
  status?: string;
  result?: string;
  /** Repository URL, exactly. */
  repo?: string;
  branch?: string;
  /** Only jobs created at or after this time (ms since the epoch). */
  since?: number;
  limit: number;
  /** From a previous page's `next`. */
  cursor?: string;
}

/** One page of jobs and the cursor of the next (null on the last page). */
export interface JobPage {
  records: JobRecord[];
  next: string | null;
}

/** How soon `afterCommit` wants its commit. */
export interface CommitOptions {
  /** Commit as soon as the current synchronous step ends, not after the batch timer. */
  soon?: boolean;
}

/** How long finished jobs are kept. */
export interface Retention {
  keepJobs?: number;
  keepDays?: number;
}

/**
 * The queen's storage, shaped so that a server database shared by several queens can implement
 * it: what would be a round trip returns a promise; writes of a running job (`appendEvent`,
 * `saveJob`) are queued and committed in batches, and `afterCommit` says when they are durable.
 *
 * The store stores what it is given and returns it with its positions (event numbers, log
 * offsets, the last `seq` per attempt); it does not fold events or hold live jobs. A record it
 * returns has the view as last saved: for a job that was running, the events after `viewN` are
 * folded in by the recorder (`Recorder.catchUp`).
 */
export interface Store {
  /** Adds a new job, durably. Rejects with a `RangeError` when the id is taken. */
  createJob(record: JobRecord): Promise<void>;
  getJob(id: string): Promise<JobRecord | undefined>;
  listJobs(filter: JobFilter): Promise<JobPage>;
  /** Jobs not finished yet, oldest first: what a queen must schedule or watch. */
  unfinishedJobs(): Promise<JobRecord[]>;
  /** Queues a job's next event (numbered by the recorder) and the log text it adds. */
  appendEvent(id: string, event: RecordedEvent, log?: LogChunk): void;
  /**
   * The job's events after event number `after`, in order, including ones not yet committed; at
   * most `limit` of them (all when not given), so that a long log can be replayed a page at a
   * time instead of held whole.
   */
  events(id: string, after?: number, limit?: number): Promise<RecordedEvent[]>;
  /** Bytes `start` (inclusive) to `end` (exclusive) of the job's merged log, committed or not. */
  readLog(id: string, start: number, end: number): Promise<Uint8Array>;
  /** Queues a write of the record's state (view, positions, flags). */
  saveJob(record: JobRecord): void;
  /** Removes a finished job with its events and log. */
  deleteJob(id: string): Promise<boolean>;
  /** Removes finished jobs beyond the retention; returns how many. */
  prune(retention: Retention, now: number): Promise<number>;
  /**
   * Runs `callback` once everything queued so far is durable (acknowledgements wait on it).
   * With `soon`, that commit is not held for the batch timer: a dispatch waits on it.
   */
  afterCommit(callback: () => void, options?: CommitOptions): void;
  /** Commits what is queued and closes. */
  close(): Promise<void>;
}

/**
 * A job's events after `after`, read from the store `page` at a time: a long log is walked
 * without being held whole.
 */
export async function* storedEvents(
  store: Pick<Store, "events">,
  id: string,
  after = 0,
  page = 64,
): AsyncGenerator<RecordedEvent> {
  while (true) {
    const events = await store.events(id, after, page);
    yield* events;
    if (events.length < page) return;
    after = events[events.length - 1].n;
  }
}

/** Encodes a list position as an opaque cursor. */
export function encodeCursor(position: number): string {
  return btoa(`p${position}`).replaceAll("=", "");
}

/** Decodes a cursor, or throws a `TypeError` saying it is not one of ours. */
export function decodeCursor(cursor: string): number {
  let text: string;
  try {
    text = atob(cursor);
  } catch {
    throw new TypeError("cursor is not valid: use the 'next' value of a previous page");
  }
  const match = text.match(/^p(\d{1,15})$/);
  if (!match) throw new TypeError("cursor is not valid: use the 'next' value of a previous page");
  return Number(match[1]);
}
