import type { Masker, Piece, SequenceMasker, Stream } from "./masking.ts";

/** How long output may wait to be sent together with what follows it. */
const BATCH_MS = 5;
/** Output is sent at once when this much is waiting, and never in larger pieces. */
const BATCH_BYTES = 64 * 1024;

/**
 * Gathers a command's output into fewer, larger events: a chatty command writing a line at a
 * time would otherwise cost one frame, one record and one acknowledgement per line. Order
 * between stdout and stderr is kept: switching streams sends what was waiting first. Both
 * streams pass through one masker in the order they were read, so a secret split between them
 * is masked too.
 */
export class OutputBatcher {
  readonly #send: (stream: Stream, text: string) => void;
  readonly #masker: SequenceMasker;
  #stream: Stream = "stdout";
  #pending = "";
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(masker: Masker, send: (stream: Stream, text: string) => void) {
    this.#send = send;
    this.#masker = masker.sequence();
  }

  write(stream: Stream, text: string): void {
    this.#take(this.#masker.push(stream, text));
    if (this.#pending.length >= BATCH_BYTES) this.#flush();
    else if (this.#pending) this.#timer ??= setTimeout(() => this.#flush(), BATCH_MS);
  }

  /** Sends everything, including what the masker held back. */
  close(): void {
    this.#take(this.#masker.flush());
    this.#flush();
  }

  #take(pieces: Piece[]): void {
    for (const piece of pieces) {
      if (piece.stream !== this.#stream) {
        this.#flush();
        this.#stream = piece.stream;
      }
      this.#pending += piece.text;
    }
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const text = this.#pending;
    this.#pending = "";
    for (let i = 0; i < text.length;) {
      let end = Math.min(i + BATCH_BYTES, text.length);
      // Never between the two halves of a surrogate pair: each half alone would reach the log
      // as U+FFFD.
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff && end - 1 > i) end--;
      this.#send(this.#stream, text.slice(i, end));
      i = end;
    }
  }
}
