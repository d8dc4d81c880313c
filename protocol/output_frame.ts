/**
 * Binary output frames: a job's output from worker to queen as a WebSocket binary frame, a
 * fixed header and the text's UTF-8 bytes, instead of a JSON text frame. It spares the JSON
 * escaping of every byte in the worker and the parse (and depth scan) of it in the queen, and
 * lets the queen store the bytes it received without encoding the text again.
 *
 * Only a queen and a worker that both announce `binary_output` (in `drone:query-info` and in
 * `drone:info`) use them; otherwise output goes as JSON frames (`job:cmd:stdout` and friends),
 * which every queen and worker still understands. The layout (version 1), big-endian:
 *
 * | offset | size | field                                                                        |
 * | -----: | ---: | ---------------------------------------------------------------------------- |
 * |      0 |    1 | layout version: 1                                                            |
 * |      1 |    1 | event: 1 `job:stdout`, 2 `job:stderr`, 3 `job:cmd:stdout`, 4 `job:cmd:stderr` |
 * |      2 |    2 | attempt, 1 to 1000                                                           |
 * |      4 |    4 | num (the command), 0 to 1,000,000; 0 for `job:stdout`/`job:stderr`            |
 * |      8 |    8 | seq, 1 to 2^53 - 1                                                            |
 * |     16 |    1 | length L of the job id, 1 to 64                                              |
 * |     17 |    L | the job id (ASCII, as `JobIdSchema`)                                         |
 * | 17 + L |    … | the output: valid UTF-8, at most `LIMITS.output` UTF-16 units once decoded   |
 *
 * A frame is held to the same limits as a JSON frame: `MAX_FRAME_BYTES` in all, and the fields'
 * ranges above; anything else is refused with a message saying what is wrong, never thrown.
 */
import type { Decoded } from "./codec.ts";
import { MAX_FRAME_BYTES } from "./codec.ts";
import type { WorkerJobEvent } from "./events.ts";
import { JobIdSchema } from "./job_spec.ts";
import { LIMITS } from "./limits.ts";

/** The layout version this release writes and reads. */
export const OUTPUT_FRAME_VERSION = 1;
/** The header before the job id. */
export const OUTPUT_HEADER_BYTES = 17;

/** The layout as data, for `protocol/schema.json` (which cannot describe bytes otherwise). */
export const OUTPUT_FRAME_LAYOUT = [
  { offset: 0, size: 1, field: "version", value: "1" },
  {
    offset: 1,
    size: 1,
    field: "event",
    value: "1 job:stdout, 2 job:stderr, 3 job:cmd:stdout, 4 job:cmd:stderr",
  },
  { offset: 2, size: 2, field: "attempt", value: "1 to 1000, unsigned big-endian" },
  {
    offset: 4,
    size: 4,
    field: "num",
    value: "0 to 1000000 (0 for job:stdout/job:stderr), unsigned big-endian",
  },
  { offset: 8, size: 8, field: "seq", value: "1 to 2^53 - 1, unsigned big-endian" },
  { offset: 16, size: 1, field: "id_length", value: "L, 1 to 64" },
  { offset: 17, size: "L", field: "id", value: "the job id, ASCII (JobIdSchema)" },
  {
    offset: "17 + L",
    size: "the rest",
    field: "text",
    value: "valid UTF-8; at most 1048576 UTF-16 units decoded; the frame at most 2 MiB",
  },
] as const;

/** The job events a binary output frame carries. */
export type OutputEvent = Extract<
  WorkerJobEvent,
  { event: "job:stdout" | "job:stderr" | "job:cmd:stdout" | "job:cmd:stderr" }
>;

const KINDS = ["job:stdout", "job:stderr", "job:cmd:stdout", "job:cmd:stderr"] as const;
const KIND_CODE: Record<OutputEvent["event"], number> = {
  "job:stdout": 1,
  "job:stderr": 2,
  "job:cmd:stdout": 3,
  "job:cmd:stderr": 4,
};

/** Whether `event` is output a binary frame can carry. */
export function isOutputEvent(event: WorkerJobEvent): event is OutputEvent {
  return event.event in KIND_CODE;
}

const encoder = new TextEncoder();
// The lenient decoder is ten times faster on ASCII than the strict one; the strict one only
// checks text the lenient one put a U+FFFD into (invalid, or a U+FFFD the job printed).
// ignoreBOM: a chunk's leading U+FEFF is output, not a marker to drop.
const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Room frames are encoded in before they are copied out at their size. */
let scratch = new Uint8Array(256 * 1024);
let scratchView = new DataView(scratch.buffer);

/**
 * `event` as a binary output frame. Text is encoded as UTF-8 straight after the header; a lone
 * surrogate (which no output decoded from bytes holds) becomes U+FFFD, as it would in JSON text
 * the queen encodes for its log.
 */
export function encodeOutputFrame(event: OutputEvent): Uint8Array {
  const id = event.id;
  const idLength = id.length;
  const at = OUTPUT_HEADER_BYTES + idLength;
  // A UTF-16 unit is at most 3 bytes of UTF-8: encode into scratch room, then copy out the
  // frame at its size (the socket may still read the frame after this returns).
  const most = at + event.text.length * 3;
  if (most > scratch.length) scratch = new Uint8Array(Math.max(most, scratch.length * 2));
  const frame = scratch;
  const view = scratchView.buffer === frame.buffer ? scratchView : new DataView(frame.buffer);
  scratchView = view;
  frame[0] = OUTPUT_FRAME_VERSION;
  frame[1] = KIND_CODE[event.event];
  view.setUint16(2, event.attempt);
  view.setUint32(4, "num" in event ? event.num : 0);
  view.setUint32(8, Math.floor(event.seq / 2 ** 32));
  view.setUint32(12, event.seq >>> 0);
  frame[16] = idLength;
  for (let i = 0; i < idLength; i++) frame[OUTPUT_HEADER_BYTES + i] = id.charCodeAt(i);
  const { written } = encoder.encodeInto(event.text, frame.subarray(at));
  return frame.slice(0, at + written);
}

/** A decoded output frame: the event, and its text's bytes as received (a view, no copy). */
export interface DecodedOutput {
  event: OutputEvent;
  bytes: Uint8Array;
}

/**
 * Decodes a binary output frame from a worker, refusing any frame that is truncated, too large,
 * of an unknown version or event, out of range in a field, or whose text is not valid UTF-8.
 */
export function decodeOutputFrame(raw: unknown): Decoded<DecodedOutput> {
  let frame: Uint8Array;
  if (raw instanceof ArrayBuffer) frame = new Uint8Array(raw);
  else if (raw instanceof Uint8Array) frame = raw;
  else return { ok: false, error: "a binary output frame must be bytes" };
  if (frame.byteLength > MAX_FRAME_BYTES) {
    return {
      ok: false,
      error: `binary output frame of ${frame.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`,
    };
  }
  if (frame.byteLength < OUTPUT_HEADER_BYTES) {
    return {
      ok: false,
      error: `binary output frame of ${frame.byteLength} bytes is shorter than its ` +
        `${OUTPUT_HEADER_BYTES}-byte header`,
    };
  }
  if (frame[0] !== OUTPUT_FRAME_VERSION) {
    return {
      ok: false,
      error: `binary output frame of layout version ${frame[0]}: this side reads version ` +
        `${OUTPUT_FRAME_VERSION} only`,
    };
  }
  const kind = KINDS[frame[1] - 1];
  if (!kind) return { ok: false, error: `binary output frame: unknown event code ${frame[1]}` };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const attempt = view.getUint16(2);
  if (attempt < 1 || attempt > 1000) {
    return { ok: false, error: `binary output frame: attempt ${attempt} is not 1 to 1000` };
  }
  const num = view.getUint32(4);
  const cmd = kind === "job:cmd:stdout" || kind === "job:cmd:stderr";
  if (num > 1_000_000 || (!cmd && num !== 0)) {
    return {
      ok: false,
      error: `binary output frame: num ${num} is not ${cmd ? "0 to 1000000" : "0"} for ${kind}`,
    };
  }
  const high = view.getUint32(8);
  const seq = high * 2 ** 32 + view.getUint32(12);
  if (seq < 1 || seq > Number.MAX_SAFE_INTEGER) {
    return { ok: false, error: `binary output frame: seq is not 1 to ${Number.MAX_SAFE_INTEGER}` };
  }
  const idLength = frame[16];
  const textAt = OUTPUT_HEADER_BYTES + idLength;
  if (idLength < 1 || idLength > 64 || textAt > frame.byteLength) {
    return {
      ok: false,
      error: `binary output frame: a job id of ${idLength} bytes does not fit the frame ` +
        "(1 to 64 bytes, before the text)",
    };
  }
  let id = "";
  for (let i = OUTPUT_HEADER_BYTES; i < textAt; i++) id += String.fromCharCode(frame[i]);
  if (!JobIdSchema.safeParse(id).success) {
    return {
      ok: false,
      error: "binary output frame: the job id must be 1-64 letters, digits, '.', '_' or '-'",
    };
  }
  const bytes = frame.subarray(textAt);
  const text = lenient.decode(bytes);
  if (text.includes("\ufffd")) {
    try {
      strict.decode(bytes);
    } catch {
      return { ok: false, error: "binary output frame: the text is not valid UTF-8" };
    }
  }
  if (text.length > LIMITS.output) {
    return {
      ok: false,
      error: `binary output frame: text of ${text.length} characters exceeds ${LIMITS.output}`,
    };
  }
  const event = (cmd ? { event: kind, id, attempt, seq, num, text } : {
    event: kind,
    id,
    attempt,
    seq,
    text,
  }) as OutputEvent;
  return { ok: true, value: { event, bytes } };
}
