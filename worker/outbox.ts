/**
 * The worker's side of zero-loss streaming: every `job:*` event gets its attempt's next `seq`
 * and is kept until the queen acknowledges it, so a reconnect resends exactly what the queen
 * may not have recorded. The queen drops what it already has.
 */
import type { RunningAttempt, WorkerJobEvent } from "../protocol/mod.ts";
import type { JobEventBody } from "./job_run.ts";

interface AttemptLog {
  id: string;
  attempt: number;
  seq: number;
  unacked: WorkerJobEvent[];
  done: boolean;
}

/** Numbers, keeps and resends one worker's job events. */
export class Outbox {
  #attempts = new Map<string, AttemptLog>();
  #send: (event: WorkerJobEvent) => boolean;
  #drained: (() => void)[] = [];

  /** `send` delivers an event now, or returns false when the queen is not reachable. */
  constructor(send: (event: WorkerJobEvent) => boolean) {
    this.#send = send;
  }

  /** Numbers `body` as the next event of the attempt and sends it when connected. */
  push(id: string, attempt: number, body: JobEventBody): WorkerJobEvent {
    const key = `${id}\u0000${attempt}`;
    let log = this.#attempts.get(key);
    if (!log) this.#attempts.set(key, log = { id, attempt, seq: 0, unacked: [], done: false });
    const event = { ...body, id, attempt, seq: ++log.seq } as WorkerJobEvent;
    log.unacked.push(event);
    if (event.event === "job:done") log.done = true;
    this.#send(event);
    return event;
  }

  /** The queen recorded every event of the attempt up to `seq`. */
  ack(id: string, attempt: number, seq: number): void {
    const key = `${id}\u0000${attempt}`;
    const log = this.#attempts.get(key);
    if (!log) return;
    const keep = log.unacked.findIndex((e) => e.seq > seq);
    log.unacked = keep === -1 ? [] : log.unacked.slice(keep);
    if (log.done && log.unacked.length === 0) this.#attempts.delete(key);
    if (this.pending() === 0) { for (const resolve of this.#drained.splice(0)) resolve(); }
  }

  /** Forgets an attempt the queen has superseded: its events would be refused. */
  drop(id: string, attempt: number): void {
    this.#attempts.delete(`${id}\u0000${attempt}`);
    if (this.pending() === 0) { for (const resolve of this.#drained.splice(0)) resolve(); }
  }

  /** Resends every unacknowledged event, in order, after a reconnect. */
  resend(): void {
    for (const log of this.#attempts.values()) {
      for (const event of log.unacked) if (!this.#send(event)) return;
    }
  }

  /** The attempts to list in `drone:info.running`: unfinished, or finished but unacknowledged. */
  running(): RunningAttempt[] {
    return [...this.#attempts.values()].map(({ id, attempt, seq }) => ({ id, attempt, seq }));
  }

  /** Events not yet acknowledged. */
  pending(): number {
    let count = 0;
    for (const log of this.#attempts.values()) count += log.unacked.length;
    return count;
  }

  /** Resolves once every event is acknowledged, or after `timeoutMs`. */
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
}
