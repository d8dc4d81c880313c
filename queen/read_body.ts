/**
 * Reading a request body with a size limit: a body past it is refused with 413 before it is
 * held in memory whole, whether or not the client declared its length.
 */
import { HTTPException } from "hono/http-exception";

/** Largest request body the API and the webhooks read. */
export const MAX_BODY_BYTES = 1024 * 1024;

function tooLarge(limit: number): never {
  throw new HTTPException(413, { message: `body exceeds ${limit} bytes` });
}

/** The body's bytes; an `HTTPException` 413 when it is longer than `limit`. */
export async function readLimitedBody(
  request: Request,
  limit: number = MAX_BODY_BYTES,
): Promise<Uint8Array> {
  if (Number(request.headers.get("content-length") ?? 0) > limit) tooLarge(limit);
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > limit) tooLarge(limit);
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** The body parsed as JSON; 413 past `limit`, 400 when it is not JSON. */
export async function readJsonBody(
  request: Request,
  limit: number = MAX_BODY_BYTES,
): Promise<unknown> {
  const text = new TextDecoder().decode(await readLimitedBody(request, limit));
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HTTPException(400, { message: `body is not JSON: ${(error as Error).message}` });
  }
}
