/**
 * The worker's side of zero-loss streaming: every `job:*` event gets its attempt's next `seq`
 * and is kept until the queen acknowledges it, so a reconnect resends exactly what the queen
 * may not have recorded; the queen drops what it already has.
 *
 * Memory is bounded: past a limit per attempt, newer events go to a spool file in the worker's
 * workdir and are read back, in order, as acknowledgements make room. A job printing hundreds
 * of megabytes while the queen is away costs disk, not memory.
 */
import { join } from "node:path";
import type { JobEventBody, RunningAttempt, WorkerJobEvent } from "../protocol/mod.ts";
import { attemptKey } from "../protocol/attempt_key.ts";
import { Spool } from "./spool.ts";

/**
 * Unacknowledged events kept in memory per attempt, in bytes (of JSON, or for output of its text
 * and a header), before spooling.
 */
export const DEFAULT_MEMORY_LIMIT = 4 * 1024 * 1024;
/**
 * And in number: a reconnect resends them all at once, which must stay well inside the queen's
 * frame burst (see queen/drone.ts) even for a worker holding several attempts.
 */
export const MAX_MEMORY_EVENTS = 10_000;

interface AttemptLog {
  id: string;
  attempt: number;
  seq: number;
  /** Oldest unacknowledged events, contiguous in seq, sent or ready to send. */
  memory: Kept[];
  memoryBytes: number;
  /** Newer events waiting on disk; never sent before they move to memory. */
  spool: Spool | undefined;
  done: boolean;
}

/**
 * An event kept until acknowledged, with its JSON when that was made (output is sent in binary
 * frames where the queen reads them, so its JSON is made only when needed) and its size.
 */
interface Kept {
  event: WorkerJobEvent;
  line: string | undefined;
  size: number;
}

/** The size an event counts for in memory: its JSON's length, or its text's and a header's. */
function keep(event: WorkerJobEvent, line?: string): Kept {
  if (line === undefined && "text" in event && typeof event.text === "string") {
    return { event, line, size: event.text.length + 128 };
  }
  line ??= JSON.stringify(event);
  return { event, line, size: line.length };
}

/** Numbers, keeps and resends one worker's job events. */
export class Outbox {
  #attempts = new Map<string, AttemptLog>();
  #send: (event: WorkerJobEvent, line: string | undefined) => boolean;
  #roomWaiters: (() => void)[] = [];
  #drained: (() => void)[] = [];
  readonly #spoolDir: string;
  readonly #memoryLimit: number;

  /**
   * `send` delivers an event (with its JSON when already encoded) now, or returns false when
   * the queen is not reachable.
   */
  constructor(
    send: (event: WorkerJobEvent, line: string | undefined) => boolean,
    options: { spoolDir: string; memoryLimit?: number },
  ) {
    this.#send = send;
    this.#spoolDir = options.spoolDir;
    this.#memoryLimit = options.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
  }

  /** Numbers `body` as the next event of the attempt and sends it when connected. */
  push(id: string, attempt: number, body: JobEventBody): WorkerJobEvent {
    const key = attemptKey(id, attempt);
    let log = this.#attempts.get(key);
    if (!log) {
      log = { id, attempt, seq: 0, memory: [], memoryBytes: 0, spool: undefined, done: false };
      this.#attempts.set(key, log);
    }
    const event = { ...body, id, attempt, seq: ++log.seq } as WorkerJobEvent;
    if (event.event === "job:done") log.done = true;
    const kept = keep(event);
    if (
      log.spool?.pending || log.memoryBytes + kept.size > this.#memoryLimit ||
      log.memory.length >= MAX_MEMORY_EVENTS
    ) {
      log.spool ??= new Spool(join(this.#spoolDir, `${encodeURIComponent(id)}.${attempt}.jsonl`));
      log.spool.append(kept.line ?? JSON.stringify(event));
      return event;
    }
    log.memory.push(kept);
    log.memoryBytes += kept.size;
    this.#send(event, kept.line);
    return event;
  }

  /** The queen recorded every event of the attempt up to `seq`. */
  ack(id: string, attempt: number, seq: number): void {
    const key = attemptKey(id, attempt);
    const log = this.#attempts.get(key);
    if (!log) return;
    let dropped = 0;
    while (dropped < log.memory.length && log.memory[dropped].event.seq <= seq) {
      log.memoryBytes -= log.memory[dropped].size;
      dropped++;
    }
    log.memory.splice(0, dropped);
    this.#refill(log);
    if (log.done && log.memory.length === 0 && !log.spool?.pending) this.#forget(key, log);
    this.#notifyIfDrained();
    if (this.#roomWaiters.length && this.#hasRoom(id, attempt)) {
      for (const resolve of this.#roomWaiters.splice(0)) resolve();
    }
  }

  #hasRoom(id: string, attempt: number): boolean {
    const log = this.#attempts.get(attemptKey(id, attempt));
    return !log || (!log.spool?.pending && log.memoryBytes < this.#memoryLimit &&
      log.memory.length < MAX_MEMORY_EVENTS);
  }

  /**
   * Resolves once the attempt's events fit in memory again, or after `timeoutMs`. A job's output
   * is read no faster than the queen takes it while connected: spooling hundreds of megabytes to
   * disk and back would cost more than waiting.
   */
  whenRoom(id: string, attempt: number, timeoutMs: number): Promise<void> {
    if (this.#hasRoom(id, attempt)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#roomWaiters.push(done);
    });
  }

  /** Forgets an attempt the queen has superseded: its events would be refused. */
  drop(id: string, attempt: number): void {
    const key = attemptKey(id, attempt);
    const log = this.#attempts.get(key);
    if (log) this.#forget(key, log);
    this.#notifyIfDrained();
  }

  /** Resends every unacknowledged event, in order, after a reconnect. */
  resend(): void {
    for (const log of this.#attempts.values()) {
      for (const { event, line } of log.memory) if (!this.#send(event, line)) return;
    }
  }

  /** The attempts to list in `drone:info.running`: unfinished, or finished but unacknowledged. */
  running(): RunningAttempt[] {
    return [...this.#attempts.values()].map(({ id, attempt, seq }) => ({ id, attempt, seq }));
  }

  /** Events not yet acknowledged, in memory and spooled. */
  pending(): number {
    let count = 0;
    for (const log of this.#attempts.values()) {
      count += log.memory.length + (log.spool?.pending ?? 0);
    }
    return count;
  }

  /** Bytes of unacknowledged events held in memory. */
  memoryBytes(): number {
    let bytes = 0;
    for (const log of this.#attempts.values()) bytes += log.memoryBytes;
    return bytes;
  }

  /** Resolves once every event is acknowledged (true), or after `timeoutMs` (false). */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.pending() === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#drained.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Moves spooled events into memory as room allows, sending them: one at a time, so what is in
   * flight stays near the limit (a batch of large output events would overshoot it many times
   * over, and stall the worker while it parsed them).
   */
  #refill(log: AttemptLog): void {
    while (
      log.spool?.pending && log.memoryBytes < this.#memoryLimit &&
      log.memory.length < MAX_MEMORY_EVENTS
    ) {
      for (const line of log.spool.take(1)) {
        const kept = keep(JSON.parse(line) as WorkerJobEvent, line);
        log.memory.push(kept);
        log.memoryBytes += kept.size;
        this.#send(kept.event, kept.line);
      }
    }
    if (log.spool && !log.spool.pending) {
      log.spool.remove();
      log.spool = undefined;
    }
  }

  #forget(key: string, log: AttemptLog): void {
    log.spool?.remove();
    this.#attempts.delete(key);
  }

  #notifyIfDrained(): void {
    if (this.pending() === 0) { for (const resolve of this.#drained.splice(0)) resolve(); }
  }
}
