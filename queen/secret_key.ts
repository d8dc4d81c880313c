/**
 * The queen's secret key: `STRIDER_SECRET_KEY` when set, else `<data>/secret-key` (made on first
 * start, mode 0600). Either holds 32 random bytes in base64, e.g. `openssl rand -base64 32`.
 *
 * Rotation keeps the old key readable until everything is sealed again: `--rotate-secret-key`
 * copies the key to `secret-key.old`, writes a new `secret-key`, and the store re-seals every
 * row before `secret-key.old` is removed. A crash at any point leaves both keys on disk, and the
 * next start finishes the job. On PostgreSQL the new key may come from `STRIDER_SECRET_KEY`
 * instead, and the old one from `STRIDER_SECRET_KEY_OLD`, `--old-secret-key FILE` or the key file
 * (see `postgres/rotation.ts`).
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { writePrivateFile } from "./data_dir.ts";
import { KEY_BYTES, SecretBox } from "./secret_box.ts";
import { StartupError } from "./errors.ts";

/** Where the key comes from. */
export interface SecretKeyOptions {
  /** The key in base64 (`STRIDER_SECRET_KEY`); without it the key file is used. */
  secretKey?: string;
  /** The previous key in base64 (`STRIDER_SECRET_KEY_OLD`), while changing `secretKey`. */
  oldSecretKey?: string;
  /** A file holding the previous key in base64 (`--old-secret-key`), the same way. */
  oldSecretKeyFile?: string;
  /** Make a new key file and re-seal everything with it. */
  rotateSecretKey?: boolean;
}

/** 32 bytes from base64, or a `StartupError` saying what a key looks like. */
export function parseSecretKey(text: string, where: string): Uint8Array {
  const trimmed = text.trim();
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)
    ? new Uint8Array(Buffer.from(trimmed, "base64"))
    : new Uint8Array();
  if (bytes.length !== KEY_BYTES) {
    throw new StartupError(
      `${where} must hold ${KEY_BYTES} random bytes in base64 (44 characters), ` +
        "e.g. the output of 'openssl rand -base64 32'",
    );
  }
  return bytes;
}

/** A new random key in base64. */
export function newSecretKey(): string {
  return randomBytes(KEY_BYTES).toString("base64");
}

function readKeyFile(path: string): Uint8Array | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return parseSecretKey(text, path);
}

/**
 * The box for the store in `dataDir`: the current key, plus every older key still on hand (the
 * key file when `STRIDER_SECRET_KEY` replaces it, `secret-key.old`, `STRIDER_SECRET_KEY_OLD`),
 * so that what they sealed opens once more and is sealed again with the current key.
 */
export function openSecretBox(dataDir: string, options: SecretKeyOptions = {}): SecretBox {
  const file = join(dataDir, "secret-key");
  const oldFile = join(dataDir, "secret-key.old");
  const previous: Uint8Array[] = [];
  let current: Uint8Array;
  if (options.secretKey !== undefined) {
    if (options.rotateSecretKey) {
      throw new StartupError(
        "--rotate-secret-key makes a new <data>/secret-key, but the key comes from " +
          "STRIDER_SECRET_KEY: set STRIDER_SECRET_KEY to a new key and STRIDER_SECRET_KEY_OLD " +
          "to the old one for one start instead",
      );
    }
    current = parseSecretKey(options.secretKey, "STRIDER_SECRET_KEY");
    const fromFile = readKeyFile(file);
    if (fromFile) previous.push(fromFile);
  } else {
    let existing = readKeyFile(file);
    if (existing && options.rotateSecretKey) {
      if (readKeyFile(oldFile)) {
        throw new StartupError(
          `${oldFile} is left from a rotation that did not finish: start the queen once ` +
            "without --rotate-secret-key to finish it, then rotate again",
        );
      }
      // The old key first, so that it is on disk whatever happens next.
      writePrivateFile(oldFile, Buffer.from(existing).toString("base64") + "\n");
      existing = undefined;
    }
    if (!existing) writePrivateFile(file, newSecretKey() + "\n");
    current = readKeyFile(file)!;
  }
  const old = readKeyFile(oldFile);
  if (old) previous.push(old);
  if (options.oldSecretKey !== undefined) {
    previous.push(parseSecretKey(options.oldSecretKey, "STRIDER_SECRET_KEY_OLD"));
  }
  if (options.oldSecretKeyFile !== undefined) {
    const given = readKeyFile(options.oldSecretKeyFile);
    if (!given) {
      throw new StartupError(`--old-secret-key ${options.oldSecretKeyFile}: no such file`);
    }
    previous.push(given);
  }
  return new SecretBox(current, previous);
}

/** Removes `secret-key.old` once nothing sealed with it is left. */
export function forgetOldKeyFile(dataDir: string): void {
  try {
    Deno.removeSync(join(dataDir, "secret-key.old"));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
