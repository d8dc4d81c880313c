/**
 * Checking that a webhook came from the forge: an HMAC-SHA256 of the raw body (GitHub, Gitea,
 * Forgejo) or a shared token (GitLab), always compared in constant time.
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { tokenMatches } from "../auth.ts";

/** The outcome of a check: what to tell the sender when it fails. */
export type Verdict = "ok" | "missing" | "mismatch";

/** The HMAC-SHA256 of `body` under `secret`, as lower-case hex. */
export function hmacHex(secret: string, body: Uint8Array): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

/** Whether `givenHex` is the HMAC of `body`, compared in constant time. */
function hmacMatches(secret: string, body: Uint8Array, givenHex: string): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(givenHex)) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(givenHex, "hex"));
}

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. */
export function verifyGithub(body: Uint8Array, header: string | null, secret: string): Verdict {
  if (!header) return "missing";
  const hex = header.trim().match(/^sha256=(.*)$/)?.[1];
  return hex !== undefined && hmacMatches(secret, body, hex) ? "ok" : "mismatch";
}

/** Gitea and Forgejo: `X-Gitea-Signature: <hex HMAC-SHA256 of the body>`. */
export function verifyGitea(body: Uint8Array, header: string | null, secret: string): Verdict {
  if (!header) return "missing";
  return hmacMatches(secret, body, header.trim()) ? "ok" : "mismatch";
}

/** GitLab: `X-Gitlab-Token: <the secret token>`, equal to the secret. */
export function verifyGitlab(header: string | null, secret: string): Verdict {
  if (!header) return "missing";
  return tokenMatches(header, [secret]) ? "ok" : "mismatch";
}
