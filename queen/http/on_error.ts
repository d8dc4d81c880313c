/**
 * The one place errors become HTTP answers: domain errors (`../errors.ts`) map to statuses here,
 * `HTTPException`s (raised by the HTTP layer itself: 413, 426, 429) keep theirs, and anything
 * else is a bug, logged and answered 500 without its details.
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiError } from "../../protocol/mod.ts";
import {
  ConflictError,
  DatabaseUnavailableError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  RejectedError,
  UnauthorizedError,
} from "../errors.ts";

/** The status of a domain error, or undefined for an error that is not one. */
export function statusOf(error: unknown): ContentfulStatusCode | undefined {
  if (error instanceof InvalidInputError) return 400;
  if (error instanceof RejectedError) return 400;
  if (error instanceof UnauthorizedError) return 401;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof DatabaseUnavailableError) return 503;
  if (error instanceof HTTPException) return error.status as ContentfulStatusCode;
  return undefined;
}

/** The app's `onError`: `{error, issues?}` with the mapped status. */
export function onError(error: Error, c: Context): Response {
  const status = statusOf(error);
  if (status === undefined) {
    console.error("queen: unexpected error:", error);
    return c.json({ error: "internal error" } satisfies ApiError, 500);
  }
  const issues = error instanceof InvalidInputError && error.issues.length
    ? { issues: [...error.issues] }
    : {};
  return c.json({ error: error.message, ...issues } satisfies ApiError, status);
}
