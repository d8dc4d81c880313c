/**
 * `POST /hooks/github | gitlab | gitea`: a forge's delivery becomes a job of the project whose
 * repository it is about. Nothing is created before the delivery is authenticated. A repeated
 * delivery answers with the job the first one made: the same delivery id within
 * `DELIVERY_MEMORY_MS`, or the same signed body (by its SHA-256) within `REPLAY_WINDOW_MS`, so a
 * captured body replayed with a new or no delivery id makes no new job. The server limits the
 * body's bytes before these routes read it.
 */
import { createHash } from "node:crypto";
import { Hono } from "hono";
import type { Context } from "hono";
import { parseJson } from "../../protocol/mod.ts";
import { ForbiddenError, InvalidInputError, NotFoundError, UnauthorizedError } from "../errors.ts";
import { acceptJob } from "../intake.ts";
import { BUILD_KEY } from "../forge_status/reporter.ts";
import type { QueenCore } from "../queen.ts";
import type { ProjectStore } from "../projects/store.ts";
import { gitea } from "./gitea.ts";
import { github } from "./github.ts";
import { gitlab } from "./gitlab.ts";
import { webhookJobSpec } from "./job_spec.ts";
import type { Forge } from "./types.ts";

/** How long a body's digest is remembered: the same signed body again within it is a replay. */
export const REPLAY_WINDOW_MS = 24 * 3600 * 1000;

/** The forges served, each at `/hooks/<name>`. */
export const FORGES: readonly Forge[] = [github, gitlab, gitea];

/** What the webhook routes work with. */
export interface WebhookOptions {
  /** The queen's `--webhook-secret`; a project's own `webhook_secret` wins over it. */
  webhookSecret?: string;
  /** Called for each job a delivery made whose commit is known (to report its status). */
  onWebhookJob?: (
    job: string,
    where: { forge: Forge["name"]; project: string; sha: string },
  ) => void | Promise<void>;
  log?: (message: string) => void;
}

/** The payload: JSON, or GitHub's form encoding (`payload=<JSON>`); undefined when neither. */
function decodePayload(body: Uint8Array, contentType: string | undefined): unknown {
  let text: string | null = new TextDecoder().decode(body);
  if (contentType?.startsWith("application/x-www-form-urlencoded")) {
    text = new URLSearchParams(text).get("payload");
  }
  const parsed = text === null ? undefined : parseJson(text);
  return parsed?.ok ? parsed.value : undefined;
}

/** The webhook routes, to mount at `/hooks`. */
export function webhookRoutes(
  core: QueenCore,
  projects: ProjectStore,
  options: WebhookOptions = {},
): Hono {
  const app = new Hono();
  const log = options.log ?? (() => {});

  const handle = async (forge: Forge, c: Context) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    const payload = decodePayload(body, c.req.header("content-type"));
    const names = payload === undefined ? [] : forge.repoNames(payload);
    const stored = names.length ? await projects.findByRepo(names) : undefined;
    const secret = stored?.project.webhook_secret ?? options.webhookSecret;
    if (!secret) {
      throw new ForbiddenError(
        "webhooks are refused: no webhook secret is set. Start the queen with --webhook-secret " +
          "(or STRIDER_WEBHOOK_SECRET), or give the project a webhook_secret, and set the same " +
          `secret on the ${forge.title} webhook`,
      );
    }
    const verdict = forge.verify(c.req.raw.headers, body, secret);
    if (verdict === "missing") {
      throw new UnauthorizedError(
        `no ${forge.authHeader} header: set the webhook's secret on ${forge.title}`,
      );
    }
    if (verdict !== "ok") {
      throw new UnauthorizedError(
        `${forge.authHeader} does not match: the webhook's secret is not the queen's`,
      );
    }
    if (payload === undefined) throw new InvalidInputError("body is not a JSON webhook payload");
    // A WebhookPayloadError (an InvalidInputError) names what the payload lacks.
    const event = forge.parse(c.req.raw.headers, payload);
    if (event.kind === "ignored" && event.ping) return c.json({ message: event.reason }, 200);
    if (!stored) {
      const name = names[0] ?? "(none)";
      throw new NotFoundError(
        `no project for repository ${name}: create one with POST /api/projects ` +
          `(name '${name}', or a repo.url of the same repository)`,
      );
    }
    const project = stored.project;
    if (event.kind === "ignored") return c.json({ message: event.reason }, 202);
    const now = Date.now();
    const digestKey = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    const byId = event.deliveryId
      ? await projects.deliveryJob(forge.name, event.deliveryId)
      : undefined;
    const earlier = byId ??
      await projects.deliveryJob(forge.name, digestKey, now - REPLAY_WINDOW_MS);
    if (earlier) {
      const what = byId ? `delivery ${event.deliveryId}` : "this exact signed body";
      return c.json({
        id: earlier,
        duplicate: true,
        message: `${what} was received before: it made job ${earlier}`,
      }, 200);
    }
    const made = webhookJobSpec(project, event);
    if (!made.ok) return c.json({ message: made.reason }, 202);
    const record = await acceptJob(core, made.spec, "webhook");
    if (event.deliveryId) {
      await projects.recordDelivery(forge.name, event.deliveryId, record.id, now);
    }
    await projects.recordDelivery(forge.name, digestKey, record.id, now);
    log(`${forge.name} ${event.kind} of ${project.name} made job ${record.id}`);
    if (event.commit) {
      const where = { forge: forge.name, project: project.name, sha: event.commit };
      // One push, one build: each job reports its own status, and a build of several jobs a
      // summary too.
      for (const job of record.jobs) await options.onWebhookJob?.(job, where);
      if (record.build !== record.id) await options.onWebhookJob?.(BUILD_KEY + record.build, where);
    }
    return c.json({ ...record, project: project.name }, 201);
  };

  for (const forge of FORGES) app.post(`/${forge.name}`, (c) => handle(forge, c));
  return app;
}
