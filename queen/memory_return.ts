/**
 * Giving memory back after a large log. Streaming a log through the queen allocates its bytes a
 * few times over as short-lived strings; V8 grows its heap for that rate (to ~90 MB from ~40 on a
 * 200 MB log, measured on Deno 2.9) and shrinks it only when a full collection happens, which an
 * idle queen may not run for minutes: 15 s after three 200 MB jobs the queen held 186–204 MB
 * against 113–118 MB idle, and one full collection brought it back to 110 MB.
 *
 * So once output recorded or replayed to followers has passed `AFTER_BYTES` and then none has
 * moved for `QUIET_MS`, the queen runs one full collection (about 100 ms of its thread, once per
 * quiet spell after a large log, never while output streams). Deno exposes no collection call; `--expose-gc` is
 * turned on here, for this process only, through `node:v8`, and the call is taken from a fresh
 * `node:vm` context (the queen's own global gets no `gc`). Where that is unavailable, nothing
 * happens and V8 shrinks its heap when it gets to it.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Output bytes since the last collection that make one worth its pause. */
export const AFTER_BYTES = 64 * 1024 * 1024;
/** Quiet time (no output recorded) before collecting. */
export const QUIET_MS = 2_000;

let collect: (() => void) | null | undefined;

/** The full-collection call, or null when the runtime does not give one. */
function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc");
    collect = typeof gc === "function" ? () => gc() : null;
  } catch {
    collect = null;
  }
  return collect;
}

/** Whether this runtime lets the queen run a full collection (Deno 2.9 does). */
export function canCollect(): boolean {
  return collector() !== null;
}

/** Watches output as it is recorded and collects once after a large log, when quiet. */
export class MemoryReturn {
  readonly #afterBytes: number;
  readonly #quietMs: number;
  readonly #now: () => number;
  readonly #collect: () => void;
  #bytes = 0;
  #lastOutput = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    options: {
      afterBytes?: number;
      quietMs?: number;
      now?: () => number;
      collect?: () => void;
    } = {},
  ) {
    this.#afterBytes = options.afterBytes ?? AFTER_BYTES;
    this.#quietMs = options.quietMs ?? QUIET_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#collect = options.collect ?? (() => collector()?.());
  }

  /** Notes `bytes` of output just recorded. */
  output(bytes: number): void {
    this.#bytes += bytes;
    this.#lastOutput = this.#now();
    if (this.#bytes >= this.#afterBytes) this.#arm(this.#quietMs);
  }

  /** Runs the collection if output has been quiet long enough; otherwise waits on. */
  check(): void {
    this.#timer = undefined;
    if (this.#bytes < this.#afterBytes) return;
    const quiet = this.#now() - this.#lastOutput;
    if (quiet < this.#quietMs) return this.#arm(this.#quietMs - quiet);
    this.#bytes = 0;
    this.#collect();
  }

  /** Stops the timer (the queen is closing). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) return;
    const timer = setTimeout(() => this.check(), ms);
    // A pending collection never keeps the process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }
}

/**
 * The process's one watcher: output recorded (the queen's hub) and events replayed to late
 * followers (`sse.ts`) both count.
 */
export const queenMemory = new MemoryReturn();
