/**
 * Masking of secrets in output before it leaves the worker. A secret may arrive split across
 * two reads, so the streaming masker holds back any tail that could be the start of a secret.
 */

const MASK = "***";
/** Shorter values are too likely to be ordinary text to mask everywhere. */
const MIN_SECRET_LENGTH = 3;

/** Masks every occurrence of the given secrets. */
export class Masker {
  readonly #secrets: string[];

  constructor(secrets: Iterable<string>) {
    const unique = new Set([...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH));
    // Longest first, so a secret containing another is masked whole.
    this.#secrets = [...unique].sort((a, b) => b.length - a.length);
  }

  /** `text` with every secret replaced by `***`. */
  mask(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.replaceAll(secret, MASK);
    return out;
  }

  /** A masker for one stream of output chunks. */
  stream(): StreamMasker {
    return new StreamMasker(this);
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

/** Masks a stream of chunks, including a secret split across chunks. */
export class StreamMasker {
  #pending = "";
  readonly #masker: Masker;

  constructor(masker: Masker) {
    this.#masker = masker;
  }

  /** Returns what can be released of `chunk` now; a possible secret's start is held back. */
  push(chunk: string): string {
    const text = this.#masker.mask(this.#pending + chunk);
    const hold = this.#masker.heldTail(text);
    this.#pending = text.slice(text.length - hold);
    return text.slice(0, text.length - hold);
  }

  /** Releases what is held back, at the end of the stream. */
  flush(): string {
    const rest = this.#pending;
    this.#pending = "";
    return rest;
  }
}
