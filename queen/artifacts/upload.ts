/**
 * Reading an artifact upload, for every store: the body in chunks of `CHUNK_BYTES` (never the
 * whole file in memory), its size held to the job's limit and its SHA-256 checked against the
 * one the worker announced.
 * @module
 */
import { createHash } from "node:crypto";
import { ArtifactRefusedError, CHUNK_BYTES } from "./store.ts";

/**
 * Hands `body` to `store` chunk by chunk (numbered from 0) and returns its size and digest once
 * it matches `sha256`; throws `ArtifactRefusedError` (413 past `maxBytes`, 400 on a wrong digest).
 */
export async function readUpload(
  body: ReadableStream<Uint8Array>,
  expect: { path: string; sha256: string; maxBytes: number },
  store: (n: number, data: Uint8Array) => void | Promise<void>,
): Promise<{ size: number; sha256: string }> {
  const { path, maxBytes } = expect;
  const hash = createHash("sha256");
  let size = 0;
  let n = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const data = new Uint8Array(pendingBytes);
    let at = 0;
    for (const part of pending) {
      data.set(part, at);
      at += part.length;
    }
    pending = [];
    pendingBytes = 0;
    await store(n++, data);
  };
  for await (const part of body) {
    size += part.length;
    if (size > maxBytes) {
      throw new ArtifactRefusedError(
        413,
        `artifact '${path}' passes the job's artifact limit of ${maxBytes} bytes ` +
          "(the queen's --max-artifact-mib)",
      );
    }
    hash.update(part);
    pending.push(part);
    pendingBytes += part.length;
    if (pendingBytes >= CHUNK_BYTES) await flush();
  }
  await flush();
  const digest = hash.digest("hex");
  if (digest !== expect.sha256) {
    throw new ArtifactRefusedError(
      400,
      `artifact '${path}': content has SHA-256 ${digest}, not the ${expect.sha256} announced`,
    );
  }
  return { size, sha256: digest };
}
