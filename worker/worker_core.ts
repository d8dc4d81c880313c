/**
 * The worker's decisions, without a socket: which dispatched attempts start now and which wait
 * (capacity), what an ephemeral worker (`--max-jobs`) still accepts, draining, the lease token
 * of every attempt held (its proof on reconnect), and the answers to `queue:take` and
 * `job:cancel`. It receives decoded queen frames and acts through the functions it is given, so
 * `worker.ts` only wires a connection, an outbox and job runs to it.
 */
import type {
  AttemptResult,
  DispatchedJob,
  DroneInfo,
  JobEventBody,
  QueenFrame,
  RunningAttempt,
  WorkerFrame,
} from "../protocol/mod.ts";
import { attemptKey } from "../protocol/attempt_key.ts";

/** What the core steers of one attempt's run (a `JobRun`). */
export interface CoreRun {
  readonly id: string;
  readonly attempt: number;
  /** Runs the attempt to its end; its events go out through the `emit` it was made with. */
  run(): Promise<AttemptResult>;
  /** Stops the running command; cleanup still runs and `run()` still resolves. */
  stop(reason: "cancelled" | "timeout"): void;
}

/** The events the core keeps per attempt until the queen has them (the `Outbox`). */
export interface CoreEvents {
  push(id: string, attempt: number, body: JobEventBody): unknown;
  ack(id: string, attempt: number, seq: number): void;
  drop(id: string, attempt: number): void;
  resend(): void;
  /** Attempts with events kept, for `drone:info.running`. */
  running(): RunningAttempt[];
}

export interface WorkerCoreOptions {
  capacity: number;
  /** Stop after this many jobs (ephemeral worker); 0 or unset means never. */
  maxJobs?: number;
  /** `drone:info` without the fields the core fills (`running`, `draining`, `accepts`). */
  identity: Omit<DroneInfo, "event" | "running" | "draining" | "accepts" | "capacity">;
  events: CoreEvents;
  /** Sends a frame to the queen (dropped while disconnected). */
  send(frame: WorkerFrame): void;
  /** Makes the run of an attempt; `emit` is how its events reach the queen. */
  createRun(job: DispatchedJob, attempt: number, emit: (body: JobEventBody) => void): CoreRun;
  /** Called once a run has ended (its workspace is free), after the core has forgotten it. */
  runEnded?(run: CoreRun): void;
  /** Called once when a draining worker holds no job any more: time to stop. */
  idle(): void;
  log(message: string): void;
  /** Clock for event timestamps. */
  now?: () => number;
}

/** The worker's state machine for admission, its local queue, draining and leases. */
export class WorkerCore {
  readonly #o: WorkerCoreOptions;
  readonly #now: () => number;
  /** Started attempts by attempt key. */
  readonly #runs = new Map<string, CoreRun>();
  /** Dispatched attempts waiting for a free slot, oldest first. */
  readonly #waiting: { job: DispatchedJob; attempt: number }[] = [];
  /** Every run not finished yet, superseded ones too: their workspaces are in use. */
  readonly #live = new Set<CoreRun>();
  /** Lease tokens of the attempts this worker holds, by attempt key: its proof on reconnect. */
  readonly #leases = new Map<string, string>();
  readonly #results: Record<string, number> = {};
  #draining = false;
  #started = 0;
  #ready = false;
  #binaryOutput = 0;
  #idle = false;

  constructor(options: WorkerCoreOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Whether the queen has this connection's `drone:info`: job events may flow. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * The binary output frame layout the queen of this connection reads (its `drone:query-info`
   * says), or 0: output goes as JSON frames.
   */
  get binaryOutput(): number {
    return this.#binaryOutput;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get running(): number {
    return this.#runs.size;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Finished attempts by result, since start. */
  results(): Record<string, number> {
    return { ...this.#results };
  }

  /** The lease token of an attempt this worker holds: its proof for artifact uploads too. */
  lease(id: string, attempt: number): string | undefined {
    return this.#leases.get(attemptKey(id, attempt));
  }

  /** Whether a run not yet finished uses the workspace named `<job id>.<attempt>`. */
  inUse(name: string): boolean {
    return [...this.#live].some((r) => `${r.id}.${r.attempt}` === name);
  }

  /** What this worker says of itself: capacity, what it holds and, if ephemeral, accepts. */
  info(): DroneInfo {
    const { maxJobs } = this.#o;
    return {
      event: "drone:info",
      ...this.#o.identity,
      capacity: this.#o.capacity,
      running: this.#claims(),
      draining: this.#draining,
      ...(maxJobs ? { accepts: Math.max(0, maxJobs - this.#started - this.#waiting.length) } : {}),
    };
  }

  /** Acts on one decoded frame from the queen. */
  receive(frame: QueenFrame): void {
    switch (frame.event) {
      case "drone:query-info":
        this.#binaryOutput = Math.min(
          frame.binary_output ?? 0,
          this.#o.identity.binary_output ?? 0,
        );
        this.#o.send(this.info());
        this.#ready = true;
        this.#o.events.resend();
        return;
      case "queue:new":
        this.#leases.set(attemptKey(frame.job.job_id, frame.attempt), frame.lease);
        return this.#accept(frame.job, frame.attempt);
      case "queue:take":
        return this.#giveBack(frame.id, frame.attempt, true);
      case "job:cancel":
        return this.#cancel(frame.id, frame.attempt, frame.reason);
      case "job:ack":
        this.#o.events.ack(frame.id, frame.attempt, frame.seq);
        return;
      case "ping":
        this.#o.send({ event: "pong", t: frame.t });
        return;
      case "drone:drain":
        this.drain();
        return;
      case "error":
        this.#o.log(`the queen says: ${frame.message}`);
        return;
    }
  }

  /**
   * The connection dropped. Job events wait until the next connection's `drone:info`. The queen
   * gives jobs waiting here back to its queue when the connection drops: they must not start
   * here too. (Started ones keep running and are claimed on reconnect.)
   */
  disconnected(): void {
    this.#ready = false;
    for (const { job, attempt } of this.#waiting.splice(0)) {
      this.#o.events.drop(job.job_id, attempt);
      this.#leases.delete(attemptKey(job.job_id, attempt));
    }
    this.#next();
  }

  /** Takes no new jobs; the running and waiting ones finish, then `idle` is called. */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#o.log("draining: taking no new jobs; running jobs finish first");
    this.#o.send(this.info());
    this.#next();
  }

  /**
   * Stops now: jobs that never started go back to the queen's queue, uncharged, to run
   * elsewhere; running ones are cancelled (their cleanup still runs).
   */
  stop(): void {
    this.#draining = true;
    for (const { job, attempt } of [...this.#waiting]) this.#giveBack(job.job_id, attempt, false);
    for (const run of this.#runs.values()) run.stop("cancelled");
    this.#next();
  }

  /** Cancels every running attempt without a word to the queen (it refused this worker). */
  abort(): void {
    for (const run of this.#runs.values()) run.stop("cancelled");
  }

  /** The attempts to resume, each with its lease token; leases of forgotten ones are dropped. */
  #claims(): DroneInfo["running"] {
    const held = this.#o.events.running();
    const keys = new Set(held.map((r) => attemptKey(r.id, r.attempt)));
    for (const key of this.#leases.keys()) {
      if (!keys.has(key) && !this.#holds(key)) this.#leases.delete(key);
    }
    return held.map((r) => {
      const lease = this.#leases.get(attemptKey(r.id, r.attempt));
      return lease ? { ...r, lease } : r;
    });
  }

  /** Whether the attempt runs or waits here. */
  #holds(key: string): boolean {
    return this.#runs.has(key) ||
      this.#waiting.some((w) => attemptKey(w.job.job_id, w.attempt) === key);
  }

  #accept(job: DispatchedJob, attempt: number): void {
    if (this.#holds(attemptKey(job.job_id, attempt))) return;
    // An older attempt of the same job is superseded by this one.
    for (const run of this.#runs.values()) {
      if (run.id === job.job_id && run.attempt < attempt) this.#supersede(run);
    }
    if (this.#runs.size < this.#o.capacity) this.#begin(job, attempt);
    else {
      this.#waiting.push({ job, attempt });
      this.#o.events.push(job.job_id, attempt, { event: "job:queued", timestamp: this.#now() });
    }
    // An ephemeral worker says it is draining as soon as it holds its last job, not once that
    // job is done: by then the queen may already have sent it another.
    if (this.#limitReached()) this.drain();
  }

  /**
   * Gives a job that waits here, not started, back to the queen (asked with `queue:take`, or
   * unasked when the worker stops); answers whether it was still waiting.
   */
  #giveBack(id: string, attempt: number, asked: boolean): void {
    const index = this.#waiting.findIndex((w) => w.job.job_id === id && w.attempt === attempt);
    if (index >= 0) {
      this.#waiting.splice(index, 1);
      this.#o.events.drop(id, attempt);
      this.#leases.delete(attemptKey(id, attempt));
    }
    if (index >= 0 || asked) {
      this.#o.send({ event: "queue:taken", id, attempt, taken: index >= 0 });
    }
  }

  /** Whether an ephemeral worker (`maxJobs`) holds or has run as many jobs as it may. */
  #limitReached(): boolean {
    const { maxJobs } = this.#o;
    return !!maxJobs && this.#started + this.#waiting.length >= maxJobs;
  }

  #begin(job: DispatchedJob, attempt: number): void {
    this.#started++;
    const key = attemptKey(job.job_id, attempt);
    const run: CoreRun = this.#o.createRun(job, attempt, (body) => {
      // A superseded run's late events are not the attempt's any more.
      if (this.#runs.get(key) === run) this.#o.events.push(job.job_id, attempt, body);
    });
    this.#runs.set(key, run);
    this.#live.add(run);
    this.#o.log(`job ${job.job_id} attempt ${attempt}: started`);
    run.run().then((result) => {
      this.#results[result] = (this.#results[result] ?? 0) + 1;
      this.#o.log(`job ${job.job_id} attempt ${attempt}: ${result}`);
    })
      .catch((error) => this.#o.log(`job ${job.job_id}: ${(error as Error).message}`))
      .finally(() => {
        // A run superseded by a new one under the same key must not remove that one.
        if (this.#runs.get(key) === run) this.#runs.delete(key);
        this.#live.delete(run);
        this.#o.runEnded?.(run);
        this.#next();
      });
  }

  /** Starts waiting jobs into free slots; says `idle` once a draining worker is done. */
  #next(): void {
    while (this.#runs.size < this.#o.capacity && this.#waiting.length > 0) {
      const { job, attempt } = this.#waiting.shift()!;
      this.#begin(job, attempt);
    }
    if (this.#limitReached() && !this.#draining) this.drain();
    if (this.#draining && this.#runs.size === 0 && this.#waiting.length === 0 && !this.#idle) {
      this.#idle = true;
      this.#o.idle();
    }
  }

  #supersede(run: CoreRun): void {
    const key = attemptKey(run.id, run.attempt);
    this.#runs.delete(key);
    this.#leases.delete(key);
    this.#o.events.drop(run.id, run.attempt);
    run.stop("cancelled");
  }

  #cancel(id: string, attempt: number, reason: "cancelled" | "timeout" | "superseded"): void {
    const key = attemptKey(id, attempt);
    const run = this.#runs.get(key);
    if (run) {
      if (reason === "superseded") this.#supersede(run);
      else run.stop(reason === "timeout" ? "timeout" : "cancelled");
      return;
    }
    const queued = this.#waiting.findIndex((w) => attemptKey(w.job.job_id, w.attempt) === key);
    if (queued >= 0) {
      this.#waiting.splice(queued, 1);
      if (reason === "superseded") {
        this.#o.events.drop(id, attempt);
        this.#leases.delete(key);
      } else {
        this.#o.events.push(id, attempt, {
          event: "job:done",
          timestamp: this.#now(),
          result: reason === "timeout" ? "timeout" : "cancelled",
          error: "cancelled while waiting in the worker's queue",
        });
      }
    } else if (reason === "superseded") {
      this.#o.events.drop(id, attempt);
    }
  }
}
