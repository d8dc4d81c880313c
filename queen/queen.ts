/**
 * The queen's core: the queue, the connected drones, dispatch, fencing of workers' events,
 * re-attach and take-back, and the watch over leases and deadlines. It carries out decisions
 * made elsewhere: which drone (`scheduler.ts`), what a lost attempt becomes (`lease.ts`), how an
 * event is kept (`recorder.ts`). Transport-free: sockets are handed in by the server, and time by
 * a `Clock`, so this is testable alone.
 */
import type {
  DroneInfo,
  JobResult,
  JobSpec,
  RecordedEvent,
  RunningAttempt,
  WorkerJobEvent,
} from "../protocol/mod.ts";
import {
  decodeOutputFrame,
  decodeWorkerFrame,
  OUTPUT_FRAME_VERSION,
  protocolRefusal,
} from "../protocol/mod.ts";
import { hex } from "../protocol/hex.ts";
import { Drone, DroneRegistry } from "./drone.ts";
import type { Fleet } from "./fleet.ts";
import { ConflictError, DatabaseUnavailableError, RejectedError } from "./errors.ts";
import { Hub } from "./hub.ts";
import { newRecord, Recorder } from "./recorder.ts";
import { branchKey, buildOf, canRun, needsOf, runnable, whyWaiting } from "./scheduler.ts";
import type { DroneLoad } from "./scheduler.ts";
import type { JobRecord, Store } from "./store.ts";
import { systemClock } from "./clock.ts";
import type { Clock, TimerId } from "./clock.ts";
import { afterLoss, deadlineStep, expired, leaseLeft, queueTimedOut } from "./lease.ts";
import { leaseToken, validLease } from "./lease_token.ts";

/** Settings of a queen's core. */
export interface QueenCoreOptions {
  /** How long a silent or disconnected drone keeps its attempts, in milliseconds. */
  leaseMs: number;
  /** How many attempts a job gets before it ends `lost`. */
  maxAttempts: number;
  /** Seconds a job may run when its spec sets no `timeout`; 0 for no limit. */
  defaultTimeout?: number;
  /** Bytes of output kept per job (default 64 MiB); past it, a truncation marker. */
  maxLogBytes?: number;
  /** Repository URL patterns (`*` matches anything) a job may use; empty: any. */
  allowRepo?: string[];
  /**
   * The secret lease tokens are derived from (HMAC of job id and attempt), kept across restarts
   * so that workers can prove their attempts to a restarted queen. Random when not given.
   */
  leaseKey?: string;
  /** A queued job that no connected drone can run ends `errored` after this long; 0: never. */
  queueTimeoutMs?: number;
  /** Where diagnostics go. */
  log: (message: string) => void;
  /** The time source (default: the real clock); tests pass a `FakeClock`. */
  clock?: Clock;
  /** With several queens on one database: the queue they share (see `SharedQueue`). */
  shared?: SharedQueue;
}

/**
 * The queue several queens share (PostgreSQL, `queen/postgres/cluster.ts`). A queen's core then
 * holds only the jobs it owns: those it claimed for its drones, until they end. A job it cannot
 * place goes back to the shared queue, where any queen may claim it.
 */
export interface SharedQueue {
  /** A new job is in the shared queue: claim what this queen's drones should run. */
  queued(): void;
  /** Queued jobs this queen could not place, already forgotten here: they go back. */
  release(ids: string[]): void;
  /** A worker says it runs an attempt of a job this queen does not own: fetch the job here
   * (from its owner, or from a dead queen), then call `resumeClaimed`. */
  fetch(id: string): void;
  /** Cancels a job this queen does not own; false when it had already finished. */
  cancel(id: string): Promise<boolean>;
  /** Other queens' drones with a free slot, as last read (copies, to count on). */
  freeElsewhere(): DroneLoad[];
  /** Says in the view of a job read from the store why it waits, if it is queued. */
  describe(record: JobRecord): void;
  /** Queued jobs of the whole cluster in dispatch order (up to `limit`), and how many. */
  waiting(limit: number): Promise<JobRecord[]>;
  depth(): number;
}

/** After a restart, how much longer than a lease running attempts wait for their workers: the
 * worker's longest reconnect backoff (worker/connection.ts). */
const RESTART_GRACE_MS = 10_000;

/** How long a request waits for this queen's writes to be committed (`committed`). */
const COMMIT_WAIT_MS = 5_000;

/** An attempt whose drone went away and may come back within the lease. */
interface Orphan {
  drone: string;
  attempt: number;
  timer: TimerId;
}

/** Whether `text` matches `pattern`, where `*` stands for any run of characters. */
export function globMatches(pattern: string, text: string): boolean {
  const source = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`).test(text);
}

function newJobId(): string {
  const random = crypto.getRandomValues(new Uint8Array(4));
  return Date.now().toString(36) + "-" + hex(random);
}

/** The coordinator. */
export class QueenCore {
  readonly store: Store;
  readonly hub = new Hub();
  readonly #recorder: Recorder;
  /**
   * The jobs this queen schedules or watches (unfinished, and finished ones until the store has
   * committed their end): the one copy of each, which only the recorder changes.
   */
  readonly #jobs = new Map<string, JobRecord>();
  // The registry keeps a load index for dispatch (see queen/drone.ts).
  readonly drones = new DroneRegistry();
  /** With several queens: the other queens' drones, for the fleet view (queen/fleet.ts). */
  fleet: Fleet | undefined;
  readonly #options: QueenCoreOptions;
  /** Queued job ids; kept ordered by priority, then age. */
  #queue: string[] = [];
  #orphans = new Map<string, Orphan>();
  #heartbeat: TimerId;
  readonly #clock: Clock;
  #nextDrone = 1;
  readonly #leaseKey: string;
  /** Jobs their drone said wait in its own queue (`job:queued`, not started): job id → drone. */
  #waiting = new Map<string, Drone>();
  /** Jobs asked back with `queue:take`: job id → id of the drone whose free slot asked. */
  #taking = new Map<string, string>();
  /** Per job being watched: when it started (queen's clock) and when its worker last spoke. */
  #startedAt = new Map<string, number>();
  #lastHeard = new Map<string, number>();
  /** When the queen asked a running job to stop (cancel or timeout), to end it if unanswered. */
  #stopAskedAt = new Map<string, number>();
  /** When each queued job entered the queue, for `--queue-timeout`. */
  #queuedSince = new Map<string, number>();
  /** Arrival order of unfinished jobs: keeps submission order among jobs of the same ms. */
  #arrival = new Map<string, number>();
  #arrivals = 0;
  /** Attempts a worker claimed that another queen owns, waiting to be fetched here: job id →
   * the claim, its drone, and the events it sent meanwhile (replayed once resumed). */
  #fetching = new Map<
    string,
    { drone: Drone; running: RunningAttempt; events: WorkerJobEvent[] }
  >();

  /**
   * A core over `store`, taking over the jobs a previous queen left unfinished in it: the way a
   * queen starts. (The constructor alone is for a store known to hold no unfinished jobs.)
   */
  static async open(store: Store, options: QueenCoreOptions): Promise<QueenCore> {
    return new QueenCore(store, options, await QueenCore.unfinished(store));
  }

  /** The store's unfinished jobs, each with the events its saved view lags behind. */
  static async unfinished(store: Store): Promise<[JobRecord, RecordedEvent[]][]> {
    const records = await store.unfinishedJobs();
    const lagging = await Promise.all(records.map((r) => store.events(r.id, r.viewN)));
    return records.map((r, i) => [r, lagging[i]]);
  }

  constructor(
    store: Store,
    options: QueenCoreOptions,
    unfinished: [JobRecord, RecordedEvent[]][] = [],
  ) {
    this.store = store;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#recorder = new Recorder(store, this.hub, options.maxLogBytes);
    this.#leaseKey = options.leaseKey ??
      [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16)).join("");
    this.#take(unfinished);
    // Pings keep idle connections alive through proxies and show a drone is still there; a
    // drone silent for a whole lease is cut off so that its jobs can move on.
    const every = Math.max(50, Math.min(10_000, Math.floor(options.leaseMs / 3)));
    this.#heartbeat = this.#clock.setInterval(() => this.#beat(), every);
  }

  /**
   * Takes over jobs another queen owned (it died, or handed them over) or that this one claimed
   * from the shared queue, exactly as a restarted queen takes over its store's unfinished jobs;
   * then dispatches.
   */
  adopt(jobs: [JobRecord, RecordedEvent[]][], dispatch = true): void {
    this.#take(jobs.filter(([record]) => !this.#jobs.has(record.id)));
    if (dispatch) this.dispatch();
  }

  /**
   * Lets go of a job this queen owns, for another queen to adopt (its worker reconnected
   * there): it is forgotten here, with no word to any drone. Returns false if it is not held.
   */
  surrender(id: string): boolean {
    const record = this.#jobs.get(id);
    if (!record || record.view.status === "done") return false;
    for (const drone of this.drones.values()) drone.jobs.delete(id);
    this.#dropOrphan(id);
    this.#queue = this.#queue.filter((q) => q !== id);
    this.#forgetJob(id);
    this.#jobs.delete(id);
    return true;
  }

  /** A job fetched for a worker's claim (`SharedQueue.fetch`) is here now, or could not be. */
  resumeClaimed(id: string): void {
    const fetching = this.#fetching.get(id);
    if (!fetching) return;
    this.#fetching.delete(id);
    const { drone, running, events } = fetching;
    if (drone.closed || this.drones.get(drone.id) !== drone) return;
    this.#reattachOne(drone, running);
    for (const event of events) this.#onJobEvent(drone, event);
  }

  /**
   * After a restart (or an adoption): queued jobs queue again; so do dispatched ones that had not
   * started (their workers drop what waits in their queues when the connection drops),
   * uncharged. Started ones wait a lease for their workers to reconnect and re-attach them.
   */
  #take(unfinished: [JobRecord, RecordedEvent[]][]): void {
    const options = this.#options;
    const now = this.#clock.now();
    for (const [record, lagging] of unfinished) {
      this.#recorder.catchUp(record, lagging);
      this.#jobs.set(record.id, record);
      this.#arrival.set(record.id, this.#arrivals++);
      if (record.view.status === "queued") {
        this.#queue.push(record.id);
        this.#queuedSince.set(record.id, now);
        continue;
      }
      if (record.view.status === "dispatched") {
        this.#returnToQueue(record, "the queen restarted before it started");
        continue;
      }
      // Workers back off up to 10 s between reconnects while the queen is down: that comes on
      // top of the lease, or a queen restart alone would cost attempts.
      this.#orphan(
        record.id,
        record.view.drone ?? "",
        record.view.attempt,
        options.leaseMs + RESTART_GRACE_MS,
      );
      const current = record.view.attempts.find((a) => a.attempt === record.view.attempt);
      this.#startedAt.set(record.id, Date.parse(current?.startedAt ?? "") || now);
      this.#lastHeard.set(record.id, now);
    }
    this.#sortQueue();
  }

  /** Validated spec in, queued job out (once stored durably). */
  async submit(spec: JobSpec, links: { retryOf?: string } = {}): Promise<JobRecord> {
    const allowed = this.#options.allowRepo ?? [];
    if (allowed.length && !allowed.some((pattern) => globMatches(pattern, spec.repo.url))) {
      throw new RejectedError(
        `repo.url: '${spec.repo.url}' is not allowed on this queen (see its --allow-repo)`,
      );
    }
    const id = spec.job_id ?? newJobId();
    const full: JobSpec = {
      ...spec,
      job_id: id,
      trigger: spec.trigger ?? {
        type: "manual",
        timestamp: new Date().toISOString(),
        source: { type: "API", app: "api" },
      },
    };
    const record = newRecord(id, full, this.#clock.now(), links.retryOf ?? null);
    try {
      await this.store.createJob(record);
    } catch (error) {
      // The store keeps ids unique (two submits of one id at once included): one round trip.
      if (error instanceof RangeError) {
        throw new ConflictError(`Job id '${id}' is already taken`);
      }
      throw error;
    }
    if (this.#options.shared) {
      // In the shared queue: the queen whose drone the rule picks claims it.
      this.#options.shared.queued();
      return record;
    }
    this.#jobs.set(id, record);
    this.#queue.push(id);
    this.#queuedSince.set(id, this.#clock.now());
    this.#arrival.set(id, this.#arrivals++);
    this.#sortQueue();
    this.dispatch();
    return record;
  }

  /**
   * Cancels a job: a queued job ends at once; a running one is told to stop, and ends when its
   * worker reports (cleanup runs first). Returns false when the job had already finished.
   */
  cancel(id: string): boolean {
    const record = this.#jobs.get(id);
    if (!record && this.#options.shared) {
      // Owned by another queen, or queued in the shared queue: it is told there.
      void this.#options.shared.cancel(id).catch((error) =>
        this.#options.log(`cancel of job ${id}: ${(error as Error).message}`)
      );
      return true;
    }
    if (!record || record.view.status === "done") return false;
    if (record.view.status === "queued") {
      this.#queue = this.#queue.filter((q) => q !== id);
      this.#finish(record, "cancelled", "cancelled before it started");
      return true;
    }
    // Kept with the job: the frame below can be lost with a dying connection, and a worker
    // that comes back (or a lease that runs out) must not carry the job on.
    this.#recorder.requestCancel(record);
    const drone = this.#holder(id);
    if (drone && record.view.status === "dispatched") {
      // Still waiting at its worker: nothing of it ran, so it ends now and the worker drops it
      // (or, if it has just started it, stops it: its events are refused from here on).
      this.#release(drone, id, "superseded");
      this.#finish(record, "cancelled", "cancelled before it started");
    } else if (drone) {
      drone.send({ event: "job:cancel", id, attempt: record.view.attempt, reason: "cancelled" });
      this.#stopAskedAt.set(id, this.#clock.now());
    } else {
      // Its drone is away: nothing can report for it, so the queen ends it.
      this.#dropOrphan(id);
      this.#finish(record, "cancelled", "cancelled while its drone was away");
    }
    return true;
  }

  /**
   * `cancel`, wherever the job is: with several queens, a job this one does not hold is
   * cancelled through the shared queue (at once when queued, by its owner when running).
   */
  async cancelAnywhere(id: string): Promise<boolean> {
    const shared = this.#options.shared;
    if (!shared) return this.cancel(id);
    const cancelled = this.#jobs.has(id) ? this.cancel(id) : await shared.cancel(id);
    // A queued job ended here: the other queens (the client's next request) see it committed.
    await this.committed();
    return cancelled;
  }

  /**
   * Resolves once what this queen has queued for the store so far is committed; rejects with
   * `DatabaseUnavailableError` (503) after `COMMIT_WAIT_MS`: a request must not wait for a
   * database that does not answer (its commits go on being retried).
   */
  committed(): Promise<void> {
    let timer: TimerId | undefined;
    return Promise.race([
      new Promise<void>((resolve) => this.store.afterCommit(resolve, { soon: true })),
      new Promise<never>((_, reject) => {
        timer = this.#clock.setTimeout(() => {
          reject(
            new DatabaseUnavailableError(
              `the database has not committed for ${COMMIT_WAIT_MS / 1000} s; try again once ` +
                "it answers",
            ),
          );
        }, COMMIT_WAIT_MS);
      }),
    ]).finally(() => timer !== undefined && this.#clock.clearTimeout(timer));
  }

  /** A worker connected (and authenticated); returns its Drone, not yet able to take jobs. */
  connect(socket: WebSocket): Drone {
    const drone = new Drone(`d${this.#nextDrone++}`, socket, this.#clock.now());
    drone.send({ event: "drone:query-info", binary_output: OUTPUT_FRAME_VERSION });
    return drone;
  }

  /** Handles one frame from a worker's socket. */
  receive(drone: Drone, raw: unknown): void {
    if (drone.closed) return;
    drone.lastSeen = this.#clock.now();
    if (!drone.allowFrame(drone.lastSeen)) {
      this.#options.log(`drone ${drone.name}: more frames than allowed; disconnecting it`);
      drone.send({ event: "error", message: "too many frames: slow down" });
      drone.close(4008, "rate limit exceeded");
      this.disconnect(drone);
      return;
    }
    if (raw instanceof ArrayBuffer) return this.#onOutputFrame(drone, raw);
    const decoded = decodeWorkerFrame(raw);
    if (!decoded.ok) {
      drone.send({ event: "error", message: decoded.error });
      this.#options.log(`drone ${drone.name}: refused a frame: ${decoded.error.split("\n")[0]}`);
      return;
    }
    const frame = decoded.value;
    switch (frame.event) {
      case "drone:info":
        return this.#onInfo(drone, frame);
      case "pong":
        return;
      case "error":
        this.#options.log(`drone ${drone.name} reports: ${frame.message.split("\n")[0]}`);
        if (frame.id && frame.attempt) this.#refused(drone, frame.id, frame.attempt, frame.message);
        return;
      case "queue:taken":
        return this.#onTaken(drone, frame.id, frame.attempt, frame.taken);
      default:
        if (!drone.info) {
          drone.send({ event: "error", message: "send drone:info before job events" });
          return;
        }
        return this.#onJobEvent(drone, frame);
    }
  }

  /**
   * A binary output frame (protocol/output_frame.ts): the same checks as a job event in JSON,
   * and its text's bytes go to the store as received.
   */
  #onOutputFrame(drone: Drone, raw: ArrayBuffer): void {
    const refuse = (message: string) => {
      drone.send({ event: "error", message });
      this.#options.log(`drone ${drone.name}: refused a frame: ${message}`);
    };
    if (!drone.info) return refuse("send drone:info before job events");
    if (!drone.info.binary_output) {
      return refuse("binary frames are output frames: announce binary_output in drone:info");
    }
    const decoded = decodeOutputFrame(raw);
    if (!decoded.ok) return refuse(decoded.error);
    this.#onJobEvent(drone, decoded.value.event, decoded.value.bytes);
  }

  /** A worker's socket closed: its attempts wait out the lease for it to come back. */
  disconnect(drone: Drone): void {
    if (this.drones.get(drone.id) !== drone) return;
    this.drones.delete(drone.id);
    const wait = leaseLeft(drone.lastSeen, this.#options.leaseMs, this.#clock.now());
    const jobs = [...drone.jobs];
    drone.jobs.clear();
    for (const [target, asker] of this.#taking) if (asker === drone.id) this.#taking.delete(target);
    for (const [id, fetching] of this.#fetching) {
      if (fetching.drone === drone) this.#fetching.delete(id);
    }
    for (const [id, attempt] of jobs) {
      const record = this.#jobs.get(id);
      if (record?.view.status === "dispatched" && record.view.attempt === attempt) {
        // It never started: the worker drops its queue with the connection, so the job goes
        // back to the queen's queue at its place, uncharged.
        this.#returnToQueue(record, `drone ${drone.name} went away before it started`);
        continue;
      }
      this.#orphan(id, drone.name, attempt, wait);
    }
    this.#options.log(`drone ${drone.name} disconnected`);
    this.dispatch();
  }

  /** Stops timers; sockets are closed by the server. */
  close(): void {
    this.#clock.clearInterval(this.#heartbeat);
    for (const orphan of this.#orphans.values()) this.#clock.clearTimeout(orphan.timer);
    this.#orphans.clear();
  }

  /** Whether `lease` is the lease token of attempt `attempt` of job `id` (constant time). */
  provesAttempt(id: string, attempt: number, lease: string | undefined): boolean {
    return validLease(this.#leaseKey, id, attempt, lease);
  }

  /** Whether the job has started on its drone (rather than waiting in the drone's queue). */
  isStarted(id: string): boolean {
    return this.#jobs.get(id)?.view.status === "started";
  }

  /** A job by id: this queen's own copy while it runs, else the store's. */
  async job(id: string): Promise<JobRecord | undefined> {
    const held = this.#jobs.get(id);
    // In a cluster the client's next request may reach another queen, which reads the database:
    // a job this one shows finished is answered once its end is committed, or a client seeing
    // "done" here could read a cut log there.
    if (held?.view.status === "done" && this.#options.shared) await this.committed();
    if (held) return held;
    const stored = await this.store.getJob(id);
    if (stored && this.#options.shared) {
      // Another queen's job: its row's view is saved less often than its events (every ~500 ms
      // while it runs), so fold in what it lags behind, as a queen taking over does; a client
      // must not see "started" here after seeing "done" on its owner.
      if (stored.lastN > stored.viewN) {
        this.#recorder.catchUp(stored, await this.store.events(id, stored.viewN));
      }
      this.#options.shared.describe(stored);
    }
    return stored;
  }

  /**
   * A job this queen schedules or watches, at once (no store read): queued and running jobs, and
   * finished ones until their end is committed.
   */
  liveJob(id: string): JobRecord | undefined {
    return this.#jobs.get(id);
  }

  /** Whether the job is finished (or unknown here): what followers check on `job:done`. */
  isFinished(id: string): boolean {
    return (this.#jobs.get(id)?.view.status ?? "done") === "done";
  }

  /** Queued job ids in dispatch order (this queen's own queue; see `queued` for a cluster's). */
  queue(): readonly string[] {
    return this.#queue;
  }

  /** Queued jobs in dispatch order, up to `limit`: this queen's, or its cluster's. */
  async queued(limit = Infinity): Promise<JobRecord[]> {
    if (this.#options.shared) return await this.#options.shared.waiting(limit);
    return this.#queue.slice(0, limit).map((id) => this.#jobs.get(id)!).filter((r) => r);
  }

  /** How many jobs are queued: here, or in the cluster's shared queue. */
  queueDepth(): number {
    return this.#options.shared?.depth() ?? this.#queue.length;
  }

  /**
   * Sends every queued job that some drone can run to the drone the seed's rule picks; then
   * moves jobs waiting at busy drones to drones with a free slot (see `#rebalance`).
   */
  dispatch(): void {
    // Submits, finished jobs and connecting drones all call this: with nothing queued and
    // nothing waiting at a drone it costs nothing, whatever the number of drones.
    if (this.#queue.length === 0) {
      if (this.#waiting.size > 0) this.#rebalance();
      return;
    }
    const remaining: string[] = [];
    const serialized = this.#queue.some((id) => this.#jobs.get(id)?.spec.serialize);
    const busyBranches = serialized ? this.#busyBranches() : new Map<string, string>();
    for (const id of this.#queue) {
      const record = this.#jobs.get(id);
      if (!record || record.view.status !== "queued") continue;
      if (record.spec.serialize) {
        const holder = busyBranches.get(branchKey(record.spec));
        // Serialization is per build: the jobs of one build run side by side.
        if (holder && buildOf(this.#jobs.get(holder)?.spec) !== buildOf(record.spec)) {
          this.#recorder.setWaiting(
            record,
            `waiting for job ${holder} of the same branch to finish`,
          );
          remaining.push(id);
          continue;
        }
      }
      const needs = needsOf(record.spec);
      // The index answers what pickDrone over every drone's load would.
      const chosen = this.drones.pick(needs);
      if (!chosen) {
        const loads = [...this.drones.values()].filter((d) => d.info).map((d) => d.load());
        this.#recorder.setWaiting(record, whyWaiting(needs, loads));
        remaining.push(id);
        continue;
      }
      if (record.spec.serialize) busyBranches.set(branchKey(record.spec), id);
      this.#assign(record, chosen);
    }
    this.#queue = remaining;
    if (this.#options.shared && remaining.length) {
      // Not held back here: the shared queue lets any queen's drone take them.
      this.#queue = [];
      for (const id of remaining) {
        this.#forgetJob(id);
        this.#jobs.delete(id);
      }
      this.#options.shared.release(remaining);
    }
    if (this.#waiting.size > 0) this.#rebalance();
  }

  /**
   * A drone with a free slot that nothing in the queen's queue fills takes the oldest job
   * waiting in another drone's own queue: the queen asks that drone for it back (`queue:take`);
   * if it had not started, it returns here uncharged and goes out again by the seed's rule.
   */
  #rebalance(): void {
    const asked = new Map<string, number>();
    for (const target of this.#taking.values()) asked.set(target, (asked.get(target) ?? 0) + 1);
    const order = this.#queueOrder();
    for (const drone of this.drones.values()) {
      if (!drone.info) continue;
      const load = drone.load();
      let free = load.capacity - load.active - (asked.get(drone.id) ?? 0);
      if (free <= 0) continue;
      const candidates = [...this.#waiting].filter(([id, holder]) => {
        if (holder === drone || this.#taking.has(id)) return false;
        const spec = this.#jobs.get(id)?.spec;
        return !!spec && canRun(load, needsOf(spec));
      }).map(([id]) => id).sort(order);
      for (const id of candidates) {
        if (free-- <= 0) break;
        const holder = this.#waiting.get(id)!;
        this.#taking.set(id, drone.id);
        holder.send({ event: "queue:take", id, attempt: holder.jobs.get(id)! });
      }
    }
    // With several queens, a free slot of another queen's drone takes a waiting job too: given
    // back here, it goes to the shared queue, where that queen claims it.
    const elsewhere = this.#options.shared?.freeElsewhere() ?? [];
    if (!elsewhere.length) return;
    const waiting = [...this.#waiting.keys()].filter((id) => !this.#taking.has(id)).sort(order);
    for (const id of waiting) {
      const spec = this.#jobs.get(id)?.spec;
      const slot = spec &&
        elsewhere.find((d) =>
          d.active + (asked.get(d.id) ?? 0) < d.capacity && canRun(d, needsOf(spec))
        );
      if (!slot) continue;
      slot.active++;
      const holder = this.#waiting.get(id)!;
      this.#taking.set(id, slot.id);
      holder.send({ event: "queue:take", id, attempt: holder.jobs.get(id)! });
    }
  }

  /** Ends a queued job this queen holds, `errored` with `why` (the shared queue's timeout). */
  endQueued(id: string, why: string): void {
    const record = this.#jobs.get(id);
    if (record?.view.status === "queued") this.#finish(record, "errored", why);
  }

  /** Whether jobs wait in the own queues of this queen's drones. */
  hasWaiting(): boolean {
    return this.#waiting.size > 0;
  }

  /** The worker answered a `queue:take`. */
  #onTaken(drone: Drone, id: string, attempt: number, taken: boolean): void {
    const forSlot = this.#taking.get(id);
    this.#taking.delete(id);
    const record = this.#jobs.get(id);
    if (
      !taken || !record || drone.jobs.get(id) !== attempt || record.view.status !== "dispatched"
    ) return;
    drone.jobs.delete(id);
    this.#returnToQueue(record, `taken back from ${drone.name}'s queue for a free slot`);
    const shared = this.#options.shared;
    if (shared && forSlot !== undefined && !this.drones.has(forSlot)) {
      // For another queen's slot: to the shared queue, not back to a drone of this one.
      this.#queue = this.#queue.filter((q) => q !== id);
      this.#forgetJob(id);
      this.#jobs.delete(id);
      shared.release([id]);
    }
    this.dispatch();
  }

  /**
   * Puts a dispatched job that never started back in the queen's queue at its place (priority,
   * then age), without charging the attempt; the view drops the attempt.
   */
  #returnToQueue(record: JobRecord, why: string): void {
    this.#forgetWaiting(record.id);
    this.#record(record, {
      event: "job:returned",
      id: record.id,
      attempt: record.view.attempt,
      timestamp: this.#clock.now(),
      reason: why,
    });
    this.#recorder.clearRequeued(record);
    this.#queue.push(record.id);
    this.#queuedSince.set(record.id, this.#clock.now());
    this.#sortQueue();
  }

  /** Takes a job from a drone: it stops holding it, and is told why. */
  #release(drone: Drone, id: string, reason: "superseded" | "cancelled" | "timeout"): void {
    const attempt = drone.jobs.get(id);
    drone.jobs.delete(id);
    this.#forgetWaiting(id);
    if (attempt !== undefined) drone.send({ event: "job:cancel", id, attempt, reason });
  }

  #forgetWaiting(id: string): void {
    this.#waiting.delete(id);
    this.#taking.delete(id);
  }

  /** A worker refused a dispatch (an error frame naming it): the attempt ends with its reason. */
  #refused(drone: Drone, id: string, attempt: number, message: string): void {
    const record = this.#jobs.get(id);
    if (!record || drone.jobs.get(id) !== attempt || record.view.status !== "dispatched") return;
    drone.jobs.delete(id);
    this.#forgetWaiting(id);
    // The same job would be refused again: retrying cannot help.
    this.#finish(
      record,
      "errored",
      `worker ${drone.name} refused the job: ${message.slice(0, 2000)}`,
    );
  }

  /** Branch key → id of the serialized job holding it (dispatched, running, or orphaned). */
  #busyBranches(): Map<string, string> {
    const busy = new Map<string, string>();
    const ids = [...this.#orphans.keys()];
    for (const drone of this.drones.values()) ids.push(...drone.jobs.keys());
    for (const id of ids) {
      const spec = this.#jobs.get(id)?.spec;
      if (spec?.serialize) busy.set(branchKey(spec), id);
    }
    return busy;
  }

  #assign(record: JobRecord, drone: Drone): void {
    const attempt = record.view.attempt + 1;
    drone.jobs.set(record.id, attempt);
    if (drone.acceptsLeft !== undefined) drone.acceptsLeft--;
    this.#recorder.clearRequeued(record);
    this.#record(record, {
      event: "job:dispatched",
      id: record.id,
      attempt,
      drone: drone.name,
      timestamp: this.#clock.now(),
    });
    const timeout = record.spec.timeout ?? (this.#options.defaultTimeout || undefined);
    // Sent once the attempt is on disk: a queen killed in between must not find, after its
    // restart, a worker running an attempt it never recorded.
    this.#queuedSince.delete(record.id);
    const lease = leaseToken(this.#leaseKey, record.id, attempt);
    this.store.afterCommit(() =>
      drone.send({
        event: "queue:new",
        attempt,
        lease,
        job: {
          ...record.spec,
          job_id: record.id,
          trigger: record.spec.trigger!,
          ...(timeout ? { timeout } : {}),
        },
      }), { soon: true });
  }

  #onInfo(drone: Drone, info: DroneInfo): void {
    const refusal = protocolRefusal(info.protocol, info.version);
    if (refusal) {
      this.#options.log(`refused drone ${info.name}: ${refusal}`);
      drone.send({ event: "error", message: refusal });
      drone.close(4002, "protocol version mismatch");
      return;
    }
    const first = !drone.info;
    drone.info = info;
    drone.draining = info.draining ?? false;
    drone.acceptsLeft = info.accepts;
    if (first) {
      // A worker that reconnects before its old socket was seen to close: the old connection is
      // stale, and its attempts become orphans that this connection can take back at once.
      for (const other of this.drones.values()) {
        if (other.name !== info.name) continue;
        this.#options.log(`drone ${info.name} reconnected; closing its stale connection`);
        other.close(4003, "replaced by a new connection");
        this.disconnect(other);
      }
      this.drones.set(drone.id, drone);
      this.#options.log(`drone ${drone.name} connected (capacity ${info.capacity})`);
      this.#reattach(drone, info);
    }
    this.dispatch();
  }

  /** Takes back the attempts a reconnecting worker says it is still running. */
  #reattach(drone: Drone, info: DroneInfo): void {
    for (const running of info.running) {
      if (this.#options.shared && !this.#jobs.has(running.id)) {
        // Another queen owns it (or owned it and died): fetched here first, then re-attached.
        this.#fetching.set(running.id, { drone, running, events: [] });
        this.#options.shared.fetch(running.id);
        continue;
      }
      this.#reattachOne(drone, running);
    }
    // Attempts of this drone that it no longer runs will never report: move them on now.
    for (const [id, orphan] of this.#orphans) {
      if (orphan.drone !== drone.name || drone.jobs.has(id)) continue;
      this.#dropOrphan(id);
      this.#retryOrLose(id, `drone ${drone.name} restarted without it`);
    }
  }

  /** Takes back one attempt a reconnecting worker says it runs, if it proves it. */
  #reattachOne(drone: Drone, running: RunningAttempt): void {
    {
      const orphan = this.#orphans.get(running.id);
      const record = this.#jobs.get(running.id);
      const current = record && record.view.status !== "done" &&
        record.view.attempt === running.attempt && orphan?.attempt === running.attempt;
      // A name is not proof: only the lease token sent with the dispatch resumes an attempt.
      const proven = current &&
        validLease(this.#leaseKey, running.id, running.attempt, running.lease);
      if (current && !proven) {
        drone.send({
          event: "error",
          message: `refused the claim of job ${running.id} attempt ${running.attempt}: ` +
            "its lease token is missing or wrong (only the worker it was dispatched to can " +
            "resume it)",
        });
        this.#options.log(
          `drone ${drone.name} claimed job ${running.id} attempt ${running.attempt} ` +
            "without its lease token; refused",
        );
      }
      if (proven) {
        this.#dropOrphan(running.id);
        drone.jobs.set(running.id, running.attempt);
        this.#lastHeard.set(running.id, this.#clock.now());
        if (record.cancelRequested) {
          drone.send({
            event: "job:cancel",
            id: running.id,
            attempt: running.attempt,
            reason: "cancelled",
          });
        }
      } else {
        drone.send({
          event: "job:cancel",
          id: running.id,
          attempt: running.attempt,
          reason: "superseded",
        });
      }
    }
  }

  #onJobEvent(drone: Drone, event: WorkerJobEvent, bytes?: Uint8Array): void {
    const fetching = this.#fetching.get(event.id);
    if (fetching?.drone === drone) {
      // Kept until the job is here: the worker sends each event once per connection.
      // (Its bytes are encoded again from its text then.)
      fetching.events.push(event);
      return;
    }
    const record = this.#jobs.get(event.id);
    const held = drone.jobs.get(event.id);
    if (!record || held !== event.attempt) {
      // Fencing: only the drone holding the current attempt may write to a job.
      drone.send({
        event: "error",
        message: `refused ${event.event} for job ${event.id} attempt ${event.attempt}: ` +
          "this drone does not hold that attempt",
      });
      if (record) {
        drone.send({
          event: "job:cancel",
          id: event.id,
          attempt: event.attempt,
          reason: "superseded",
        });
      }
      return;
    }
    const last = record.lastSeq[event.attempt] ?? 0;
    if (event.seq <= last) {
      this.store.afterCommit(() => drone.ack(event.id, event.attempt, last));
      return;
    }
    if (event.seq !== last + 1) {
      drone.send({
        event: "error",
        message: `job ${event.id} attempt ${event.attempt}: expected seq ${
          last + 1
        }, got ${event.seq}`,
      });
      return;
    }
    this.#lastHeard.set(event.id, this.#clock.now());
    // Acknowledged only once durable: a queen killed now loses nothing the worker dropped.
    this.#record(record, event, () => drone.ack(event.id, event.attempt, event.seq), bytes);
    if (event.event === "job:queued" && record.view.status === "dispatched") {
      this.#waiting.set(event.id, drone);
      // A drone elsewhere may have a free slot for it.
      this.dispatch();
    } else if (event.event === "job:started") {
      this.#waiting.delete(event.id);
      this.#startedAt.set(event.id, this.#clock.now());
    } else if (event.event === "job:done") {
      drone.jobs.delete(event.id);
      this.dispatch();
    }
  }

  /** Records an event (see `recorder.ts`); a job it ends leaves `#jobs` once committed. */
  #record(
    record: JobRecord,
    data: RecordedEvent["data"],
    durable?: () => void,
    bytes?: Uint8Array,
  ): void {
    this.#recorder.record(record, data, this.#clock.now(), durable, bytes);
    if (record.view.status !== "done") return;
    this.#forgetJob(record.id);
    this.store.afterCommit(() => {
      if (this.#jobs.get(record.id) === record) this.#jobs.delete(record.id);
    });
  }

  /** Ends a job with a result no worker reported (cancelled while queued, lost). */
  #finish(record: JobRecord, result: JobResult, error: string): void {
    this.#queue = this.#queue.filter((q) => q !== record.id);
    this.#record(record, {
      event: "job:done",
      id: record.id,
      attempt: record.view.attempt,
      seq: 0,
      timestamp: this.#clock.now(),
      result,
      error,
    });
    // A serialized job of the same branch may be waiting for this one.
    this.dispatch();
  }

  /** Drops what the queen watched of a finished job. */
  #forgetJob(id: string): void {
    this.#forgetWaiting(id);
    this.#startedAt.delete(id);
    this.#lastHeard.delete(id);
    this.#stopAskedAt.delete(id);
    this.#queuedSince.delete(id);
    this.#arrival.delete(id);
  }

  #holder(id: string): Drone | undefined {
    for (const drone of this.drones.values()) if (drone.jobs.has(id)) return drone;
    return undefined;
  }

  /**
   * The one place a lease starts running out: the attempt's drone went away (or the queen
   * restarted), and unless a worker proves the attempt within `wait` ms, it is lost.
   */
  #orphan(id: string, drone: string, attempt: number, wait: number): void {
    this.#dropOrphan(id);
    const timer = this.#clock.setTimeout(() => this.#leaseExpired(id), wait);
    this.#orphans.set(id, { drone, attempt, timer });
  }

  #dropOrphan(id: string): void {
    const orphan = this.#orphans.get(id);
    if (orphan) this.#clock.clearTimeout(orphan.timer);
    this.#orphans.delete(id);
  }

  #leaseExpired(id: string): void {
    const orphan = this.#orphans.get(id);
    if (!orphan) return;
    this.#orphans.delete(id);
    this.#retryOrLose(id, `drone ${orphan.drone} was gone past its lease`);
  }

  /** Gives a job whose attempt was lost a new attempt, or ends it `lost` when none are left. */
  #retryOrLose(id: string, why: string): void {
    const record = this.#jobs.get(id);
    if (!record || record.view.status === "done") return;
    const decision = afterLoss({
      cancelRequested: !!record.cancelRequested,
      timeout: this.#timeoutOf(record),
      startedAt: this.#startedAt.get(id),
      // Only attempts that started count: one that waited at a drone was returned uncharged.
      charged: record.view.attempts.filter((a) => a.startedAt !== null).length,
      maxAttempts: this.#options.maxAttempts,
    }, this.#clock.now());
    switch (decision.next) {
      case "cancel":
        return this.#finish(record, "cancelled", `cancelled; ${why}`);
      case "timeout":
        return this.#finish(
          record,
          "timeout",
          `${why}, past the job's ${decision.timeout} s timeout`,
        );
      case "lose":
        return this.#finish(
          record,
          "lost",
          `${why}; no attempts left (${this.#options.maxAttempts})`,
        );
    }
    this.#options.log(`job ${id}: ${why}; re-queued`);
    this.#recorder.requeue(record, why);
    this.#startedAt.delete(id);
    this.#stopAskedAt.delete(id);
    this.#queue.push(id);
    this.#queuedSince.set(id, this.#clock.now());
    this.#sortQueue();
    this.dispatch();
  }

  /** Seconds the job may run (its spec's, else the queen's default); undefined: no limit. */
  #timeoutOf(record: JobRecord): number | undefined {
    return record.spec.timeout ?? (this.#options.defaultTimeout || undefined);
  }

  /** Compares job ids by dispatch order: priority, then age. */
  #queueOrder(): (a: string, b: string) => number {
    const key = (id: string) => {
      const record = this.#jobs.get(id);
      return {
        priority: record?.spec.priority ?? 0,
        created: record?.view.createdAt ?? "",
        arrival: this.#arrival.get(id) ?? 0,
      };
    };
    return (a, b) => {
      const ka = key(a), kb = key(b);
      return kb.priority - ka.priority ||
        (ka.created < kb.created ? -1 : ka.created > kb.created ? 1 : 0) ||
        ka.arrival - kb.arrival;
    };
  }

  #sortQueue(): void {
    this.#queue.sort(this.#queueOrder());
  }

  #beat(): void {
    const now = this.#clock.now();
    for (const drone of this.drones.values()) {
      if (expired(drone.lastSeen, this.#options.leaseMs, now)) {
        this.#options.log(`drone ${drone.name} silent past its lease; closing`);
        drone.close(4001, "lease expired");
        this.disconnect(drone);
        continue;
      }
      drone.send({ event: "ping", t: now });
    }
    this.#enforceDeadlines(now);
  }

  /**
   * The queen's own watch over started jobs, for workers that go silent about one: past its
   * timeout it asks the worker to stop it; if a lease later the worker has still said nothing of
   * it, the queen ends it. A cancel left unanswered for a lease ends the same way. With
   * `--queue-timeout`, a queued job that no connected drone could ever run ends `errored`.
   */
  #enforceDeadlines(now: number): void {
    const lease = this.#options.leaseMs;
    for (const [id, startedAt] of this.#startedAt) {
      const record = this.#jobs.get(id);
      if (!record || record.view.status !== "started") continue;
      const holder = this.#holder(id);
      const step = deadlineStep(
        {
          startedAt,
          lastHeard: this.#lastHeard.get(id) ?? startedAt,
          timeout: this.#timeoutOf(record),
          stopAskedAt: this.#stopAskedAt.get(id),
          held: !!holder,
        },
        lease,
        now,
      );
      if (step.step === "ask-stop") {
        holder?.send({ event: "job:cancel", id, attempt: record.view.attempt, reason: "timeout" });
        this.#stopAskedAt.set(id, now);
      } else if (step.step === "end-timeout") {
        if (holder) this.#release(holder, id, "superseded");
        this.#dropOrphan(id);
        this.#finish(
          record,
          "timeout",
          `the queen ended it: past its ${step.timeout} s timeout, and its worker said nothing ` +
            `of it for ${Math.round(lease / 1000)} s`,
        );
      } else if (step.step === "end-cancelled" && holder) {
        this.#release(holder, id, "superseded");
        this.#finish(
          record,
          "cancelled",
          `cancelled; its worker ${holder.name} did not confirm within ${
            Math.round(lease / 1000)
          } s`,
        );
      }
    }
    const limit = this.#options.queueTimeoutMs ?? 0;
    if (!limit) return;
    const loads = [...this.drones.values()].filter((d) => d.info).map((d) => d.load());
    for (const id of [...this.#queue]) {
      const since = this.#queuedSince.get(id) ?? now;
      const record = this.#jobs.get(id);
      if (!record || !queueTimedOut(since, limit, now)) continue;
      const needs = needsOf(record.spec);
      if (runnable(needs, loads)) continue;
      this.#finish(
        record,
        "errored",
        `${whyWaiting(needs, loads)} for ${Math.round((now - since) / 1000)} s; ended by ` +
          `--queue-timeout ${Math.round(limit / 1000)}`,
      );
    }
  }
}
