/**
 * Secrets at rest: job specs and projects are stored sealed with AES-256-GCM, so that a copied
 * database or backup reveals nothing without the key.
 *
 * The bytes are exactly WebCrypto's AES-GCM (a 12-byte IV, then the ciphertext with its 16-byte
 * tag; the row's identity as additional data, so a sealed value moved to another row does not
 * open). Sealing goes through `node:crypto` because the store writes synchronously, in the same
 * step as the queen records a job, and `crypto.subtle` only answers with promises.
 *
 * A sealed value is the text `enc:v1:<key id>:<base64>`; the key id (the first 16 hex digits of
 * the key's SHA-256) says which key sealed it, so a rotation can tell what is left to re-seal.
 */
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { StartupError } from "./errors.ts";

const PREFIX = "enc:v1:";
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes of a key: AES-256. */
export const KEY_BYTES = 32;

/** A sealed value cannot be opened: wrong or unknown key, or changed bytes (bad input: exit 1). */
export class SecretKeyError extends StartupError {
  constructor(message: string) {
    super(message);
    this.name = "SecretKeyError";
  }
}

/** The id a key's sealed values carry. Reveals nothing usable about the key. */
export function keyId(key: Uint8Array): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

/** Whether `text` is a sealed value (as opposed to plain JSON written by an older strider). */
export function isSealed(text: string): boolean {
  return text.startsWith(PREFIX);
}

/** Seals with the current key; opens with it or with older keys still being rotated out. */
export class SecretBox {
  readonly keyId: string;
  readonly #key: Uint8Array;
  readonly #keys = new Map<string, Uint8Array>();

  constructor(current: Uint8Array, previous: readonly Uint8Array[] = []) {
    for (const key of [current, ...previous]) {
      if (key.length !== KEY_BYTES) throw new TypeError(`a secret key has ${KEY_BYTES} bytes`);
    }
    this.#key = current;
    this.keyId = keyId(current);
    for (const key of [...previous, current]) this.#keys.set(keyId(key), key);
  }

  /** Ids of every key this box can open with, the current one included. */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  /** `plain` sealed for the row named `context` (e.g. `job:ID`). */
  seal(plain: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${PREFIX}${this.keyId}:${Buffer.concat([iv, body]).toString("base64")}`;
  }

  /** Whether `sealed` was sealed with the current key. */
  isCurrent(sealed: string): boolean {
    return sealed.startsWith(`${PREFIX}${this.keyId}:`);
  }

  /** The plain text of a value sealed for `context`; throws `SecretKeyError` when it cannot. */
  open(sealed: string, context: string): string {
    const match = sealed.match(/^enc:v1:([0-9a-f]{16}):([A-Za-z0-9+/=]+)$/);
    if (!match) throw new SecretKeyError(`${context}: not a sealed value`);
    const key = this.#keys.get(match[1]);
    if (!key) {
      throw new SecretKeyError(
        `${context} is encrypted with key ${match[1]}, but the queen has key ${this.keyId}` +
          ": start it with the key the data was written with (<data>/secret-key or " +
          "STRIDER_SECRET_KEY; during a change of key, the old one as STRIDER_SECRET_KEY_OLD)",
      );
    }
    const bytes = Buffer.from(match[2], "base64");
    if (bytes.length < IV_BYTES + TAG_BYTES) throw new SecretKeyError(`${context}: truncated`);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context, "utf8"));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      const body = bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
    } catch {
      throw new SecretKeyError(`${context}: the sealed value does not open (changed or damaged)`);
    }
  }
}
