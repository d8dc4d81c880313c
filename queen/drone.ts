import type { DroneInfo, DroneView, QueenFrame } from "../protocol/mod.ts";
import { attemptKey, encodeFrame, PROTOCOL_VERSION } from "../protocol/mod.ts";
import type { DroneLoad } from "./scheduler.ts";

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
  info: DroneInfo | undefined;
  draining = false;
  /** Jobs the worker still takes (`--max-jobs`), counted down as they are sent. */
  acceptsLeft: number | undefined;
  /** Job id → attempt number, for every attempt given to this drone and not finished. */
  readonly jobs = new Map<string, number>();
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
