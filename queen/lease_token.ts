/**
 * Lease tokens: the proof of an attempt (protocol/README.md). HMAC-SHA256 of the job id and
 * attempt under the queen's lease key, so only the worker it was sent to (and the queen, after a
 * restart too) knows it, and nothing per attempt needs storing.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { attemptKey } from "../protocol/mod.ts";

/** The lease token of attempt `attempt` of job `id`. */
export function leaseToken(key: string, id: string, attempt: number): string {
  return createHmac("sha256", key).update(attemptKey(id, attempt)).digest("base64url");
}

/** Whether `token` is the attempt's lease token, compared in constant time. */
export function validLease(
  key: string,
  id: string,
  attempt: number,
  token: string | undefined,
): boolean {
  if (!token) return false;
  const want = new TextEncoder().encode(leaseToken(key, id, attempt));
  const got = new TextEncoder().encode(token);
  return want.length === got.length && timingSafeEqual(want, got);
}
