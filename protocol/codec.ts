import { z } from "zod";
import { QueenFrameSchema, WorkerFrameSchema } from "./events.ts";
import type { QueenFrame, WorkerFrame } from "./events.ts";
import { BrowserToQueenSchema } from "./browser.ts";
import type { BrowserToQueen } from "./browser.ts";

/** The outcome of decoding: a typed value, or a message that says what is wrong with it. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** Largest text frame either side accepts; larger frames are refused unparsed. */
export const MAX_FRAME_BYTES = 2 * 1024 * 1024;

/** Validates `value` against `schema`, turning zod's issues into one readable message. */
export function validate<T>(schema: z.ZodType<T>, value: unknown): Decoded<T> {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: z.prettifyError(result.error) };
}

function decodeFrame<T>(schema: z.ZodType<T>, raw: string | ArrayBuffer | Blob | unknown) {
  if (typeof raw !== "string") return { ok: false, error: "frames must be JSON text" } as const;
  // A UTF-16 unit takes 1 to 3 bytes as UTF-8: count bytes only where the length cannot decide.
  const bytes = raw.length > MAX_FRAME_BYTES / 3 && raw.length <= MAX_FRAME_BYTES
    ? new TextEncoder().encode(raw).byteLength
    : raw.length;
  if (bytes > MAX_FRAME_BYTES) {
    return { ok: false, error: `frame of ${bytes} bytes exceeds ${MAX_FRAME_BYTES}` } as const;
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    return { ok: false, error: `frame is not JSON: ${(error as Error).message}` } as const;
  }
  return validate(schema, value);
}

/** Decodes a frame a worker sent to the queen. */
export function decodeWorkerFrame(raw: unknown): Decoded<WorkerFrame> {
  return decodeFrame(WorkerFrameSchema, raw);
}

/** Decodes a frame the queen sent to a worker. */
export function decodeQueenFrame(raw: unknown): Decoded<QueenFrame> {
  return decodeFrame(QueenFrameSchema, raw);
}

/** Decodes a frame a browser sent to the queen. */
export function decodeBrowserFrame(raw: unknown): Decoded<BrowserToQueen> {
  return decodeFrame(BrowserToQueenSchema, raw);
}

/** Encodes any frame as JSON text. */
export function encodeFrame(frame: { event: string }): string {
  return JSON.stringify(frame);
}

/** Lists every problem of a failed parse as `{path, message}`, for API error bodies. */
export function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({
    path: issue.path.length ? issue.path.join(".") : "(body)",
    message: issue.message,
  }));
}
