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

/**
 * A job's merged log as plain text, streamed from the store a megabyte at a time so a large log
 * costs the queen no memory; one `Range: bytes=...` is honoured with `206`.
 */
export function logResponse(store: Store, record: JobRecord, range?: string): Response {
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
  // The chunks handed out, freed two steps later (`release`): by the time the stream asks for
  // the chunk after next, the server has passed this one on (it reads the next chunk only after
  // writing one), so freeing it early costs no copy and no wait for the garbage collector.
  const sent: Uint8Array[] = [];
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent.length > 2) release(sent.shift());
      if (at >= end) {
        sent.length = 0;
        return controller.close();
      }
      const next = Math.min(end, at + CHUNK);
      const bytes = await store.readLog(record.id, at, next);
      controller.enqueue(bytes);
      sent.push(bytes);
      at = next;
    },
  });
  return new Response(body, { status, headers });
}
