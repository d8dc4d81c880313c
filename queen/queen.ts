/**
 * The queen's core: the queue, the connected drones, dispatch, and the recording of every event
 * a worker sends. Transport-free: sockets are handed in by the server, so this is testable alone.
 */
import type {
  DroneInfo,
  JobResult,
  JobSpec,
  RecordedEvent,
  WorkerJobEvent,
} from "../protocol/mod.ts";
import { decodeWorkerFrame, protocolRefusal } from "../protocol/mod.ts";
import { Drone } from "./drone.ts";
import { Hub } from "./hub.ts";
import { foldEvent, newJobView } from "./job_state.ts";
import { LogBuilder } from "./job_log.ts";
import { pickDrone, whyWaiting } from "./scheduler.ts";
import type { JobNeeds } from "./scheduler.ts";
import type { JobRecord, Store } from "./store.ts";

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
  /** Where diagnostics go. */
  log: (message: string) => void;
}

/** An attempt whose drone went away and may come back within the lease. */
interface Orphan {
  drone: string;
  attempt: number;
  timer: ReturnType<typeof setTimeout>;
}

/** A job spec was refused by the queen (not by the schema): the id is taken, for example. */
export class JobRejectedError extends Error {
  constructor(message: string, readonly status: 400 | 409 = 400) {
    super(message);
    this.name = "JobRejectedError";
  }
}

/** Whether `text` matches `pattern`, where `*` stands for any run of characters. */
export function globMatches(pattern: string, text: string): boolean {
  const source = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`).test(text);
}

function newJobId(): string {
  const random = crypto.getRandomValues(new Uint8Array(4));
  return Date.now().toString(36) + "-" + [...random].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Jobs with `serialize: true` and the same key never run at once. */
function branchKey(spec: JobSpec): string {
  const ref = "fetch" in spec.ref ? spec.ref.fetch : spec.ref.branch;
  return `${spec.repo.url}\u0000${ref}`;
}

function needsOf(spec: JobSpec): JobNeeds {
  return { plugins: spec.plugins ?? [], labels: spec.labels ?? [] };
}

/** The coordinator. */
export class QueenCore {
  readonly store: Store;
  readonly hub = new Hub();
  readonly drones = new Map<string, Drone>();
  readonly #options: QueenCoreOptions;
  /** Queued job ids; kept ordered by priority, then age. */
  #queue: string[] = [];
  #orphans = new Map<string, Orphan>();
  #heartbeat: ReturnType<typeof setInterval>;
  #nextDrone = 1;

  constructor(store: Store, options: QueenCoreOptions) {
    this.store = store;
    this.#options = options;
    // After a restart: queued jobs queue again; running ones wait a lease for their workers to
    // reconnect and re-attach them, as if their drones had just disconnected.
    for (const record of store.unfinishedJobs()) {
      if (record.view.status === "queued") {
        this.#queue.push(record.id);
        continue;
      }
      const timer = setTimeout(() => this.#leaseExpired(record.id), options.leaseMs);
      this.#orphans.set(record.id, {
        drone: record.view.drone ?? "",
        attempt: record.view.attempt,
        timer,
      });
    }
    this.#sortQueue();
    // Pings keep idle connections alive through proxies and show a drone is still there; a
    // drone silent for a whole lease is cut off so that its jobs can move on.
    const every = Math.max(50, Math.min(10_000, Math.floor(options.leaseMs / 3)));
    this.#heartbeat = setInterval(() => this.#beat(), every);
  }

  /** Validated spec in, queued job out. */
  submit(spec: JobSpec, links: { retryOf?: string } = {}): JobRecord {
    const allowed = this.#options.allowRepo ?? [];
    if (allowed.length && !allowed.some((pattern) => globMatches(pattern, spec.repo.url))) {
      throw new JobRejectedError(
        `repo.url: '${spec.repo.url}' is not allowed on this queen (see its --allow-repo)`,
      );
    }
    const id = spec.job_id ?? newJobId();
    if (this.store.getJob(id)) throw new JobRejectedError(`Job id '${id}' is already taken`, 409);
    const full: JobSpec = {
      ...spec,
      job_id: id,
      trigger: spec.trigger ?? {
        type: "manual",
        timestamp: new Date().toISOString(),
        source: { type: "API", app: "api" },
      },
    };
    const record: JobRecord = {
      id,
      spec: full,
      view: { ...newJobView(id, full, Date.now()), retryOf: links.retryOf ?? null },
      lastSeq: {},
      lastN: 0,
      logBytes: 0,
      logEndsWithNewline: true,
      logAttempt: 0,
      viewBytes: 0,
    };
    this.store.createJob(record);
    this.#queue.push(id);
    this.#sortQueue();
    this.dispatch();
    return record;
  }

  /**
   * Cancels a job: a queued job ends at once; a running one is told to stop, and ends when its
   * worker reports (cleanup runs first). Returns false when the job had already finished.
   */
  cancel(id: string): boolean {
    const record = this.store.getJob(id);
    if (!record || record.view.status === "done") return false;
    if (record.view.status === "queued") {
      this.#queue = this.#queue.filter((q) => q !== id);
      this.#finish(record, "cancelled", "cancelled before it started");
      return true;
    }
    // Kept with the job: the frame below can be lost with a dying connection, and a worker
    // that comes back (or a lease that runs out) must not carry the job on.
    record.cancelRequested = true;
    this.store.saveJob(record);
    const drone = this.#holder(id);
    if (drone) {
      drone.send({ event: "job:cancel", id, attempt: record.view.attempt, reason: "cancelled" });
    } else {
      // Its drone is away: nothing can report for it, so the queen ends it.
      this.#dropOrphan(id);
      this.#finish(record, "cancelled", "cancelled while its drone was away");
    }
    return true;
  }

  /** A worker connected (and authenticated); returns its Drone, not yet able to take jobs. */
  connect(socket: WebSocket): Drone {
    const drone = new Drone(`d${this.#nextDrone++}`, socket);
    drone.send({ event: "drone:query-info" });
    return drone;
  }

  /** Handles one frame from a worker's socket. */
  receive(drone: Drone, raw: unknown): void {
    if (drone.closed) return;
    drone.lastSeen = Date.now();
    if (!drone.allowFrame(drone.lastSeen)) {
      this.#options.log(`drone ${drone.name}: more frames than allowed; disconnecting it`);
      drone.send({ event: "error", message: "too many frames: slow down" });
      drone.close(4008, "rate limit exceeded");
      this.disconnect(drone);
      return;
    }
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
        this.#options.log(`drone ${drone.name} reports: ${frame.message}`);
        return;
      default:
        if (!drone.info) {
          drone.send({ event: "error", message: "send drone:info before job events" });
          return;
        }
        return this.#onJobEvent(drone, frame);
    }
  }

  /** A worker's socket closed: its attempts wait out the lease for it to come back. */
  disconnect(drone: Drone): void {
    if (this.drones.get(drone.id) !== drone) return;
    this.drones.delete(drone.id);
    const silentFor = Date.now() - drone.lastSeen;
    const wait = Math.max(0, this.#options.leaseMs - silentFor);
    for (const [id, attempt] of drone.jobs) {
      const timer = setTimeout(() => this.#leaseExpired(id), wait);
      this.#orphans.set(id, { drone: drone.name, attempt, timer });
    }
    drone.jobs.clear();
    this.#options.log(`drone ${drone.name} disconnected`);
  }

  /** Stops timers; sockets are closed by the server. */
  close(): void {
    clearInterval(this.#heartbeat);
    for (const orphan of this.#orphans.values()) clearTimeout(orphan.timer);
    this.#orphans.clear();
  }

  /** Whether the job has started on its drone (rather than waiting in the drone's queue). */
  isStarted(id: string): boolean {
    return this.store.getJob(id)?.view.status === "started";
  }

  /** Queued job ids in dispatch order. */
  queue(): readonly string[] {
    return this.#queue;
  }

  /** Sends every queued job that some drone can run to the drone the seed's rule picks. */
  dispatch(): void {
    // Submits, finished jobs and connecting drones all call this: with nothing queued it costs
    // nothing, whatever the number of drones.
    if (this.#queue.length === 0) return;
    const ready = [...this.drones.values()].filter((d) => d.info);
    const loads = ready.map((d) => d.load());
    const remaining: string[] = [];
    const serialized = this.#queue.some((id) => this.store.getJob(id)?.spec.serialize);
    const busyBranches = serialized ? this.#busyBranches() : new Map<string, string>();
    for (const id of this.#queue) {
      const record = this.store.getJob(id);
      if (!record || record.view.status !== "queued") continue;
      if (record.spec.serialize) {
        const holder = busyBranches.get(branchKey(record.spec));
        if (holder) {
          this.#setWaiting(record, `waiting for job ${holder} of the same branch to finish`);
          remaining.push(id);
          continue;
        }
      }
      const needs = needsOf(record.spec);
      const chosen = pickDrone(needs, loads);
      if (!chosen) {
        this.#setWaiting(record, whyWaiting(needs, loads));
        remaining.push(id);
        continue;
      }
      chosen.active++;
      if (chosen.remaining !== undefined) chosen.remaining--;
      if (record.spec.serialize) busyBranches.set(branchKey(record.spec), id);
      this.#assign(record, this.drones.get(chosen.id)!);
    }
    this.#queue = remaining;
  }

  #setWaiting(record: JobRecord, why: string): void {
    const waiting = record.requeued ? `${why} (re-queued: ${record.requeued})` : why;
    if (record.view.waiting === waiting) return;
    record.view.waiting = waiting;
    this.store.saveJob(record);
  }

  /** Branch key → id of the serialized job holding it (dispatched, running, or orphaned). */
  #busyBranches(): Map<string, string> {
    const busy = new Map<string, string>();
    const ids = [...this.#orphans.keys()];
    for (const drone of this.drones.values()) ids.push(...drone.jobs.keys());
    for (const id of ids) {
      const spec = this.store.getJob(id)?.spec;
      if (spec?.serialize) busy.set(branchKey(spec), id);
    }
    return busy;
  }

  #assign(record: JobRecord, drone: Drone): void {
    const attempt = record.view.attempt + 1;
    drone.jobs.set(record.id, attempt);
    if (drone.acceptsLeft !== undefined) drone.acceptsLeft--;
    record.requeued = undefined;
    this.#record(record, {
      event: "job:dispatched",
      id: record.id,
      attempt,
      drone: drone.name,
      timestamp: Date.now(),
    });
    const timeout = record.spec.timeout ?? (this.#options.defaultTimeout || undefined);
    // Sent once the attempt is on disk: a queen killed in between must not find, after its
    // restart, a worker running an attempt it never recorded.
    this.store.afterCommit(() =>
      drone.send({
        event: "queue:new",
        attempt,
        job: {
          ...record.spec,
          job_id: record.id,
          trigger: record.spec.trigger!,
          ...(timeout ? { timeout } : {}),
        },
      })
    );
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
      const orphan = this.#orphans.get(running.id);
      const record = this.store.getJob(running.id);
      const current = record && record.view.status !== "done" &&
        record.view.attempt === running.attempt && orphan?.attempt === running.attempt;
      if (current) {
        this.#dropOrphan(running.id);
        drone.jobs.set(running.id, running.attempt);
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
    // Attempts of this drone that it no longer runs will never report: move them on now.
    for (const [id, orphan] of this.#orphans) {
      if (orphan.drone !== drone.name || drone.jobs.has(id)) continue;
      this.#dropOrphan(id);
      this.#retryOrLose(id, `drone ${drone.name} restarted without it`);
    }
  }

  #onJobEvent(drone: Drone, event: WorkerJobEvent): void {
    const record = this.store.getJob(event.id);
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
    record.lastSeq[event.attempt] = event.seq;
    this.#record(record, event);
    // Acknowledged only once durable: a queen killed now loses nothing the worker dropped.
    this.store.afterCommit(() => drone.ack(event.id, event.attempt, event.seq));
    if (event.event === "job:done") {
      drone.jobs.delete(event.id);
      this.dispatch();
    }
  }

  /** Stores an event, folds it into the job's view and fans it out. */
  #record(record: JobRecord, data: RecordedEvent["data"]): RecordedEvent | undefined {
    const limit = this.#options.maxLogBytes ?? 64 * 1024 * 1024;
    if ("text" in data && data.text) {
      if (record.logBytes >= limit) {
        // Past the cap the text is dropped, but the event is stored (empty) so that its seq is
        // on disk: after a restart the queen must expect the worker's next seq, not this one.
        data = { ...data, text: "" };
      } else {
        const room = limit - record.logBytes;
        // A UTF-16 unit is at most 3 bytes of UTF-8: only text that might not fit is encoded.
        const bytes = data.text.length * 3 >= room
          ? new TextEncoder().encode(data.text)
          : undefined;
        if (bytes && bytes.length >= room) {
          // The text is cut at the limit, so the marker takes the log past it and later output
          // is dropped above.
          data = {
            ...data,
            text: new TextDecoder().decode(bytes.subarray(0, room)) +
              `\n[strider: output truncated: the job passed its ${limit}-byte log limit]\n`,
          };
        }
      }
    }
    const builder = LogBuilder.resume(record.logAttempt, record.logEndsWithNewline);
    const log = builder.append(data);
    record.logAttempt = builder.attempt;
    record.logEndsWithNewline = builder.endsWithNewline;
    const recorded = this.store.appendEvent(record, data, Date.now(), log);
    record.viewBytes += foldEvent(record.view, recorded, record.viewBytes);
    this.store.saveJob(record);
    this.hub.publish(record.id, recorded);
    return recorded;
  }

  /** Ends a job with a result no worker reported (cancelled while queued, lost). */
  #finish(record: JobRecord, result: JobResult, error: string): void {
    this.#record(record, {
      event: "job:done",
      id: record.id,
      attempt: record.view.attempt,
      seq: 0,
      timestamp: Date.now(),
      result,
      error,
    });
    // A serialized job of the same branch may be waiting for this one.
    this.dispatch();
  }

  #holder(id: string): Drone | undefined {
    for (const drone of this.drones.values()) if (drone.jobs.has(id)) return drone;
    return undefined;
  }

  #dropOrphan(id: string): void {
    const orphan = this.#orphans.get(id);
    if (orphan) clearTimeout(orphan.timer);
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
    const record = this.store.getJob(id);
    if (!record || record.view.status === "done") return;
    if (record.cancelRequested) {
      this.#finish(record, "cancelled", `cancelled; ${why}`);
      return;
    }
    if (record.view.attempt >= this.#options.maxAttempts) {
      this.#finish(record, "lost", `${why}; no attempts left (${this.#options.maxAttempts})`);
      return;
    }
    this.#options.log(`job ${id}: ${why}; re-queued`);
    record.view.status = "queued";
    record.view.drone = null;
    record.requeued = why;
    record.view.waiting = `re-queued: ${why}`;
    this.store.saveJob(record);
    this.#queue.push(id);
    this.#sortQueue();
    this.dispatch();
  }

  #sortQueue(): void {
    const key = (id: string) => {
      const record = this.store.getJob(id);
      return { priority: record?.spec.priority ?? 0, created: record?.view.createdAt ?? "" };
    };
    this.#queue.sort((a, b) => {
      const ka = key(a), kb = key(b);
      return kb.priority - ka.priority ||
        (ka.created < kb.created ? -1 : ka.created > kb.created ? 1 : 0);
    });
  }

  #beat(): void {
    const now = Date.now();
    for (const drone of this.drones.values()) {
      if (now - drone.lastSeen > this.#options.leaseMs) {
        this.#options.log(`drone ${drone.name} silent past its lease; closing`);
        drone.close(4001, "lease expired");
        this.disconnect(drone);
        continue;
      }
      drone.send({ event: "ping", t: now });
    }
  }
}
