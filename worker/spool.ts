import { dirname } from "node:path";

const encoder = new TextEncoder();
const CHUNK = 64 * 1024;

/**
 * A first-in, first-out queue of text lines on disk: lines are appended at the end and taken
 * from the front. Synchronous, so the outbox keeps its order without awaiting anything.
 */
export class Spool {
  readonly #path: string;
  readonly #file: Deno.FsFile;
  readonly #decoder = new TextDecoder();
  #writePos = 0;
  #readPos = 0;
  #buffer = "";
  #pending = 0;

  constructor(path: string) {
    this.#path = path;
    // Only the worker's user: whatever is in it is sent to the queen as this worker's events.
    Deno.mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#file = Deno.openSync(path, {
      read: true,
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
  }

  /** Lines appended and not yet taken. */
  get pending(): number {
    return this.#pending;
  }

  append(line: string): void {
    let bytes = encoder.encode(line + "\n");
    this.#file.seekSync(this.#writePos, Deno.SeekMode.Start);
    while (bytes.length > 0) {
      const written = this.#file.writeSync(bytes);
      this.#writePos += written;
      bytes = bytes.subarray(written);
    }
    this.#pending++;
  }

  /** Takes up to `count` lines from the front, in order. */
  take(count: number): string[] {
    const lines: string[] = [];
    while (lines.length < count && this.#pending > 0) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        lines.push(this.#buffer.slice(0, newline));
        this.#buffer = this.#buffer.slice(newline + 1);
        this.#pending--;
        continue;
      }
      const chunk = new Uint8Array(CHUNK);
      this.#file.seekSync(this.#readPos, Deno.SeekMode.Start);
      const read = this.#file.readSync(chunk);
      if (!read) throw new Error(`spool ${this.#path} ended before its ${this.#pending} lines`);
      this.#readPos += read;
      this.#buffer += this.#decoder.decode(chunk.subarray(0, read), { stream: true });
    }
    return lines;
  }

  /** Closes and deletes the file. */
  remove(): void {
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
    try {
      Deno.removeSync(this.#path);
    } catch {
      // Already gone.
    }
  }
}
