import type { RecordedEvent } from "../protocol/mod.ts";
import { decodeCursor, encodeCursor } from "./store.ts";
import type { JobFilter, JobPage, JobRecord, LogChunk, Retention, Store } from "./store.ts";

const encoder = new TextEncoder();

/** Whether a record passes a listing's filters. */
export function matchesFilter(record: JobRecord, filter: JobFilter): boolean {
  const { view, spec } = record;
  if (filter.status && view.status !== filter.status) return false;
  if (filter.result && view.result !== filter.result) return false;
  if (filter.repo && spec.repo.url !== filter.repo) return false;
  if (filter.branch && !("branch" in spec.ref && spec.ref.branch === filter.branch)) return false;
  if (filter.since && Date.parse(view.createdAt) < filter.since) return false;
  return true;
}

/**
 * A store that lives in memory: for tests and short-lived queens. It hands out copies, as a
 * database would, so that what it returns never changes behind its reader's back.
 */
export class MemoryStore implements Store {
  #jobs = new Map<string, { record: JobRecord; position: number }>();
  #events = new Map<string, RecordedEvent[]>();
  #logs = new Map<string, Uint8Array[]>();
  #position = 0;

  createJob(record: JobRecord): Promise<void> {
    if (this.#jobs.has(record.id)) {
      return Promise.reject(new RangeError(`Job id '${record.id}' is already taken`));
    }
    this.#jobs.set(record.id, { record, position: ++this.#position });
    this.#events.set(record.id, []);
    this.#logs.set(record.id, []);
    return Promise.resolve();
  }

  getJob(id: string): Promise<JobRecord | undefined> {
    const found = this.#jobs.get(id);
    return Promise.resolve(found && structuredClone(found.record));
  }

  listJobs(filter: JobFilter): Promise<JobPage> {
    const before = filter.cursor ? decodeCursor(filter.cursor) : Infinity;
    const records: JobRecord[] = [];
    let last = 0;
    for (const { record, position } of [...this.#jobs.values()].toReversed()) {
      if (position >= before || !matchesFilter(record, filter)) continue;
      if (records.length === filter.limit) {
        return Promise.resolve({ records, next: encodeCursor(last) });
      }
      records.push(structuredClone(record));
      last = position;
    }
    return Promise.resolve({ records, next: null });
  }

  unfinishedJobs(): Promise<JobRecord[]> {
    return Promise.resolve(
      [...this.#jobs.values()].filter((j) => j.record.view.status !== "done")
        .map((j) => structuredClone(j.record)),
    );
  }

  appendEvent(id: string, event: RecordedEvent, log?: LogChunk): void {
    this.#events.get(id)?.push(event);
    if (log) this.#logs.get(id)?.push(encoder.encode(log.text));
  }

  events(id: string, after = 0, limit = Infinity): Promise<RecordedEvent[]> {
    // Event numbers are 1, 2, 3, ... so event n sits at index n - 1.
    return Promise.resolve((this.#events.get(id) ?? []).slice(after, after + limit));
  }

  readLog(id: string, start: number, end: number): Promise<Uint8Array> {
    const chunks = this.#logs.get(id) ?? [];
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return Promise.resolve(all.slice(start, end));
  }

  saveJob(record: JobRecord): void {
    const found = this.#jobs.get(record.id);
    if (found) found.record = record;
  }

  deleteJob(id: string): Promise<boolean> {
    return Promise.resolve(this.#delete(id));
  }

  #delete(id: string): boolean {
    const found = this.#jobs.get(id);
    if (!found || found.record.view.status !== "done") return false;
    this.#jobs.delete(id);
    this.#events.delete(id);
    this.#logs.delete(id);
    return true;
  }

  prune(retention: Retention, now: number): Promise<number> {
    let removed = 0;
    const finished = [...this.#jobs.values()].toReversed().filter((j) =>
      j.record.view.status === "done"
    );
    for (const [index, { record }] of finished.entries()) {
      const tooMany = retention.keepJobs !== undefined && index >= retention.keepJobs;
      const tooOld = retention.keepDays !== undefined &&
        now - Date.parse(record.view.finishedAt ?? record.view.createdAt) >
          retention.keepDays * 86_400_000;
      if ((tooMany || tooOld) && this.#delete(record.id)) removed++;
    }
    return Promise.resolve(removed);
  }

  afterCommit(callback: () => void): void {
    // Nothing to wait for: memory is as durable as this store gets.
    callback();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
