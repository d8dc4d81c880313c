/**
 * A job's stored log by lines, read from the store in chunks so that a 50 MB log is never held
 * whole: a window of numbered lines (the tail, or around a line), and find-in-log over all of it,
 * bounded per request and resumed with a cursor.
 */
import type { RecordedEvent } from "../../protocol/mod.ts";
import { LogBuilder } from "../job_log.ts";
import { utf8Length } from "../../protocol/cap_text.ts";

/** The part of the store these read (awaited, so an async store fits too). */
export interface LogReader {
  readLog(id: string, start: number, end: number): Uint8Array | Promise<Uint8Array>;
}

/** Bytes read from the store at once. */
const CHUNK = 1 << 20;
/** Lines a window shows at most, and bytes of them. */
export const WINDOW_LINES = 1000;
const WINDOW_BYTES = 2 << 20;
/** Bytes one search request scans at most before it answers with a cursor to go on. */
export const SEARCH_BYTES = 16 << 20;
/** Matches one search request returns at most. */
export const SEARCH_MATCHES = 100;
/** Characters of a matching line returned around the match. */
const MATCH_CONTEXT = 300;
/** Every this many lines, the line's byte offset is remembered while counting. */
const SPARSE = 256;

const decoder = new TextDecoder();

/** ANSI escape sequences (colours, cursor moves, OSC links), left out of what search compares. */
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/** `text` without its ANSI escape sequences. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** Reads `[start, end)` of the log chunk by chunk. */
async function* chunks(log: LogReader, id: string, start: number, end: number) {
  for (let at = start; at < end; at += CHUNK) {
    yield { at, bytes: await log.readLog(id, at, Math.min(end, at + CHUNK)) };
  }
}

/**
 * Line indexes of recently shown logs, per store and job id: a job's log only grows, so its size
 * says whether the index is current.
 */
const INDEXES = new WeakMap<
  LogReader,
  Map<string, { size: number; sparse: number[]; lines: number }>
>();
/** Logs whose index is kept (each about 32 KB per million lines). */
const KEEP_INDEXES = 32;

/** Line starts of every `SPARSE`th line and the number of lines, from the kept index if current. */
async function countLines(log: LogReader, id: string, size: number) {
  let indexes = INDEXES.get(log);
  if (!indexes) INDEXES.set(log, indexes = new Map());
  const kept = indexes.get(id);
  if (kept?.size === size) return kept;
  const index = { size, ...(await scanLines(log, id, size)) };
  indexes.delete(id);
  indexes.set(id, index);
  if (indexes.size > KEEP_INDEXES) indexes.delete(indexes.keys().next().value!);
  return index;
}

/** Line starts (byte offsets) of every `SPARSE`th line, and the number of lines. */
async function scanLines(log: LogReader, id: string, size: number) {
  const sparse: number[] = [0];
  let lines = 0;
  let lastByte = 10;
  for await (const { at, bytes } of chunks(log, id, 0, size)) {
    let i = bytes.indexOf(10);
    while (i !== -1) {
      lines++;
      if (lines % SPARSE === 0) sparse.push(at + i + 1);
      i = bytes.indexOf(10, i + 1);
    }
    if (bytes.length) lastByte = bytes[bytes.length - 1];
  }
  // A last line without a newline is a line too.
  if (size > 0 && lastByte !== 10) lines++;
  return { sparse, lines };
}

/** A window of a log's lines: `first` is the number (from 1) of `lines[0]`. */
export interface LineWindow {
  first: number;
  lines: string[];
  /** Byte offset of each line's start. */
  starts: number[];
  total: number;
}

/**
 * The lines around line `around` (from 1), or the last ones when it is not given: at most
 * `WINDOW_LINES` lines and `WINDOW_BYTES` bytes.
 */
export async function lineWindow(
  log: LogReader,
  id: string,
  size: number,
  around?: number,
): Promise<LineWindow> {
  const { sparse, lines: total } = await countLines(log, id, size);
  if (total === 0) return { first: 1, lines: [], starts: [], total };
  let first = around === undefined
    ? total - WINDOW_LINES + 1
    : Math.min(around, total) - Math.floor(WINDOW_LINES / 10);
  first = Math.max(1, first);
  // From the remembered offset at or before `first`, walk to it, then take lines.
  const base = Math.floor((first - 1) / SPARSE);
  let line = base * SPARSE + 1;
  let at = sparse[base];
  const lines: string[] = [];
  const starts: number[] = [];
  let pending: Uint8Array[] = [];
  let pendingStart = at;
  let taken = 0;
  outer: for await (const chunk of chunks(log, id, at, size)) {
    let from = 0;
    while (from <= chunk.bytes.length) {
      const nl = chunk.bytes.indexOf(10, from);
      const end = nl === -1 ? chunk.bytes.length : nl;
      if (line >= first) pending.push(chunk.bytes.subarray(from, end));
      if (nl === -1) break;
      if (line >= first) {
        const text = decoder.decode(concat(pending));
        lines.push(text);
        starts.push(pendingStart);
        taken += text.length;
        if (lines.length >= WINDOW_LINES || taken >= WINDOW_BYTES) break outer;
      }
      pending = [];
      line++;
      from = nl + 1;
      pendingStart = chunk.at + from;
    }
    at = chunk.at + chunk.bytes.length;
  }
  if (pending.length && lines.length < WINDOW_LINES && taken < WINDOW_BYTES) {
    lines.push(decoder.decode(concat(pending)));
    starts.push(pendingStart);
  }
  return { first, lines, starts, total };
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One line that matched a search. */
export interface LogMatch {
  line: number;
  /** The line (without ANSI escapes), cut to a few hundred characters around the match. */
  text: string;
}

/** A search's answer: the matches, and where to go on from (null when the log was searched). */
export interface LogSearch {
  matches: LogMatch[];
  next: string | null;
  /** Bytes of the log searched so far, of `size`. */
  searched: number;
  size: number;
}

/** Reads a search cursor (`<byte>.<line>`), or the start. */
function readCursor(cursor: string | undefined, size: number): { at: number; line: number } {
  const match = cursor?.match(/^(\d{1,15})\.(\d{1,15})$/);
  if (!match) return { at: 0, line: 1 };
  return { at: Math.min(Number(match[1]), size), line: Number(match[2]) };
}

/**
 * Lines of the log containing `query` (without case, ANSI escapes left out), from the cursor on:
 * at most `SEARCH_MATCHES` matches and `SEARCH_BYTES` bytes scanned per call.
 */
export async function searchLog(
  log: LogReader,
  id: string,
  size: number,
  query: string,
  cursor?: string,
): Promise<LogSearch> {
  const needle = query.toLowerCase();
  let { at, line } = readCursor(cursor, size);
  const matches: LogMatch[] = [];
  const stop = Math.min(size, at + SEARCH_BYTES);
  let carry = new Uint8Array(0);
  const test = (bytes: Uint8Array) => {
    const text = stripAnsi(decoder.decode(bytes));
    const found = text.toLowerCase().indexOf(needle);
    if (found === -1) return;
    const from = Math.max(0, found - MATCH_CONTEXT / 2);
    matches.push({ line, text: text.slice(from, from + MATCH_CONTEXT) });
  };
  let lineStart = at;
  let stoppedAt: number | null = null;
  outer: for await (const chunk of chunks(log, id, at, stop)) {
    const bytes = carry.length ? concat([carry, chunk.bytes]) : chunk.bytes;
    const offset = chunk.at - carry.length;
    let from = 0;
    let nl = bytes.indexOf(10);
    while (nl !== -1) {
      test(bytes.subarray(from, nl));
      line++;
      from = nl + 1;
      lineStart = offset + from;
      if (matches.length >= SEARCH_MATCHES) {
        stoppedAt = lineStart;
        break outer;
      }
      nl = bytes.indexOf(10, from);
    }
    carry = bytes.slice(from);
  }
  if (stoppedAt === null) {
    if (stop >= size) {
      if (carry.length) test(carry);
      return { matches, next: null, searched: size, size };
    }
    // Out of budget inside a line: the next call starts at that line.
    stoppedAt = lineStart;
  }
  return { matches, next: `${stoppedAt}.${line}`, searched: stoppedAt, size };
}

/**
 * When each line of a window started (ms since the epoch), from the job's events replayed into
 * its log: the time of the event that wrote the line's first byte. The events may come a page
 * at a time from the store (`storedEvents`); reading stops once every line is placed.
 */
export async function lineTimes(
  events: Iterable<RecordedEvent> | AsyncIterable<RecordedEvent>,
  starts: number[],
): Promise<(number | null)[]> {
  const times: (number | null)[] = starts.map(() => null);
  if (!starts.length) return times;
  const builder = new LogBuilder();
  let offset = 0;
  let next = 0;
  for await (const event of events) {
    const text = builder.append(event.data);
    if (!text) continue;
    const end = offset + utf8Length(text);
    while (next < starts.length && starts[next] < end) {
      if (starts[next] >= offset) times[next] = event.at;
      next++;
    }
    offset = end;
    if (next >= starts.length) break;
  }
  return times;
}
