import { createHash, timingSafeEqual } from "node:crypto";

/** Hashing first gives equal-length inputs, so the comparison time says nothing of the token. */
function digest(value: string): Uint8Array {
  return createHash("sha256").update(value).digest();
}

/** Whether `presented` equals one of `tokens`, compared in constant time. */
export function tokenMatches(presented: string | undefined, tokens: readonly string[]): boolean {
  if (!presented) return false;
  const given = digest(presented);
  let found = false;
  for (const token of tokens) {
    // Every token is compared, so timing does not reveal which one matched.
    if (timingSafeEqual(given, digest(token))) found = true;
  }
  return found;
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(header: string | undefined | null): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}
