/**
 * Finished logs kept compressed, apart from any database: a job's merged log is cut into blocks
 * of `LOG_BLOCK_BYTES` raw bytes, each compressed on its own (raw deflate), so that a range read
 * inflates only the blocks it touches. Block `n` holds raw bytes `[n × size, (n + 1) × size)`;
 * the last is shorter. A store keeps the blocks as rows (or objects) by job and number, and calls
 * `packLog` once a job is final and `readPacked` to serve `readLog`.
 *
 * Compression runs on libuv's thread pool (node:zlib's asynchronous calls), one block at a time,
 * so packing a 100 MB log neither blocks the queen's thread for long nor holds the log in memory.
 */
import { deflateRaw, inflateRawSync } from "node:zlib";
import { release } from "./buffers.ts";

/** Raw bytes per block: a range read inflates at most this much per block it touches. */
export const LOG_BLOCK_BYTES = 1024 * 1024;

/** zlib's level: 6 (its default) packs typical build output 5–10× at ~50 MB/s per core. */
const LEVEL = 6;

/** Compresses one block of raw log bytes, off the JavaScript thread. */
export function packBlock(raw: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    deflateRaw(raw, { level: LEVEL }, (error, packed) => error ? reject(error) : resolve(packed))
  );
}

/** Inflates one block (at most `LOG_BLOCK_BYTES`, a millisecond or two). */
export function unpackBlock(packed: Uint8Array): Uint8Array {
  // Room for a whole block in one output buffer: zlib's default (16 KiB pieces, then joined)
  // made ~65 arrays of garbage per block read, which reading a long log piled up by the hundred
  // MB before the collector ran.
  const raw = inflateRawSync(packed, { chunkSize: LOG_BLOCK_BYTES + 1 });
  // A plain view of zlib's Buffer (no copy): callers get what the store's other reads give.
  // The buffer is the view's alone, and at most a byte longer: `release` may free it.
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
}

/**
 * A text column that may have been packed: packed text is stored as bytes (raw deflate), plain
 * text as a string. For a finished job's saved view, which holds up to 1 MiB of its output.
 */
export function unpackText(value: unknown): string {
  return value instanceof Uint8Array ? decoder.decode(unpackBlock(value)) : String(value);
}

/** Packs a text worth packing (at least `PACK_TEXT_FROM` bytes); undefined when it is not. */
export async function packText(text: string): Promise<Uint8Array | undefined> {
  const bytes = encoder.encode(text);
  return bytes.length >= PACK_TEXT_FROM ? await packBlock(bytes) : undefined;
}

/** Below this, a text is not worth packing (nor the inflating on every read). */
export const PACK_TEXT_FROM = 16 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The numbers of the blocks holding bytes `[start, end)`, first and last inclusive. */
export function blocksFor(start: number, end: number): { first: number; last: number } {
  return {
    first: Math.floor(start / LOG_BLOCK_BYTES),
    last: Math.floor((Math.max(start + 1, end) - 1) / LOG_BLOCK_BYTES),
  };
}

/** How many blocks a log of `total` bytes makes. */
export function blockCount(total: number): number {
  return Math.ceil(total / LOG_BLOCK_BYTES);
}

/** One block as a store keeps it. */
export interface PackedBlock {
  n: number;
  data: Uint8Array;
}

/**
 * Compresses a log of `total` bytes block by block: `read` gives raw bytes `[start, end)` (from
 * the store's uncompressed chunks) and `write` keeps one packed block. Returns the packed size.
 * Nothing is marked here: the store marks the log packed (and drops its raw chunks) in one
 * transaction after the last block, so a crash half way leaves the raw log in force.
 */
export async function packLog(
  total: number,
  read: (start: number, end: number) => Uint8Array | Promise<Uint8Array>,
  write: (block: PackedBlock) => void | Promise<void>,
): Promise<number> {
  let packedBytes = 0;
  for (let n = 0; n < blockCount(total); n++) {
    const start = n * LOG_BLOCK_BYTES;
    const raw = await read(start, Math.min(total, start + LOG_BLOCK_BYTES));
    const data = await packBlock(raw);
    packedBytes += data.length;
    await write({ n, data });
  }
  return packedBytes;
}

/**
 * Bytes `[start, end)` of a packed log of `total` bytes; `blocks(first, last)` gives the packed
 * blocks in that span, in order. Only those are inflated.
 */
export async function readPacked(
  start: number,
  end: number,
  total: number,
  blocks: (first: number, last: number) => PackedBlock[] | Promise<PackedBlock[]>,
): Promise<Uint8Array> {
  end = Math.min(end, total);
  if (start >= end) return new Uint8Array(0);
  const { first, last } = blocksFor(start, end);
  const found = await blocks(first, last);
  // A whole block (what a log read from the start asks for, step by step): no copy.
  if (
    found.length === 1 && found[0].n === first && start === first * LOG_BLOCK_BYTES &&
    end === Math.min(total, start + LOG_BLOCK_BYTES)
  ) {
    const raw = unpackBlock(found[0].data);
    if (raw.length === end - start) return raw;
  }
  const out = new Uint8Array(end - start);
  for (const { n, data } of found) {
    const raw = unpackBlock(data);
    placeBlock(out, start, end, n, raw);
    release(raw);
  }
  return out;
}

/** Copies the part of block `n` (inflated) that falls in `[start, end)` into `out`. */
function placeBlock(out: Uint8Array, start: number, end: number, n: number, raw: Uint8Array) {
  const blockStart = n * LOG_BLOCK_BYTES;
  const from = Math.max(start, blockStart);
  const to = Math.min(end, blockStart + raw.length);
  if (from < to) out.set(raw.subarray(from - blockStart, to - blockStart), from - start);
}

/**
 * Reads many small ranges of one packed log in increasing order (an output event's text at a
 * time, when replaying a finished job's events), inflating each block once.
 */
export class PackedLogReader {
  readonly #total: number;
  readonly #block: (n: number) => Uint8Array | undefined;
  #n = -1;
  #raw: Uint8Array = new Uint8Array(0);

  /** `block(n)` gives packed block `n`, or undefined when it is missing. */
  constructor(total: number, block: (n: number) => Uint8Array | undefined) {
    this.#total = total;
    this.#block = block;
  }

  /** Bytes `[start, end)`, synchronously. */
  read(start: number, end: number): Uint8Array {
    end = Math.min(end, this.#total);
    const out = new Uint8Array(Math.max(0, end - start));
    if (start >= end) return out;
    const { first, last } = blocksFor(start, end);
    for (let n = first; n <= last; n++) {
      if (n !== this.#n) {
        const packed = this.#block(n);
        if (!packed) continue;
        release(this.#raw);
        this.#raw = unpackBlock(packed);
        this.#n = n;
      }
      placeBlock(out, start, end, n, this.#raw);
    }
    return out;
  }

  /** Frees the block kept inflated: the reader is not used again. */
  close(): void {
    release(this.#raw);
    this.#raw = new Uint8Array(0);
    this.#n = -1;
  }
}
