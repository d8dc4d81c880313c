/**
 * Who may do what over HTTP, as middleware applied per route group in `server.ts`:
 * - `readGuard`: on a `--private` queen, reads need a view token (Bearer) or a dashboard session;
 * - `writeGuard`: changes need an API token (Bearer), or a session with its CSRF token;
 * - `workerGuard`: the worker socket and uploads need a worker token.
 * Webhooks authenticate by signature (`webhooks/verify.ts`), not here.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerToken, tokenMatches } from "../auth.ts";
import { sessionAuthorizes, sessionOf } from "../dashboard/session.ts";
import { UnauthorizedError } from "../errors.ts";

/** The tokens the guards check, read on each request so that a reload applies at once. */
export interface GuardTokens {
  worker: readonly string[];
  api: readonly string[];
  /** Tokens that may read a private queen (the API tokens and the read-only ones). */
  view: readonly string[];
}

/** Whether `c` may view: always on an open queen; with a view token or session on a private one. */
export function mayView(
  c: Context,
  tokens: Pick<GuardTokens, "view">,
  isPrivate: boolean,
): boolean {
  return !isPrivate || sessionOf(c, tokens.view) !== undefined ||
    tokenMatches(bearerToken(c.req.header("authorization")), tokens.view);
}

/** Whether `c` may change things: the API token, or a signed-in session with its CSRF token. */
export function mayWrite(c: Context, tokens: GuardTokens): boolean {
  return tokenMatches(bearerToken(c.req.header("authorization")), tokens.api) ||
    sessionAuthorizes(c, tokens.api);
}

/** 401 unless the request may view (only on a private queen). */
export function readGuard(tokens: GuardTokens, isPrivate: boolean): MiddlewareHandler {
  return async (c, next) => {
    if (!mayView(c, tokens, isPrivate)) {
      throw new UnauthorizedError(
        "this queen is private: send 'Authorization: Bearer <token>' or log in",
      );
    }
    await next();
  };
}

/** 401 unless the request carries an API token. */
export function writeGuard(tokens: GuardTokens): MiddlewareHandler {
  return async (c, next) => {
    if (!mayWrite(c, tokens)) {
      throw new UnauthorizedError("an API token is required: send 'Authorization: Bearer <token>'");
    }
    await next();
  };
}

/** 401 unless the request carries a worker token. */
export function workerGuard(tokens: GuardTokens): MiddlewareHandler {
  return async (c, next) => {
    if (!tokenMatches(bearerToken(c.req.header("authorization")), tokens.worker)) {
      throw new UnauthorizedError(
        "a worker token is required: send 'Authorization: Bearer <token>'",
      );
    }
    await next();
  };
}
