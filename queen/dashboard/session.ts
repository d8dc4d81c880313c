/**
 * Dashboard sessions: the API token, entered once in the login form, becomes an HttpOnly,
 * SameSite=Strict cookie. The cookie holds no token, only an expiry signed with it, so it dies
 * when the token changes. Requests that act with the cookie must also carry the session's CSRF
 * token (a hidden form field or the `x-csrf-token` header) and, when the browser sends one, an
 * `Origin` of this host.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";

/** The session cookie's name. */
export const SESSION_COOKIE = "strider_session";
/** The form field that carries the CSRF token. */
export const CSRF_FIELD = "_csrf";
/** The header that carries the CSRF token for `fetch` calls. */
export const CSRF_HEADER = "x-csrf-token";

const SESSION_MS = 30 * 24 * 3600 * 1000;
/** The header a forwarding standby queen sets to the Host the client asked for. */
export const FORWARDED_HOST = "x-strider-forwarded-host";

function mac(key: string, message: string): string {
  return createHmac("sha256", key).update(message).digest("base64url");
}

function sameText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A signed-in browser: what it needs to act. */
export interface Session {
  /** The token its forms and `fetch` calls must carry. */
  csrf: string;
}

/** The token that signed `value`, if `value` is a live session cookie. */
function signer(value: string | undefined, tokens: readonly string[], now: number) {
  const match = value?.match(/^(\d{1,15})\.([A-Za-z0-9_-]{43})$/);
  if (!match || Number(match[1]) <= now) return undefined;
  let found: string | undefined;
  // Every token is tried, so the time taken says nothing of which one signed it.
  for (const token of tokens) {
    if (sameText(match[2], mac(token, `session:${match[1]}`))) found = token;
  }
  return found;
}

/** The request's session, when it carries a live session cookie. */
export function sessionOf(c: Context, tokens: readonly string[]): Session | undefined {
  const value = getCookie(c, SESSION_COOKIE);
  const token = signer(value, tokens, Date.now());
  return token ? { csrf: mac(token, `csrf:${value}`) } : undefined;
}

/** Starts a session for `token` (already checked) by setting the cookie. */
export function startSession(c: Context, token: string): void {
  const expires = Date.now() + SESSION_MS;
  setCookie(c, SESSION_COOKIE, `${expires}.${mac(token, `session:${expires}`)}`, {
    httpOnly: true,
    sameSite: "Strict",
    secure: new URL(c.req.url).protocol === "https:",
    path: "/",
    maxAge: SESSION_MS / 1000,
  });
}

/** Ends the session by clearing the cookie. */
export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: "/" });
}

/**
 * Whether the request comes from a page of this host: true when the browser sent no `Origin`
 * (older browsers on same-origin requests; the CSRF token still has to match).
 */
export function sameOrigin(c: Context): boolean {
  const origin = c.req.header("origin");
  if (!origin) return true;
  try {
    // A standby queen forwarding the request says which host the browser asked for (its fetch
    // cannot keep the Host header). A page elsewhere cannot set this header without a CORS
    // preflight, which the queen does not grant.
    const host = c.req.header(FORWARDED_HOST) ?? c.req.header("host") ?? new URL(c.req.url).host;
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Whether `given` is the session's CSRF token and the request is same-origin. */
export function csrfValid(c: Context, session: Session, given: string | undefined): boolean {
  return given !== undefined && sameText(given, session.csrf) && sameOrigin(c);
}

/**
 * Whether the session cookie authorizes this API write: a live session, the CSRF token in the
 * `x-csrf-token` header, and a same-origin request. The API accepts this as well as a Bearer
 * token, so the dashboard's scripts can call it without ever seeing the token.
 */
export function sessionAuthorizes(c: Context, tokens: readonly string[]): boolean {
  const session = sessionOf(c, tokens);
  return session !== undefined && csrfValid(c, session, c.req.header(CSRF_HEADER));
}
