/**
 * Limits at the HTTP edge, counted in bytes before anything is buffered whole:
 * - `jsonLimit` / `formLimit`: Hono's `bodyLimit` on every route with a body; a declared length
 *   past the limit is refused before reading, an undeclared (chunked) one as soon as the bytes
 *   read pass it;
 * - `jsonBody`: the (already limited) body as JSON, refusing nesting deeper than `MAX_JSON_DEPTH`
 *   before parsing;
 * - `HANDSHAKE_MS`: how long an authenticated socket may stay silent before its first frame.
 * @module
 */
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { parseJson } from "../../protocol/mod.ts";
import { InvalidInputError } from "../errors.ts";

/** Largest JSON body the API and the webhooks read. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Largest dashboard form. */
export const MAX_FORM_BYTES = 256 * 1024;

/** Milliseconds a worker has to send `drone:info`, and a browser its first frame. */
export const HANDSHAKE_MS = 10_000;

/** Close code for a socket that sent nothing within `HANDSHAKE_MS`. */
export const HANDSHAKE_CLOSE_CODE = 4002;

/** Close code for a frame past `MAX_FRAME_BYTES` (WebSocket's "message too big"). */
export const TOO_BIG_CLOSE_CODE = 1009;

function tooLarge(limit: number): never {
  throw new HTTPException(413, { message: `body exceeds ${limit} bytes` });
}

/** Refuses bodies past `MAX_BODY_BYTES` with 413. */
export const jsonLimit = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => tooLarge(MAX_BODY_BYTES),
});

/** Refuses forms past `MAX_FORM_BYTES` with 413. */
export const formLimit = bodyLimit({
  maxSize: MAX_FORM_BYTES,
  onError: (c) => c.text("the form is too large", 413),
});

/** The request's body as JSON; an `InvalidInputError` when it is not JSON or nests too deep. */
export async function jsonBody(c: Context): Promise<unknown> {
  const parsed = parseJson(await c.req.text());
  if (!parsed.ok) throw new InvalidInputError(parsed.error);
  return parsed.value;
}
