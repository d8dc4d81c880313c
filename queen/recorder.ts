/**
 * The one writer of a job's record: every event the queen keeps goes through `record`, in this
 * order: cap the output at the job's log limit, turn it into log text, append it to the store,
 * fold it into the view, publish it to followers, and (once the store made it durable)
 * acknowledge it. The few changes of a record that are not events (back in the queue, a cancel
 * asked for, why it waits) are made here too, so that nothing else mutates a record.
 */
import { capText, utf8Length } from "../protocol/cap_text.ts";
import type { JobSpec, RecordedEvent } from "../protocol/mod.ts";
import type { Hub } from "./hub.ts";
import { foldEvent, newJobView } from "./job_state.ts";
import { LogBuilder } from "./job_log.ts";
import type { JobRecord, LogChunk, Store } from "./store.ts";

/** Bytes of output kept per job when the queen sets no `--max-log-bytes`. */
export const DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024;

export { utf8Length };

/**
 * `data` with its output cut to what fits in a log of `limit` bytes that holds `logBytes`
 * already. Past the limit the text is dropped, but the event is kept (empty) so that its `seq`
 * is stored: after a restart the queen must expect the worker's next seq, not this one. The
 * event that reaches the limit ends with a truncation marker.
 */
export function capOutput(
  data: RecordedEvent["data"],
  logBytes: number,
  limit: number,
): RecordedEvent["data"] {
  if (!("text" in data) || !data.text) return data;
  if (logBytes >= limit) return { ...data, text: "" };
  const room = limit - logBytes;
  const capped = capText(data.text, room);
  if (!capped.cut && capped.bytes < room) return data;
  // Cut at the limit, so the marker takes the log past it and later output is dropped above.
  return {
    ...data,
    text: capped.text +
      `\n[strider: output truncated: the job passed its ${limit}-byte log limit]\n`,
  };
}

/** A new job's record, before any event. */
export function newRecord(
  id: string,
  spec: JobSpec,
  createdAt: number,
  retryOf: string | null = null,
): JobRecord {
  return {
    id,
    spec,
    view: { ...newJobView(id, spec, createdAt), retryOf },
    viewN: 0,
    lastSeq: {},
    lastN: 0,
    logBytes: 0,
    logEndsWithNewline: true,
    logAttempt: 0,
    viewBytes: 0,
  };
}

/** Records events of jobs: see the module's comment. */
export class Recorder {
  readonly #store: Store;
  readonly #hub: Hub;
  readonly #maxLogBytes: number;

  constructor(store: Store, hub: Hub, maxLogBytes = DEFAULT_MAX_LOG_BYTES) {
    this.#store = store;
    this.#hub = hub;
    this.#maxLogBytes = maxLogBytes;
  }

  /**
   * Records `data` as the job's next event at time `at`; `durable` runs once it is committed
   * (a worker's acknowledgement, a frame that must not precede what it announces). `bytes`, when
   * given, are the UTF-8 of the event's text as received: stored as they are, not encoded again.
   */
  record(
    record: JobRecord,
    data: RecordedEvent["data"],
    at: number,
    durable?: () => void,
    bytes?: Uint8Array,
  ): RecordedEvent {
    const received = data;
    data = capOutput(data, record.logBytes, this.#maxLogBytes);
    const builder = LogBuilder.resume(record.logAttempt, record.logEndsWithNewline);
    const text = builder.append(data);
    record.logAttempt = builder.attempt;
    record.logEndsWithNewline = builder.endsWithNewline;
    let chunk: LogChunk | undefined;
    if (text) {
      // The received bytes are the chunk's when the log adds the event's text, uncut.
      const raw = bytes && data === received && "text" in data && text === data.text
        ? bytes
        : undefined;
      chunk = raw
        ? { start: record.logBytes, text, bytes: raw.byteLength, raw }
        : { start: record.logBytes, text, bytes: utf8Length(text) };
      record.logBytes += chunk.bytes;
    }
    // Queen-made events carry seq 0; a worker's events count up per attempt.
    if ("seq" in data && data.seq > 0) record.lastSeq[data.attempt] = data.seq;
    const recorded: RecordedEvent = { n: ++record.lastN, at, data };
    this.#store.appendEvent(record.id, recorded, chunk);
    this.#fold(record, recorded);
    this.#store.saveJob(record);
    this.#hub.publish(record.id, recorded);
    if (durable) this.#store.afterCommit(durable);
    return recorded;
  }

  /**
   * Folds into a record loaded from the store the events its view lags behind (a running job's
   * view is saved less often than its events), and resumes its log from the view's attempt.
   */
  catchUp(record: JobRecord, events: readonly RecordedEvent[]): void {
    const lagging = events.filter((event) => event.n > record.viewN);
    for (const event of lagging) this.#fold(record, event);
    if (lagging.length) record.logAttempt = record.view.attempt;
  }

  /** The job waits in the queen's queue again, `why` shown with it; its attempt is charged. */
  requeue(record: JobRecord, why: string): void {
    record.view.status = "queued";
    record.view.drone = null;
    record.requeued = why;
    record.view.waiting = `re-queued: ${why}`;
    this.#store.saveJob(record);
  }

  /** Forgets why the job was re-queued: it goes out again (or came back uncharged). */
  clearRequeued(record: JobRecord): void {
    if (record.requeued === undefined) return;
    record.requeued = undefined;
    this.#store.saveJob(record);
  }

  /** Keeps with the job that a cancel was asked for, so a reconnect or a lease honours it. */
  requestCancel(record: JobRecord): void {
    record.cancelRequested = true;
    this.#store.saveJob(record);
  }

  /** Says why a queued job waits (and why it was re-queued, if it was). */
  setWaiting(record: JobRecord, why: string): void {
    const waiting = record.requeued ? `${why} (re-queued: ${record.requeued})` : why;
    if (record.view.waiting === waiting) return;
    record.view.waiting = waiting;
    this.#store.saveJob(record);
  }

  #fold(record: JobRecord, event: RecordedEvent): void {
    record.viewBytes += foldEvent(record.view, event, record.viewBytes);
    record.viewN = event.n;
  }
}
