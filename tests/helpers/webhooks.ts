/**
 * Forge webhook deliveries for tests: realistic payloads from `tests/fixtures/webhooks/`,
 * signed the way each forge signs them.
 */
import { createHmac } from "node:crypto";

export type ForgeName = "github" | "gitlab" | "gitea";

/** A fixture payload, parsed (a fresh copy on every call, free to change). */
export async function fixture(name: string): Promise<Record<string, unknown>> {
  const url = new URL(`../fixtures/webhooks/${name}.json`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url));
}

/** The headers a forge sends with `body`: event, delivery id and signature (or token). */
export function deliveryHeaders(
  forge: ForgeName,
  options: { event: string; delivery?: string; secret?: string; body: string },
): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  const hmac = (secret: string) => createHmac("sha256", secret).update(options.body).digest("hex");
  const delivery = options.delivery ?? crypto.randomUUID();
  if (forge === "github") {
    headers["x-github-event"] = options.event;
    headers["x-github-delivery"] = delivery;
    if (options.secret) headers["x-hub-signature-256"] = `sha256=${hmac(options.secret)}`;
  } else if (forge === "gitlab") {
    headers["x-gitlab-event"] = options.event;
    headers["x-gitlab-event-uuid"] = delivery;
    if (options.secret) headers["x-gitlab-token"] = options.secret;
  } else {
    headers["x-gitea-event"] = options.event;
    headers["x-gitea-delivery"] = delivery;
    if (options.secret) headers["x-gitea-signature"] = hmac(options.secret);
  }
  return headers;
}

/** Posts a delivery to `<base>/hooks/<forge>`. */
export async function deliver(
  base: string,
  forge: ForgeName,
  options: { event: string; payload: unknown; delivery?: string; secret?: string },
): Promise<Response> {
  const body = JSON.stringify(options.payload);
  return await fetch(new URL(`/hooks/${forge}`, base), {
    method: "POST",
    headers: deliveryHeaders(forge, { ...options, body }),
    body,
    signal: AbortSignal.timeout(30_000),
  });
}
