/**
 * Commit batching, apart from any SQL: a store queues a job's events and saved records here, and
 * one `write` commits them together a few milliseconds apart, then the callbacks that waited on
 * them (acknowledgements to workers) run. A running job's state is rewritten at most every
 * `stateEveryMs` (its events carry the detail); a new status is written in the next batch.
 */
import type { RecordedEvent } from "../protocol/mod.ts";
import type { JobRecord, LogChunk } from "./store.ts";

/** One event queued for a commit, with the log text it adds. */
export interface PendingEvent {
  id: string;
  event: RecordedEvent;
  log?: LogChunk;
}

/** What one commit writes. */
export interface Batch {
  events: PendingEvent[];
  /**
   * Records whose state is due. They keep changing after the batch is cut: a `write` that waits
   * on anything (a network round trip) must serialize them before its first `await`.
   */
  states: JobRecord[];
}

/** How long and how much a batch gathers. */
export interface BatchTiming {
  /** How long queued events may wait to be committed together (default 3 ms). */
  batchMs?: number;
  /** A batch this large is committed at once (default 2,000 events). */
  batchEvents?: number;
  /** A running job's state is rewritten at most this often (default 500 ms). */
  stateEveryMs?: number;
  /**
   * Told when a commit started by the batcher itself (its timer) fails; without it the error is
   * thrown where nothing catches it. Nothing of that batch is acknowledged either way.
   */
  onError?: (error: unknown) => void;
}

/** Gathers writes into batches; see the module's comment. */
export class CommitBatcher {
  readonly #write: (batch: Batch) => void | Promise<void>;
  readonly #batchMs: number;
  readonly #batchEvents: number;
  readonly #stateEveryMs: number;
  readonly #onError: ((error: unknown) => void) | undefined;
  #events: PendingEvent[] = [];
  /** Events of a batch being written by an asynchronous `write`: reads still see them. */
  #writingEvents: PendingEvent[] = [];
  #writing: Promise<void> | undefined;
  /** Records whose state is to be written: id → the record as last saved. */
  #dirty = new Map<string, JobRecord>();
  #stateWrittenAt = new Map<string, { at: number; status: string }>();
  #callbacks: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When `#timer` fires (`performance.now()` clock). */
  #timerDue = 0;
  /** A flush is queued for the end of the current synchronous step. */
  #flushQueued = false;

  constructor(write: (batch: Batch) => void | Promise<void>, timing: BatchTiming = {}) {
    this.#write = write;
    this.#batchMs = timing.batchMs ?? 3;
    this.#batchEvents = timing.batchEvents ?? 2_000;
    this.#stateEveryMs = timing.stateEveryMs ?? 500;
    this.#onError = timing.onError;
  }

  /** A flush nobody waits on. */
  #background(): void {
    const flushed = this.flush();
    if (flushed && this.#onError) flushed.catch(this.#onError);
  }

  /** Queues an event (and its log text) for the next commit. */
  append(pending: PendingEvent): void {
    this.#events.push(pending);
    this.#schedule(this.#events.length >= this.#batchEvents);
  }

  /** Queues a write of the record's state. */
  save(record: JobRecord): void {
    this.#dirty.set(record.id, record);
    // A state change alone can wait for a timer already set (the state's own, a few hundred
    // milliseconds out): the rows it writes are rewritten from the events after a crash anyway.
    if (this.#timer === undefined) this.#arm(this.#batchMs);
  }

  /**
   * Runs `callback` once everything queued so far is committed; with `soon`, the commit happens
   * when the caller's synchronous step ends rather than after `batchMs` (a worker waits on it).
   */
  afterCommit(callback: () => void, soon = false): void {
    this.#callbacks.push(callback);
    this.#schedule(soon);
  }

  /** Whether the job's state waits to be written. */
  isDirty(id: string): boolean {
    return this.#dirty.has(id);
  }

  /** The job's events not committed yet, in order. */
  pending(id: string): PendingEvent[] {
    return [...this.#writingEvents, ...this.#events].filter((p) => p.id === id);
  }

  /**
   * `stored` (the job's committed events after event number `after`, in order, at most `limit`)
   * followed by those still queued, up to `limit` in all: what a read of the job's events must
   * see. A full page of stored events is returned as it is: more committed ones may follow it.
   */
  withPending(
    id: string,
    stored: RecordedEvent[],
    after: number,
    limit = Infinity,
  ): RecordedEvent[] {
    if (stored.length >= limit) return stored;
    let last = stored.length ? stored[stored.length - 1].n : after;
    for (const { event } of this.pending(id)) {
      if (stored.length >= limit) break;
      if (event.n > last) {
        stored.push(event);
        last = event.n;
      }
    }
    return stored;
  }

  /** Forgets what it knew of a removed job. */
  forget(id: string): void {
    this.#dirty.delete(id);
    this.#stateWrittenAt.delete(id);
  }

  /**
   * Commits what is queued (every saved state with `allStates`), then runs the callbacks waiting
   * on it. With a synchronous `write` all of it happens before this returns.
   */
  flush(allStates = false): void | Promise<void> {
    if (this.#writing) return this.#writing.then(() => this.flush(allStates));
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const events = this.#events;
    const callbacks = this.#callbacks;
    this.#events = [];
    this.#callbacks = [];
    const now = Date.now();
    const states: JobRecord[] = [];
    for (const [id, record] of this.#dirty) {
      const written = this.#stateWrittenAt.get(id);
      const changed = !written || written.status !== record.view.status ||
        record.view.status === "done";
      if (allStates || changed || now - written.at >= this.#stateEveryMs) states.push(record);
    }
    for (const record of states) {
      this.#dirty.delete(record.id);
      if (record.view.status === "done") this.#stateWrittenAt.delete(record.id);
      else this.#stateWrittenAt.set(record.id, { at: now, status: record.view.status });
    }
    const done = () => {
      if (this.#dirty.size) this.#arm(this.#stateEveryMs);
      for (const callback of callbacks) callback();
    };
    if (!events.length && !states.length) return done();
    const written = this.#write({ events, states });
    if (!(written instanceof Promise)) return done();
    this.#writingEvents = events;
    return this.#writing = written.finally(() => {
      this.#writing = undefined;
      this.#writingEvents = [];
    }).then(done);
  }

  /** Commits everything queued and stops the timer. */
  close(): void | Promise<void> {
    clearTimeout(this.#timer);
    return this.flush(true);
  }

  /**
   * Commits soon: events and acknowledgements wait at most `batchMs`, even when the timer
   * already set is the state's (`stateEveryMs`): an acknowledgement held that long would stall a
   * worker's stream, which sends only so much ahead of the acknowledgements.
   */
  #schedule(now: boolean): void {
    // "Now" still waits for the caller's synchronous step to end (the queen folds the event into
    // the job's view right after appending it): the state written must include it.
    if (now) {
      // One flush for a whole dispatch pass, however many jobs it sent.
      if (this.#flushQueued) return;
      this.#flushQueued = true;
      return queueMicrotask(() => {
        this.#flushQueued = false;
        this.#background();
      });
    }
    this.#arm(this.#batchMs);
  }

  /** Makes sure a flush happens within `ms`. */
  #arm(ms: number): void {
    const due = performance.now() + ms;
    if (this.#timer !== undefined && this.#timerDue <= due) return;
    clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => this.#background(), ms);
  }
}
