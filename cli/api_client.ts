/**
 * The HTTP API client behind `strider submit | jobs | drones | logs | cancel`. Every body it
 * reads is validated by the protocol's schemas, so a wrong server is reported, not mis-read.
 */
import { join } from "node:path";
import type { z } from "zod";
import { ApiErrorSchema, validate } from "../protocol/mod.ts";

/** The queen answered with an error, or something unexpected. */
export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
    this.name = "ApiError";
  }
}

/** Where the API is and how to authenticate to it. */
export interface ApiTarget {
  queen: string;
  token?: string;
}

/** How long one API request may take. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The API token: the flag or `STRIDER_API_TOKEN`, else the file a local queen writes into
 * `./strider-data/api-token` (what `deno task start` uses), else none.
 */
export async function resolveToken(given: string | undefined): Promise<string | undefined> {
  if (given) return given;
  const data = Deno.env.get("STRIDER_DATA") ?? "./strider-data";
  try {
    return (await Deno.readTextFile(join(data, "api-token"))).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Sends a request; returns the raw response when it is 2xx, else throws `ApiError`. */
export async function request(
  target: ApiTarget,
  path: string,
  init: RequestInit & { stream?: boolean } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (target.token) headers.set("authorization", `Bearer ${target.token}`);
  let response: Response;
  const url = new URL(path, target.queen);
  // Bounded until the answer is read; a stream is bounded only until its headers arrive.
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error("no answer in time")),
    REQUEST_TIMEOUT_MS,
  );
  Deno.unrefTimer(timer);
  try {
    response = await fetch(url, { ...init, headers, signal: controller.signal });
  } catch (error) {
    clearTimeout(timer);
    throw new ApiError(`cannot reach the queen at ${target.queen}: ${(error as Error).message}`, 0);
  }
  if (init.stream) clearTimeout(timer);
  if (response.ok) return response;
  const text = await response.text();
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = validate(ApiErrorSchema, JSON.parse(text));
    if (body.ok) message = body.value.error;
  } catch {
    if (text) message += `: ${text.slice(0, 500)}`;
  }
  if (response.status === 401 && !target.token) {
    message += " (no API token found: pass --token or set STRIDER_API_TOKEN)";
  }
  throw new ApiError(message, response.status);
}

/** Requests JSON and validates it against `schema`. */
export async function requestJson<T>(
  target: ApiTarget,
  path: string,
  schema: z.ZodType<T>,
  init: RequestInit = {},
): Promise<T> {
  const response = await request(target, path, init);
  const decoded = validate(schema, await response.json());
  if (!decoded.ok) throw new ApiError(`unexpected answer from the queen:\n${decoded.error}`, 0);
  return decoded.value;
}
