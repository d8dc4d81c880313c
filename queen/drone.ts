import type { DroneInfo, DroneView, QueenFrame } from "../protocol/mod.ts";
import { attemptKey, encodeFrame, PROTOCOL_VERSION } from "../protocol/mod.ts";
import type { DroneLoad, JobNeeds } from "./scheduler.ts";
import { DroneLoadIndex } from "./scheduler.ts";

/**
 * Frames per second a drone may send on average, and in a burst. An honest worker batches its
 * output (a frame per 5 ms per command at most), so it stays far below; a connection flooding
 * more is cut off before it can starve other drones.
 */
const FRAMES_PER_SECOND = 20_000;
/** Above a reconnecting worker's resend: at most 10,000 events per attempt it holds. */
const FRAME_BURST = 100_000;

/**
 * How long acknowledgements are gathered before one cumulative `job:ack` per attempt goes out.
 * None: they come from the store's commit callbacks, which all run in one go, so a timer of 0
 * already gathers a commit's worth; waiting longer only holds back the worker's stream.
 */
const ACK_DELAY_MS = 0;

/**
 * The queen's side of one connected worker (the seed's Drone): its socket, what it said it can
 * do in `drone:info`, and the attempts it holds.
 */
export class Drone {
  readonly id: string;
  readonly connectedAt: number;
  lastSeen: number;
  /** Called whenever what the scheduler sees of the drone changes (see `DroneRegistry`). */
  onLoadChange: ((drone: Drone) => void) | undefined;
  #info: DroneInfo | undefined;
  #draining = false;
  #acceptsLeft: number | undefined;
  /** Job id → attempt number, for every attempt given to this drone and not finished. */
  readonly jobs: Map<string, number> = new WatchedMap(() => this.onLoadChange?.(this));
  /** Frames the drone may still send in this second (a token bucket; see `allowFrame`). */
  #budget = FRAMES_PER_SECOND;
  #budgetAt: number;
  #socket: WebSocket;
  #acks = new Map<string, { id: string; attempt: number; seq: number }>();
  #ackTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(id: string, socket: WebSocket, now = Date.now()) {
    this.id = id;
    this.#socket = socket;
    this.connectedAt = this.lastSeen = this.#budgetAt = now;
  }

  get info(): DroneInfo | undefined {
    return this.#info;
  }

  set info(info: DroneInfo | undefined) {
    this.#info = info;
    this.onLoadChange?.(this);
  }

  get draining(): boolean {
    return this.#draining;
  }

  set draining(draining: boolean) {
    this.#draining = draining;
    this.onLoadChange?.(this);
  }

  /** Jobs the worker still takes (`--max-jobs`), counted down as they are sent. */
  get acceptsLeft(): number | undefined {
    return this.#acceptsLeft;
  }

  set acceptsLeft(left: number | undefined) {
    this.#acceptsLeft = left;
    this.onLoadChange?.(this);
  }

  get name(): string {
    return this.info?.name ?? this.id;
  }

  /** Takes one frame from the drone's budget; false when it has sent too many too fast. */
  allowFrame(now = Date.now()): boolean {
    this.#budget = Math.min(
      FRAME_BURST,
      this.#budget + (now - this.#budgetAt) * FRAMES_PER_SECOND / 1000,
    );
    this.#budgetAt = now;
    if (this.#budget < 1) return false;
    this.#budget--;
    return true;
  }

  /** Sends a frame; a closed socket drops it (the lease decides what happens to the drone). */
  send(frame: QueenFrame): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    try {
      this.#socket.send(encodeFrame(frame));
    } catch {
      // The socket closed between the check and the send; its close handler cleans up.
    }
  }

  /** Acknowledges every event of the attempt up to `seq`, coalesced with others. */
  ack(id: string, attempt: number, seq: number): void {
    const key = attemptKey(id, attempt);
    const pending = this.#acks.get(key);
    if (!pending || pending.seq < seq) this.#acks.set(key, { id, attempt, seq });
    this.#ackTimer ??= setTimeout(() => this.#flushAcks(), ACK_DELAY_MS);
  }

  #flushAcks(): void {
    this.#ackTimer = undefined;
    for (const { id, attempt, seq } of this.#acks.values()) {
      this.send({ event: "job:ack", id, attempt, seq });
    }
    this.#acks.clear();
  }

  /** The worker token this connection presented, so revoking it can close the connection. */
  credential: string | undefined;

  /** Whether the queen closed this drone's connection (its late frames are ignored). */
  closed = false;

  close(code = 1000, reason = ""): void {
    this.closed = true;
    clearTimeout(this.#ackTimer);
    try {
      this.#socket.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  /** The drone as the scheduler sees it. */
  load(): DroneLoad {
    return {
      id: this.id,
      name: this.name,
      speed: this.info?.speed ?? 1,
      capacity: this.info?.capacity ?? 1,
      active: this.jobs.size,
      plugins: this.info?.plugins ?? [],
      labels: this.info?.labels ?? [],
      draining: this.draining,
      remaining: this.acceptsLeft,
      // Protocol 1 (0.1.0) workers cannot give a waiting job back (`queue:take`).
      queues: (this.info?.protocol ?? PROTOCOL_VERSION) >= 2,
    };
  }

  /** The drone as `GET /api/drones` shows it. */
  view(startedJobs: (id: string) => boolean): DroneView {
    const ids = [...this.jobs.keys()];
    const running = ids.filter(startedJobs).length;
    return {
      id: this.id,
      name: this.name,
      version: this.info?.version ?? "",
      speed: this.info?.speed ?? 1,
      capacity: this.info?.capacity ?? 1,
      running,
      queued: ids.length - running,
      jobs: ids,
      plugins: this.info?.plugins ?? [],
      labels: this.info?.labels ?? [],
      draining: this.draining,
      connectedAt: new Date(this.connectedAt).toISOString(),
      lastSeen: new Date(this.lastSeen).toISOString(),
    };
  }
}

/** A Map that calls `changed` after every change of its contents. */
class WatchedMap<K, V> extends Map<K, V> {
  #changed: (() => void) | undefined;

  constructor(changed: () => void) {
    super();
    this.#changed = changed;
  }

  override set(key: K, value: V): this {
    super.set(key, value);
    this.#changed?.();
    return this;
  }

  override delete(key: K): boolean {
    const deleted = super.delete(key);
    if (deleted) this.#changed?.();
    return deleted;
  }

  override clear(): void {
    super.clear();
    this.#changed?.();
  }
}

/**
 * The connected drones by id, with a `DroneLoadIndex` kept up to date as they come, go and
 * change load, so that `pick` finds the drone for a job without scanning the fleet (dispatch at
 * 10,000 workers).
 */
export class DroneRegistry extends Map<string, Drone> {
  readonly #index = new DroneLoadIndex();
  /** Called with a drone's id whenever it came, went or changed load (the shared drone table
   * of several queens follows it). */
  onChange: ((id: string) => void) | undefined;

  override set(id: string, drone: Drone): this {
    const previous = super.get(id);
    if (previous && previous !== drone) previous.onLoadChange = undefined;
    super.set(id, drone);
    drone.onLoadChange = (changed) => this.#sync(changed);
    this.#sync(drone);
    return this;
  }

  override delete(id: string): boolean {
    const drone = super.get(id);
    if (drone) drone.onLoadChange = undefined;
    this.#index.remove(id);
    const deleted = super.delete(id);
    if (deleted) this.onChange?.(id);
    return deleted;
  }

  override clear(): void {
    for (const id of [...this.keys()]) this.delete(id);
  }

  /** The drone the seed's rule picks for a job, as `pickDrone` over every drone would. */
  pick(needs: JobNeeds): Drone | undefined {
    const load = this.#index.pick(needs);
    return load && super.get(load.id);
  }

  #sync(drone: Drone): void {
    if (super.get(drone.id) !== drone) return;
    if (drone.info) this.#index.update(drone.load());
    else this.#index.remove(drone.id);
    this.onChange?.(drone.id);
  }
}
