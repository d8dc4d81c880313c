import type { RecordedEvent } from "../protocol/mod.ts";
import type { JobFilter, JobRecord, Store } from "./store.ts";

/** A store that lives in memory: for tests and short-lived queens. */
export class MemoryStore implements Store {
  #jobs = new Map<string, JobRecord>();
  #events = new Map<string, RecordedEvent[]>();

  createJob(record: JobRecord): void {
    if (this.#jobs.has(record.id)) throw new RangeError(`Job id '${record.id}' is already taken`);
    this.#jobs.set(record.id, record);
    this.#events.set(record.id, []);
  }

  getJob(id: string): JobRecord | undefined {
    return this.#jobs.get(id);
  }

  listJobs(filter: JobFilter = {}): JobRecord[] {
    const out: JobRecord[] = [];
    for (const record of [...this.#jobs.values()].toReversed()) {
      if (filter.status && record.view.status !== filter.status) continue;
      if (filter.result && record.view.result !== filter.result) continue;
      out.push(record);
      if (filter.limit && out.length >= filter.limit) break;
    }
    return out;
  }

  unfinishedJobs(): JobRecord[] {
    return [...this.#jobs.values()].filter((r) => r.view.status !== "done");
  }

  appendEvent(record: JobRecord, data: RecordedEvent["data"], at: number): RecordedEvent {
    const recorded: RecordedEvent = { n: ++record.lastN, at, data };
    this.#events.get(record.id)?.push(recorded);
    return recorded;
  }

  events(id: string, after = 0): RecordedEvent[] {
    const all = this.#events.get(id) ?? [];
    // Event numbers are 1, 2, 3, ... so event n sits at index n - 1.
    return all.slice(after);
  }

  saveJob(_record: JobRecord): void {}

  close(): void {}
}
