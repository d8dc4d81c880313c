/**
 * The worker's connection to its queen: a WebSocket that authenticates with the worker token,
 * and reconnects with jittered, capped exponential backoff whenever it drops.
 */
import { decodeQueenFrame, encodeFrame, JobIdSchema } from "../protocol/mod.ts";
import type { QueenFrame, WorkerFrame } from "../protocol/mod.ts";
import { backoff } from "../protocol/backoff.ts";

/** A refusal that retrying cannot fix (a wrong token): the worker stops. */
export class QueenRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QueenRefusedError";
  }
}

export interface ConnectionOptions {
  /** The queen's base URL, `http(s)://host:port`. */
  url: string;
  /**
   * More queens of the same cluster (README, "Several queens"): after a failed or dropped
   * connection the worker tries the next address in turn.
   */
  fallbacks?: string[];
  token: string;
  /** Trusts a private CA for https/wss (from `--ca`). */
  client?: Deno.HttpClient;
  onFrame: (frame: QueenFrame) => void;
  onOpen: () => void;
  onClose: () => void;
  log: (message: string) => void;
  /** Backoff bounds in milliseconds. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * The queen pings every connection at a steady interval (a third of its lease, at most 10 s). A
 * connection silent for this many intervals is taken for dead even when no close arrived (a
 * half-open connection: a dead NAT entry, a pulled cable): it is dropped and a new one made,
 * still within the lease, so the queen re-attaches the running jobs instead of re-queuing them.
 */
const SILENT_INTERVALS = 2;
/** Silence allowed until two pings have shown the interval: half again the longest interval. */
const DEFAULT_SILENCE_MS = 15_000;
/** The least silence ever taken for a dead connection. */
const MIN_SILENCE_MS = 1_000;

/**
 * The job and attempt of a `queue:new` frame that failed validation, read leniently from its
 * JSON; undefined fields when the frame is no dispatch or names no valid job.
 */
export function refusedDispatch(raw: unknown): { id?: string; attempt?: number } {
  if (typeof raw !== "string") return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return {};
  }
  const frame = value as { event?: unknown; attempt?: unknown; job?: { job_id?: unknown } };
  if (typeof frame !== "object" || frame === null || frame.event !== "queue:new") return {};
  const id = JobIdSchema.safeParse(frame.job?.job_id);
  const attempt = frame.attempt;
  if (!id.success || !Number.isInteger(attempt) || (attempt as number) < 1) return {};
  if ((attempt as number) > 1000) return {};
  return { id: id.data, attempt: attempt as number };
}

/** Keeps a worker connected to its queen until `close()`. */
export class QueenConnection {
  readonly #options: ConnectionOptions;
  #socket: WebSocket | undefined;
  #closed = false;
  #failures = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** When the current socket last received a frame, and the queen's clock at its last ping. */
  #lastFrame = 0;
  #lastPing: number | undefined;
  #silenceLimit = DEFAULT_SILENCE_MS;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  readonly #stopped = Promise.withResolvers<void>();
  readonly #urls: string[];
  #at = 0;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#urls = [options.url, ...(options.fallbacks ?? [])];
  }

  /** The queen address in use (or tried next). */
  get url(): string {
    return this.#urls[this.#at];
  }

  /** Resolves when the connection is closed for good; rejects with `QueenRefusedError`. */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  get open(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  start(): void {
    if (this.#closed) return;
    const wsUrl = new URL("/ws/worker", this.url);
    wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
    let socket: WebSocket;
    try {
      socket = new WebSocket(wsUrl, {
        headers: { authorization: `Bearer ${this.#options.token}` },
        client: this.#options.client,
      });
    } catch (error) {
      this.#stopped.reject(
        new QueenRefusedError(`cannot connect to ${wsUrl}: ${(error as Error).message}`),
      );
      return;
    }
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#lastFrame = Date.now();
      this.#lastPing = undefined;
      this.#watch(socket);
      this.#options.log(`connected to ${this.url}`);
      this.#options.onOpen();
    };
    socket.onmessage = (message) => {
      // A socket given up for dead may still deliver late frames: they belong to no one.
      if (this.#socket !== socket) return;
      this.#lastFrame = Date.now();
      const decoded = decodeQueenFrame(message.data);
      if (!decoded.ok) {
        this.#options.log(`refused a frame from the queen: ${decoded.error.split("\n")[0]}`);
        // A refused dispatch names its job, so that the queen ends that attempt with the reason
        // instead of leaving it dispatched for ever.
        this.send({
          event: "error",
          message: decoded.error.slice(0, 4000),
          ...refusedDispatch(message.data),
        });
        return;
      }
      this.#failures = 0;
      if (decoded.value.event === "ping") this.#learnInterval(decoded.value.t);
      this.#options.onFrame(decoded.value);
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      clearTimeout(this.#watchdog);
      if (opened) this.#options.onClose();
      if (this.#closed) return;
      if (!opened) {
        void this.#whyRefused().then((refusal) => {
          if (refusal) {
            this.#closed = true;
            this.#stopped.reject(new QueenRefusedError(refusal));
          } else this.#scheduleRetry(`cannot reach ${this.url}`);
        });
        return;
      }
      this.#scheduleRetry(
        `connection closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`,
      );
    };
  }

  /** Sends a frame; returns false when not connected (the caller keeps what matters). */
  send(frame: WorkerFrame): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    try {
      socket.send(encodeFrame(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends text already encoded as a frame; returns false when not connected. */
  sendText(text: string): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    try {
      socket.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /** Sends a binary frame (job output); returns false when not connected. */
  sendBytes(bytes: Uint8Array): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    try {
      socket.send(bytes);
      return true;
    } catch {
      return false;
    }
  }

  /** Drops the current socket without closing for good: the next attempt reconnects. */
  reconnect(): void {
    this.#socket?.close(4000, "reconnecting");
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#watchdog);
    this.#socket?.close(1000, "worker stopping");
    this.#stopped.resolve();
  }

  /** Pings come at the queen's steady interval: the gap between two sets the silence limit. */
  #learnInterval(t: number): void {
    const last = this.#lastPing;
    this.#lastPing = t;
    if (last === undefined || t <= last) return;
    const limit = Math.max(MIN_SILENCE_MS, Math.round((t - last) * SILENT_INTERVALS));
    if (limit === this.#silenceLimit) return;
    this.#silenceLimit = limit;
    // The watchdog was armed for the old limit.
    if (this.#socket) this.#watch(this.#socket);
  }

  /** Gives `socket` up once the queen has been silent past the limit; see SILENT_INTERVALS. */
  #watch(socket: WebSocket): void {
    clearTimeout(this.#watchdog);
    const left = this.#lastFrame + this.#silenceLimit - Date.now();
    if (left > 0) {
      this.#watchdog = setTimeout(() => this.#watch(socket), left);
      return;
    }
    if (this.#socket !== socket) return;
    // Its close may never complete over a dead connection: do not wait for it.
    this.#socket = undefined;
    try {
      socket.close(4000, "the queen went silent");
    } catch {
      // Already closing.
    }
    this.#options.onClose();
    if (!this.#closed) {
      this.#scheduleRetry(`no word from the queen for ${Date.now() - this.#lastFrame} ms`);
    }
  }

  #scheduleRetry(why: string): void {
    // With several queens, the next one is tried: the one just lost may be gone for good.
    this.#at = (this.#at + 1) % this.#urls.length;
    // Full jitter, no last try: a worker keeps coming back until it is closed.
    const delay = backoff(this.#failures++, {
      minMs: this.#options.minDelayMs ?? 250,
      maxMs: this.#options.maxDelayMs ?? 10_000,
      jitter: true,
    })!;
    this.#options.log(`${why}; retrying in ${Math.round(delay)} ms`);
    this.#retry = setTimeout(() => this.start(), delay);
  }

  /** A WebSocket handshake hides the HTTP status; a plain request tells a wrong token apart. */
  async #whyRefused(): Promise<string | undefined> {
    try {
      const response = await fetch(new URL("/ws/worker", this.url), {
        headers: { authorization: `Bearer ${this.#options.token}` },
        client: this.#options.client,
        signal: AbortSignal.timeout(5_000),
      });
      await response.body?.cancel();
      if (response.status === 401) {
        return "the queen refused the worker token: check --token / STRIDER_WORKER_TOKEN";
      }
    } catch {
      // Unreachable: retry.
    }
    return undefined;
  }
}
