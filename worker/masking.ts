/**
 * Masking of secrets in output before it leaves the worker. A secret may arrive split across
 * two reads, or half on stdout and half on stderr, so output is masked as one sequence in the
 * order it was read, and any tail that could be the start of a secret is held back.
 */

const MASK = "***";
/** Shorter values are too likely to be ordinary text to mask everywhere. */
const MIN_SECRET_LENGTH = 3;

/** A piece of a command's output. */
export type Stream = "stdout" | "stderr";
export interface Piece {
  stream: Stream;
  text: string;
}

/** Masks every occurrence of the given secrets. */
export class Masker {
  readonly #secrets: string[];

  constructor(secrets: Iterable<string>) {
    const unique = new Set([...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH));
    this.#secrets = [...unique].sort((a, b) => b.length - a.length);
  }

  /**
   * Where secrets occur in `text`, as sorted, disjoint `[start, end)` ranges. Overlapping
   * occurrences (of one secret or two) merge, so no part of either shows.
   */
  ranges(text: string): [number, number][] {
    const found: [number, number][] = [];
    for (const secret of this.#secrets) {
      for (let at = text.indexOf(secret); at >= 0; at = text.indexOf(secret, at + 1)) {
        found.push([at, at + secret.length]);
      }
    }
    if (found.length < 2) return found;
    found.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [found[0]];
    for (const [start, end] of found.slice(1)) {
      const last = merged[merged.length - 1];
      if (start < last[1]) last[1] = Math.max(last[1], end);
      else merged.push([start, end]);
    }
    return merged;
  }

  /** `text` with every secret replaced by `***`. */
  mask(text: string): string {
    let out = "";
    let from = 0;
    for (const [start, end] of this.ranges(text)) {
      out += text.slice(from, start) + MASK;
      from = end;
    }
    return from === 0 ? text : out + text.slice(from);
  }

  /** Whether there is nothing to mask: output passes as it is. */
  get empty(): boolean {
    return this.#secrets.length === 0;
  }

  /** A masker for the merged output of one command. */
  sequence(): SequenceMasker {
    return new SequenceMasker(this);
  }

  /** Length of the longest tail of `text` that is a proper prefix of some secret. */
  heldTail(text: string): number {
    let hold = 0;
    for (const secret of this.#secrets) {
      for (let k = Math.min(secret.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(secret.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}

/**
 * Masks a command's output as one sequence of pieces from either stream, in the order they were
 * read: a secret split across reads or across stdout and stderr is still masked. The `***`
 * goes to the stream where the secret started.
 */
export class SequenceMasker {
  readonly #masker: Masker;
  /** Raw text held back, with the stream each part came from. */
  #held: Piece[] = [];

  constructor(masker: Masker) {
    this.#masker = masker;
  }

  /** Returns what can be released now, masked; a possible secret's start is held back. */
  push(stream: Stream, text: string): Piece[] {
    if (!text) return [];
    // No secrets, nothing held back: no copies of a command's whole output to make.
    if (this.#masker.empty) return [{ stream, text }];
    const last = this.#held[this.#held.length - 1];
    if (last?.stream === stream) last.text += text;
    else this.#held.push({ stream, text });
    const raw = this.#held.map((p) => p.text).join("");
    const ranges = this.#masker.ranges(raw);
    let cut = raw.length - this.#masker.heldTail(raw);
    // A secret reaching into the held tail may yet grow into a longer one: hold it whole.
    for (const [start, end] of ranges) if (start < cut && cut < end) cut = start;
    return this.#release(cut, ranges);
  }

  /** Releases everything held back, masked, at the end of the output. */
  flush(): Piece[] {
    const raw = this.#held.map((p) => p.text).join("");
    return this.#release(raw.length, this.#masker.ranges(raw));
  }

  /** Releases the first `cut` characters held, with `ranges` (within them) masked. */
  #release(cut: number, ranges: [number, number][]): Piece[] {
    const out: Piece[] = [];
    const emit = (stream: Stream, text: string) => {
      if (!text) return;
      const last = out[out.length - 1];
      if (last?.stream === stream) last.text += text;
      else out.push({ stream, text });
    };
    // Which stream each offset came from.
    const streamAt = (offset: number): Stream => {
      let at = 0;
      for (const piece of this.#held) {
        if (offset < at + piece.text.length) return piece.stream;
        at += piece.text.length;
      }
      return this.#held[this.#held.length - 1].stream;
    };
    let from = 0;
    const plain = (start: number, end: number) => {
      let at = 0;
      for (const piece of this.#held) {
        const a = Math.max(start, at);
        const b = Math.min(end, at + piece.text.length);
        if (a < b) emit(piece.stream, piece.text.slice(a - at, b - at));
        at += piece.text.length;
      }
    };
    for (const [start, end] of ranges) {
      if (end > cut) break;
      plain(from, start);
      emit(streamAt(start), MASK);
      from = end;
    }
    plain(from, cut);
    // Keep what is past the cut, still split by stream.
    const kept: Piece[] = [];
    let at = 0;
    for (const piece of this.#held) {
      const a = Math.max(cut, at);
      const b = at + piece.text.length;
      if (a < b) kept.push({ stream: piece.stream, text: piece.text.slice(a - at) });
      at = b;
    }
    this.#held = kept;
    return out;
  }
}
