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

/** UTF-8 length of `text` without allocating its encoding. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
