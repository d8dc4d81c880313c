/**
 * Command output for the dashboard: the tail that a page shows first, the earlier parts fetched
 * on demand, and ANSI colours turned into HTML (never raw escapes).
 */
import { AnsiUp } from "ansi_up";
import type { JobView } from "../../protocol/mod.ts";
import { PHASES } from "../../protocol/phases.ts";
import type { JobRecord, Store } from "../store.ts";

/** Lines of each output a page shows before "earlier output" links. */
export const TAIL_LINES = 2000;
/** Characters of each output a page shows at most, whatever the number of lines. */
export const TAIL_CHARS = 256 * 1024;

/** A part of an output: its text and where it starts in the whole. */
export interface OutputPart {
  text: string;
  /** Characters of the whole before this part. */
  start: number;
}

/**
 * The last `lines` lines of `text` before character `end`, at most `maxChars` characters (then
 * starting at a line boundary where one is near).
 */
export function tailOf(
  text: string,
  options: { end?: number; lines?: number; maxChars?: number } = {},
): OutputPart {
  const end = Math.min(options.end ?? text.length, text.length);
  const lines = options.lines ?? TAIL_LINES;
  const maxChars = options.maxChars ?? TAIL_CHARS;
  // A final newline ends the last line rather than starting another.
  let at = text[end - 1] === "\n" ? end - 1 : end;
  let seen = 0;
  const floor = Math.max(0, end - maxChars);
  while (at > floor) {
    const newline = text.lastIndexOf("\n", at - 1);
    if (newline < floor) {
      at = floor;
      break;
    }
    if (++seen >= lines) {
      at = newline + 1;
      break;
    }
    at = newline;
  }
  if (at === floor && floor > 0) {
    // Cut inside a line: start at the next line if there is one in the part.
    const next = text.indexOf("\n", floor);
    if (next !== -1 && next < end - 1) at = next + 1;
  } else if (at > 0 && text[at - 1] !== "\n") {
    at = text.lastIndexOf("\n", at - 1) + 1;
  }
  return { text: text.slice(at, end), start: at };
}

/**
 * A renderer of ANSI colours as HTML classes and OSC 8 links only when http(s); it keeps the
 * colour across calls, so the browser script feeds a live output through one, chunk by chunk.
 */
export function newAnsi(): AnsiUp {
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  // OSC 8 links in output become links only for http(s); others are dropped, text and all.
  ansi.url_allowlist = { http: 1, https: 1 };
  return ansi;
}

/** `text` with ANSI colours as HTML spans and http(s) OSC 8 links; everything else escaped. */
export function ansiToHtml(text: string): string {
  return newAnsi().ansi_to_html(text);
}

/**
 * A copy of `view` whose outputs hold only their last `lines` lines, for `job:info`, with the
 * characters left out of each (by command num, `job` for the job-level output).
 */
export function tailView(
  view: JobView,
  lines: number,
): { job: JobView; omitted: Record<string, number> } {
  const omitted: Record<string, number> = {};
  const cut = (key: string, output: string) => {
    const tail = tailOf(output, { lines });
    if (tail.start > 0) omitted[key] = tail.start;
    return tail.text;
  };
  const phases = Object.fromEntries(PHASES.map((phase) => {
    const p = view.phases[phase];
    return [phase, {
      ...p,
      commands: p.commands.map((c) => ({ ...c, output: cut(String(c.num), c.output) })),
    }];
  })) as JobView["phases"];
  return { job: { ...view, phases, output: cut("job", view.output) }, omitted };
}

/**
 * The end of a job's full log (its last lines, at most `TAIL_CHARS` bytes), starting at a whole
 * line, with the byte of the log it starts at.
 */
export async function logTail(
  store: Store,
  record: JobRecord,
): Promise<OutputPart & { startByte: number }> {
  const end = record.logBytes;
  let startByte = Math.max(0, end - TAIL_CHARS);
  let bytes = await store.readLog(record.id, startByte, end);
  if (startByte > 0) {
    // Cut at a newline byte, so that no character is split either.
    const newline = bytes.indexOf(10);
    if (newline !== -1 && newline < bytes.length - 1) {
      bytes = bytes.subarray(newline + 1);
      startByte += newline + 1;
    }
  }
  const text = new TextDecoder().decode(bytes);
  const tail = tailOf(text, { maxChars: Infinity });
  const skipped = new TextEncoder().encode(text.slice(0, tail.start)).byteLength;
  return { text: tail.text, start: tail.start, startByte: startByte + skipped };
}
