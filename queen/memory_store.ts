import type { RecordedEvent } from "../protocol/mod.ts";
import { decodeCursor, encodeCursor } from "./store.ts";
import type { JobFilter, JobPage, JobRecord, Retention, Store } from "./store.ts";

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

/** A store that lives in memory: for tests and short-lived queens. */
export class MemoryStore implements Store {
  #jobs = new Map<string, { record: JobRecord; position: number }>();
  #events = new Map<string, RecordedEvent[]>();
  #logs = new Map<string, Uint8Array[]>();
  #position = 0;

  createJob(record: JobRecord): void {
    if (this.#jobs.has(record.id)) throw new RangeError(`Job id '${record.id}' is already taken`);
    this.#jobs.set(record.id, { record, position: ++this.#position });
    this.#events.set(record.id, []);
    this.#logs.set(record.id, []);
  }

  getJob(id: string): JobRecord | undefined {
    return this.#jobs.get(id)?.record;
  }

  listJobs(filter: JobFilter): JobPage {
    const before = filter.cursor ? decodeCursor(filter.cursor) : Infinity;
    const records: JobRecord[] = [];
    let last = 0;
    for (const { record, position } of [...this.#jobs.values()].toReversed()) {
      if (position >= before || !matchesFilter(record, filter)) continue;
      if (records.length === filter.limit) return { records, next: encodeCursor(last) };
      records.push(record);
      last = position;
    }
    return { records, next: null };
  }

  unfinishedJobs(): JobRecord[] {
    return [...this.#jobs.values()].map((j) => j.record).filter((r) => r.view.status !== "done");
  }

  appendEvent(record: JobRecord, data: RecordedEvent["data"], at: number, log: string) {
    const recorded: RecordedEvent = { n: ++record.lastN, at, data };
    this.#events.get(record.id)?.push(recorded);
    if (log) {
      const bytes = encoder.encode(log);
      this.#logs.get(record.id)?.push(bytes);
      record.logBytes += bytes.length;
    }
    return recorded;
  }

  events(id: string, after = 0): RecordedEvent[] {
    // Event numbers are 1, 2, 3, ... so event n sits at index n - 1.
    return (this.#events.get(id) ?? []).slice(after);
  }

  readLog(id: string, start: number, end: number): Uint8Array {
    const chunks = this.#logs.get(id) ?? [];
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return all.slice(start, end);
  }

  saveJob(_record: JobRecord): void {}

  deleteJob(id: string): boolean {
    const found = this.#jobs.get(id);
    if (!found || found.record.view.status !== "done") return false;
    this.#jobs.delete(id);
    this.#events.delete(id);
    this.#logs.delete(id);
    return true;
  }

  prune(retention: Retention, now: number): number {
    let removed = 0;
    const finished = [...this.#jobs.values()].toReversed().filter((j) =>
      j.record.view.status === "done"
    );
    for (const [index, { record }] of finished.entries()) {
      const tooMany = retention.keepJobs !== undefined && index >= retention.keepJobs;
      const tooOld = retention.keepDays !== undefined &&
        now - Date.parse(record.view.finishedAt ?? record.view.createdAt) >
          retention.keepDays * 86_400_000;
      if ((tooMany || tooOld) && this.deleteJob(record.id)) removed++;
    }
    return removed;
  }

  afterCommit(callback: () => void): void {
    // Nothing to wait for: memory is as durable as this store gets.
    callback();
  }

  close(): void {}
}
