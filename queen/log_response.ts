import type { JobRecord, Store } from "./store.ts";
import { release } from "./buffers.ts";

/**
 * A log is the job's own output: a browser must never sniff it into HTML or run anything in it,
 * even opened directly at the queen's origin.
 */
export const RAW_LOG_HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; sandbox",
} as const;

/** Log bytes read from the store per step of a streamed response. */
const CHUNK = 1024 * 1024;

/** Parses a single `bytes=` range against `total`; undefined when it cannot be satisfied. */
export function parseRange(header: string, total: number): [number, number] | undefined {
  const match = header.match(/^bytes=(\d*)-(\d*)$/);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  let start: number;
  let end: number;
  if (match[1] === "") {
    start = Math.max(0, total - Number(match[2]));
    end = total;
  } else {
    start = Number(match[1]);
    end = match[2] === "" ? total : Math.min(total, Number(match[2]) + 1);
  }
  return start < end && start < total ? [start, end] : undefined;
}

/** How a log response is sent. */
export interface LogResponseOptions {
  /**
   * The response goes to a client through `Deno.serve`, which passes each chunk on to the socket
   * before it reads the next: a chunk is then freed (`release`) two reads later instead of left
   * to the garbage collector (reading a 200 MB log back grew the queen by ~75 MB without, ~3 MB
   * with). Not for a response read in process (`Response.arrayBuffer()` keeps every chunk).
   */
  freeSent?: boolean;
}

/**
 * A job's merged log as plain text, streamed from the store a megabyte at a time so a large log
 * costs the queen no memory; one `Range: bytes=...` is honoured with `206`.
 */
export function logResponse(
  store: Store,
  record: JobRecord,
  range?: string,
  options: LogResponseOptions = {},
): Response {
  const total = record.logBytes;
  let start = 0;
  let end = total;
  let status = 200;
  const headers = new Headers({
    "content-type": "text/plain; charset=utf-8",
    "accept-ranges": "bytes",
    ...RAW_LOG_HEADERS,
  });
  if (range) {
    const parsed = parseRange(range.trim(), total);
    if (!parsed) {
      headers.set("content-range", `bytes */${total}`);
      return new Response(`range not satisfiable: the log has ${total} bytes\n`, {
        status: 416,
        headers,
      });
    }
    [start, end] = parsed;
    status = 206;
    headers.set("content-range", `bytes ${start}-${end - 1}/${total}`);
  }
  headers.set("content-length", String(end - start));
  let at = start;
  // With `freeSent`: the chunks handed out, oldest first. When the stream asks for a chunk, the
  // server has just taken the one before, and passed on the one before that.
  const sent: Uint8Array[] = [];
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (sent.length > 2) release(sent.shift());
      if (at >= end) {
        sent.length = 0;
        return controller.close();
      }
      const next = Math.min(end, at + CHUNK);
      const bytes = await store.readLog(record.id, at, next);
      controller.enqueue(bytes);
      if (options.freeSent) sent.push(bytes);
      at = next;
    },
    cancel() {
      sent.length = 0;
    },
  });
  return new Response(body, { status, headers });
}
