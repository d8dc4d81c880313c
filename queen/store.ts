/**
 * Where the queen keeps jobs, their events and their logs. One interface, so that the embedded
 * SQLite store can be swapped for a server database shared by several queens.
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

/** How long finished jobs are kept. */
export interface Retention {
  keepJobs?: number;
  keepDays?: number;
}

/** The queen's storage. Reads are synchronous, so recording and fan-out happen in one step. */
export interface Store {
  /** Adds a new job. Throws a `RangeError` when the id is taken. */
  createJob(record: JobRecord): void;
  getJob(id: string): JobRecord | undefined;
  listJobs(filter: JobFilter): JobPage;
  /** Jobs not finished yet, oldest first: what a queen must schedule or watch. */
  unfinishedJobs(): JobRecord[];
  /** Records `data` as the job's next event, and `log` as what it adds to the job's log. */
  appendEvent(
    record: JobRecord,
    data: RecordedEvent["data"],
    at: number,
    log: string,
  ): RecordedEvent;
  /** The job's events after event number `after`, in order, including ones not yet committed. */
  events(id: string, after?: number): RecordedEvent[];
  /** Bytes `start` (inclusive) to `end` (exclusive) of the job's merged log. */
  readLog(id: string, start: number, end: number): Uint8Array;
  /** Persists changes to the record made outside `appendEvent`. */
  saveJob(record: JobRecord): void;
  /** Removes a finished job with its events and log. */
  deleteJob(id: string): boolean;
  /** Removes finished jobs beyond the retention; returns how many. */
  prune(retention: Retention, now: number): number;
  /** Runs `callback` once everything recorded so far is durable (acknowledgements wait on it). */
  afterCommit(callback: () => void): void;
  close(): void;
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
