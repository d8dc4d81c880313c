import type { Masker, StreamMasker } from "./masking.ts";

type Stream = "stdout" | "stderr";

/** How long output may wait to be sent together with what follows it. */
const BATCH_MS = 5;
/** Output is sent at once when this much is waiting, and never in larger pieces. */
const BATCH_BYTES = 64 * 1024;

/**
 * Gathers a command's output into fewer, larger events: a chatty command writing a line at a
 * time would otherwise cost one frame, one record and one acknowledgement per line. Order
 * between stdout and stderr is kept: switching streams sends what was waiting first.
 */
export class OutputBatcher {
  readonly #send: (stream: Stream, text: string) => void;
  readonly #maskers: Record<Stream, StreamMasker>;
  #stream: Stream = "stdout";
  #pending = "";
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(masker: Masker, send: (stream: Stream, text: string) => void) {
    this.#send = send;
    this.#maskers = { stdout: masker.stream(), stderr: masker.stream() };
  }

  write(stream: Stream, text: string): void {
    if (stream !== this.#stream) {
      this.#flush();
      this.#stream = stream;
    }
    this.#pending += this.#maskers[stream].push(text);
    if (this.#pending.length >= BATCH_BYTES) this.#flush();
    else if (this.#pending) this.#timer ??= setTimeout(() => this.#flush(), BATCH_MS);
  }

  /** Sends everything, including what the maskers held back. */
  close(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.#maskers[stream].flush();
      if (!rest) continue;
      if (stream !== this.#stream) this.#flush();
      this.#stream = stream;
      this.#pending += rest;
    }
    this.#flush();
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const text = this.#pending;
    this.#pending = "";
    for (let i = 0; i < text.length; i += BATCH_BYTES) {
      this.#send(this.#stream, text.slice(i, i + BATCH_BYTES));
    }
  }
}
