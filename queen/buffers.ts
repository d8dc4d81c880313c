/**
 * Releasing large byte arrays at once. An array's bytes live outside V8's heap, in the process's
 * malloc heap, and are freed only when the garbage collector finds the array dead, which for
 * short-lived 64 KiB–1 MiB arrays made at hundreds of MB/s is late: measured on Deno 2.9, reading
 * 200 MB of log chunks out of SQLite grew the malloc heap by ~95 MB that stayed resident after
 * the read (freed, but fragmented, never returned); the same reads releasing each chunk once
 * copied, by nothing. `ArrayBuffer.prototype.transfer(0)` detaches the array and frees its old
 * bytes at once (or, when native code still holds them, when it lets go).
 */

/**
 * Frees `bytes` now, if it is (nearly) the whole of its own buffer from its start: a view into a
 * larger or shared one is left alone. The caller must hold the only reference that is still
 * used: afterwards the array is empty.
 */
export function release(bytes: unknown): void {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < MIN_BYTES) return;
  const buffer = bytes.buffer;
  if (
    !(buffer instanceof ArrayBuffer) || buffer.resizable || buffer.detached ||
    bytes.byteOffset !== 0 || buffer.byteLength - bytes.byteLength > SLACK
  ) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable (a buffer the runtime keeps): the collector frees it.
  }
}

/**
 * Frees the whole buffer behind `bytes` now, whatever part of it the view covers: for a buffer
 * the caller owns entirely (a binary WebSocket message whose output `bytes` is the tail). Only
 * once nothing reads the buffer any more: afterwards every view of it is empty.
 */
export function releaseWhole(bytes: Uint8Array): void {
  const buffer = bytes.buffer;
  if (!(buffer instanceof ArrayBuffer) || buffer.resizable || buffer.detached) return;
  if (buffer.byteLength < MIN_BYTES) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable (a buffer the runtime keeps): the collector frees it.
  }
}

/** Bytes a buffer may hold past its view (zlib's output buffer is one byte longer). */
const SLACK = 16;
/** Arrays smaller than this are left to the collector: the cost is in the large ones. */
const MIN_BYTES = 4 * 1024;
