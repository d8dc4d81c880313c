import { z } from "zod";
import { QueenFrameSchema, WorkerFrameSchema } from "./events.ts";
import type { QueenFrame, WorkerFrame } from "./events.ts";
import { BrowserToQueenSchema } from "./browser.ts";
import type { BrowserToQueen } from "./browser.ts";

/** The outcome of decoding: a typed value, or a message that says what is wrong with it. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** Largest text frame either side accepts; larger frames are refused unparsed. */
export const MAX_FRAME_BYTES = 2 * 1024 * 1024;

/** Deepest nesting of arrays and objects a JSON body or frame may have; deeper is refused unparsed. */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether `text` nests arrays and objects deeper than `max`. A scan of the text, before parsing:
 * a deep document would otherwise exhaust the stack of whatever walks it after `JSON.parse`.
 * Strings are skipped with `indexOf` (native speed), not a character at a time: an output
 * frame is nearly all one string, and a scan in JavaScript cost the queen three times the parse.
 */
export function nestedDeeperThan(text: string, max: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x22) {
      // The closing quote: the next one not escaped by an odd run of backslashes.
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return false; // unterminated: nothing nests after it (the parse refuses it)
        let slash = end - 1;
        while (text.charCodeAt(slash) === 0x5c) slash--;
        if ((end - 1 - slash) % 2 === 0) break;
      }
      i = end;
    } else if (code === 0x5b || code === 0x7b) {
      if (++depth > max) return true;
    } else if (code === 0x5d || code === 0x7d) depth--;
  }
  return false;
}

/** `text` parsed as JSON, or a message saying why it is not acceptable JSON. */
export function parseJson(text: string, what = "body"): Decoded<unknown> {
  if (nestedDeeperThan(text)) {
    return { ok: false, error: `${what} nests deeper than ${MAX_JSON_DEPTH} levels` };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: `${what} is not JSON: ${(error as Error).message}` };
  }
}

/** The issues of a failed parse as one line: `path: message; path: message`. */
export function describeIssues(issues: readonly { path: string; message: string }[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join("; ");
}

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
  const parsed = parseJson(raw, "frame");
  return parsed.ok ? validate(schema, parsed.value) : parsed;
}

/** The size of a text frame in UTF-8 bytes, counted only as far as needed to compare with `max`. */
export function frameTooLarge(raw: unknown, max: number = MAX_FRAME_BYTES): boolean {
  if (typeof raw !== "string") return raw instanceof ArrayBuffer && raw.byteLength > max;
  if (raw.length > max) return true;
  return raw.length > max / 3 && new TextEncoder().encode(raw).byteLength > max;
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
