/**
 * Simulated workers: WebSocket clients that speak the worker protocol (frames validated with
 * protocol/'s schemas) without running jobs the real way. Each answers `drone:query-info` with
 * `drone:info`, `ping` with `pong`, and a `queue:new` with `job:started` then `job:done` (numbered
 * by `seq`; `job:ack` drops them from its unacknowledged set):
 *
 * - `instant`: both at once: the queen's own cost per job, no work at all;
 * - `spawn`: runs the job's `custom.test` script with `sh -c` in between (at most `capacity` at
 *   once, the rest answered `job:queued` and run in turn);
 * - `hold`: `job:started` only; the job runs until cancelled.
 *
 * Imported, it gives `SimWorker` (one client, used as a probe in the bench process). Run as a
 * process it keeps a fleet: `deno run -A scripts/bench/sim_worker.ts --connect URL --token T
 * --count N`, printing JSON lines (`{"ready": n, "failed": f}`) and reading commands on stdin:
 * `add N` connects N more, `stats` prints counters; the fleet exits when stdin closes.
 */
import { parseArgs } from "node:util";
import { denoProc } from "./lib.ts";
import type { Proc } from "./lib.ts";
import { decodeQueenFrame, encodeFrame, PROTOCOL_VERSION, VERSION } from "../../protocol/mod.ts";
import { attemptKey } from "../../protocol/attempt_key.ts";
import type {
  DispatchedJob,
  DroneInfo,
  QueenFrame,
  WorkerFrame,
  WorkerJobEvent,
} from "../../protocol/mod.ts";

export type SimMode = "instant" | "spawn" | "hold";

export interface SimWorkerOptions {
  /** The queen's base URL (`http://127.0.0.1:PORT`). */
  url: string;
  token: string;
  name: string;
  capacity?: number;
  speed?: number;
  mode?: SimMode;
  plugins?: string[];
  /** Sees every frame from the queen as it arrives (`at` is `performance.now()`). */
  onFrame?: (frame: QueenFrame, at: number) => void;
}

type JobBody = { event: WorkerJobEvent["event"] } & Record<string, unknown>;

/** Counters shared by all simulated workers of a process. */
export const counters = { started: 0, done: 0, acked: 0, pings: 0, errors: 0 };

/** One simulated worker connection. */
export class SimWorker {
  readonly options: SimWorkerOptions;
  readonly socket: WebSocket;
  /** Resolves once `drone:info` was sent; rejects when the connection fails first. */
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  #seq = new Map<string, number>();
  /** Unacknowledged events per attempt: id\0attempt → highest seq sent. */
  #unacked = new Map<string, number>();
  #running = 0;
  #waiting: { job: DispatchedJob; attempt: number }[] = [];

  constructor(options: SimWorkerOptions) {
    this.options = options;
    const url = new URL("/ws/worker", options.url);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.socket = new WebSocket(url, { headers: { authorization: `Bearer ${options.token}` } });
    const ready = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.closed = closed.promise;
    this.socket.onmessage = (message) => {
      const at = performance.now();
      const decoded = decodeQueenFrame(message.data);
      if (!decoded.ok) {
        counters.errors++;
        return;
      }
      const frame = decoded.value;
      this.options.onFrame?.(frame, at);
      if (frame.event === "drone:query-info") {
        this.send(this.info());
        ready.resolve();
      } else this.#onFrame(frame);
    };
    this.socket.onerror = () => {};
    this.socket.onclose = () => {
      ready.reject(new Error(`simulated worker ${options.name}: connection closed`));
      closed.resolve();
    };
    this.ready.catch(() => {});
  }

  info(): DroneInfo {
    return {
      event: "drone:info",
      name: this.options.name,
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      speed: this.options.speed ?? 1,
      capacity: this.options.capacity ?? 1,
      plugins: this.options.plugins ?? ["env", "custom"],
      labels: [],
      running: [],
    };
  }

  send(frame: WorkerFrame): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(encodeFrame(frame));
  }

  /** Unacknowledged attempts. */
  get unacked(): number {
    return this.#unacked.size;
  }

  close(): void {
    try {
      this.socket.close(1000, "bench done");
    } catch {
      // Already closed.
    }
  }

  #emit(id: string, attempt: number, body: JobBody): void {
    const key = attemptKey(id, attempt);
    const seq = (this.#seq.get(key) ?? 0) + 1;
    this.#seq.set(key, seq);
    this.#unacked.set(key, seq);
    this.send({ ...body, id, attempt, seq } as WorkerJobEvent);
  }

  #onFrame(frame: QueenFrame): void {
    switch (frame.event) {
      case "ping":
        counters.pings++;
        this.send({ event: "pong", t: frame.t });
        return;
      case "job:ack": {
        const key = attemptKey(frame.id, frame.attempt);
        const sent = this.#unacked.get(key);
        if (sent !== undefined && frame.seq >= sent) {
          this.#unacked.delete(key);
          if (!this.#seq.has(key)) counters.acked++;
        }
        return;
      }
      case "queue:new":
        return this.#accept(frame.job, frame.attempt);
      case "job:cancel":
        this.#finish(frame.id, frame.attempt, "cancelled");
        return;
      default:
        return;
    }
  }

  #accept(job: DispatchedJob, attempt: number): void {
    const mode = this.options.mode ?? "instant";
    if (mode === "spawn" && this.#running >= (this.options.capacity ?? 1)) {
      this.#waiting.push({ job, attempt });
      this.#emit(job.job_id, attempt, { event: "job:queued", timestamp: Date.now() });
      return;
    }
    this.#begin(job, attempt);
  }

  #begin(job: DispatchedJob, attempt: number): void {
    const mode = this.options.mode ?? "instant";
    this.#emit(job.job_id, attempt, { event: "job:started", timestamp: Date.now() });
    counters.started++;
    if (mode === "instant") return this.#finish(job.job_id, attempt, "passed");
    if (mode === "hold") return;
    this.#running++;
    const script = (job.config?.custom as { test?: string } | undefined)?.test ?? "true";
    new Deno.Command("sh", {
      args: ["-c", script],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output().then(
      (out) => out.success ? "passed" as const : "failed" as const,
      () => "errored" as const,
    ).then((result) => {
      this.#running--;
      this.#finish(job.job_id, attempt, result);
      const next = this.#waiting.shift();
      if (next) this.#begin(next.job, next.attempt);
    });
  }

  #finish(id: string, attempt: number, result: "passed" | "failed" | "errored" | "cancelled") {
    const key = attemptKey(id, attempt);
    if (!this.#seq.has(key)) return;
    this.#emit(id, attempt, { event: "job:done", timestamp: Date.now(), result });
    // Only the unacknowledged mark is kept from here on: an ack counts the job as acknowledged.
    this.#seq.delete(key);
    counters.done++;
  }
}

/** Connects `count` simulated workers, `parallel` handshakes at a time. */
export async function connectMany(
  count: number,
  parallel: number,
  make: (i: number) => SimWorkerOptions,
): Promise<{ workers: SimWorker[]; failed: number }> {
  const workers: SimWorker[] = [];
  let failed = 0;
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      const worker = new SimWorker(make(i));
      const timer = setTimeout(() => worker.close(), 30_000);
      try {
        await worker.ready;
        workers.push(worker);
      } catch {
        failed++;
      } finally {
        clearTimeout(timer);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  return { workers, failed };
}

/** Counters a fleet process reports. */
export interface FleetStats {
  started: number;
  done: number;
  acked: number;
  pings: number;
  errors: number;
  unacked: number;
  open: number;
}

/** The bench's handle on a fleet process of simulated workers. */
export class SimFleet {
  readonly proc: Proc;
  count = 0;

  private constructor(proc: Proc) {
    this.proc = proc;
  }

  /** Starts a fleet process and waits until its first `count` workers sent `drone:info`. */
  static async start(options: {
    url: string;
    token: string;
    count: number;
    prefix?: string;
    capacity?: number;
    speed?: number;
    mode?: SimMode;
    parallel?: number;
  }): Promise<SimFleet> {
    const proc = denoProc(
      "simulated workers",
      ["--allow-net", "--allow-run"],
      import.meta.filename!,
      [
        "--connect",
        options.url,
        "--token",
        options.token,
        "--count",
        String(options.count),
        "--prefix",
        options.prefix ?? "sim",
        "--capacity",
        String(options.capacity ?? 1),
        "--speed",
        String(options.speed ?? 1),
        "--mode",
        options.mode ?? "instant",
        "--parallel",
        String(options.parallel ?? 64),
      ],
      { stdin: true },
    );
    const fleet = new SimFleet(proc);
    try {
      await fleet.#ready(options.count);
    } catch (error) {
      await proc.kill();
      throw error;
    }
    return fleet;
  }

  async #ready(total: number): Promise<void> {
    const ms = 60_000 + total * 10;
    const [, ready, failed] = await this.proc.waitForLine(
      new RegExp(`^\\{"ready":(${total}),"failed":(\\d+)`),
      ms,
    ).catch((error) => {
      const last = this.proc.output.match(/\{"ready":(\d+),"failed":(\d+)[^\n]*\n?$/);
      throw last ? new Error(`only ${last[1]} of ${total} simulated workers connected`) : error;
    });
    if (Number(failed) > 0) throw new Error(`${failed} simulated workers failed to connect`);
    this.count = Number(ready);
  }

  /** Connects `more` workers; resolves once they all sent `drone:info`. */
  async add(more: number): Promise<void> {
    await this.proc.write(`add ${more}`);
    await this.#ready(this.count + more);
  }

  async stats(): Promise<FleetStats> {
    const line = this.proc.waitForLine(/^\{"stats":(.*)\}$/, 10_000, false);
    await this.proc.write("stats");
    return JSON.parse((await line)[1]);
  }

  /** Closes the fleet's stdin (it closes its sockets and exits); kills it if it lingers. */
  async close(): Promise<void> {
    await this.proc.stop("SIGTERM", 5_000);
  }
}

/** The fleet process: see the module comment. */
async function fleetMain(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      connect: { type: "string" },
      token: { type: "string" },
      count: { type: "string", default: "0" },
      prefix: { type: "string", default: "sim" },
      capacity: { type: "string", default: "1" },
      speed: { type: "string", default: "1" },
      mode: { type: "string", default: "instant" },
      parallel: { type: "string", default: "64" },
    },
  });
  if (!values.connect || !values.token) throw new Error("--connect and --token are required");
  const workers: SimWorker[] = [];
  let failed = 0;
  const print = (value: unknown) => console.log(JSON.stringify(value));
  const add = async (count: number) => {
    const start = performance.now();
    const base = workers.length + failed;
    const result = await connectMany(count, Number(values.parallel), (i) => ({
      url: values.connect!,
      token: values.token!,
      name: `${values.prefix}-${base + i}`,
      capacity: Number(values.capacity),
      speed: Number(values.speed),
      mode: values.mode as SimMode,
    }));
    workers.push(...result.workers);
    failed += result.failed;
    print({ ready: workers.length, failed, ms: Math.round(performance.now() - start) });
  };
  await add(Number(values.count));
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of Deno.stdin.readable) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const [command, arg] = buffer.slice(0, newline).trim().split(/\s+/);
      buffer = buffer.slice(newline + 1);
      if (command === "add") await add(Number(arg));
      if (command === "stats") {
        const unacked = workers.reduce((sum, w) => sum + w.unacked, 0);
        const open = workers.filter((w) => w.socket.readyState === WebSocket.OPEN).length;
        print({ stats: { ...counters, unacked, open } });
      }
    }
  }
  // Stdin closed: the bench is done with this fleet (or died).
  for (const worker of workers) worker.close();
  Deno.exit(0);
}

if (import.meta.main) await fleetMain();
