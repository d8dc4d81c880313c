const encoder = new TextEncoder();

/** Text cut to fit a budget of UTF-8 bytes, and what it takes of that budget. */
export interface CappedText {
  text: string;
  /** UTF-8 bytes of `text`: at most the budget. */
  bytes: number;
  /** Whether anything was cut off. */
  cut: boolean;
}

/**
 * Keeps as much of `text` as fits in `room` bytes of UTF-8, counted in bytes (not UTF-16 units)
 * and cut between characters, never inside one. Output limits are byte limits: the queen and the
 * worker both cap with this, so they agree on where a job's output ends.
 */
export function capText(text: string, room: number): CappedText {
  if (room <= 0) return { text: "", bytes: 0, cut: text.length > 0 };
  // A UTF-16 unit is at most 3 bytes of UTF-8: only text that might not fit is encoded.
  if (text.length * 3 <= room) return { text, bytes: utf8Length(text), cut: false };
  const bytes = encoder.encode(text);
  if (bytes.length <= room) return { text, bytes: bytes.length, cut: false };
  let end = room;
  // Back up over continuation bytes (10xxxxxx) to the start of the character `room` splits.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return { text: new TextDecoder().decode(bytes.subarray(0, end)), bytes: end, cut: true };
}

/** Room to encode into when only the length is wanted: no copy of every chunk to collect. */
let scratch = new Uint8Array(256 * 1024);

/** Length of `text` in UTF-8 bytes, without allocating its encoding. */
export function utf8Length(text: string): number {
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  return encoder.encodeInto(text, scratch).written;
}
