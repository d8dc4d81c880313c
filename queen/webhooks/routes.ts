/**
 * `POST /hooks/github | gitlab | gitea`: a forge's delivery becomes a job of the project whose
 * repository it is about. Nothing is created before the delivery is authenticated; a repeated
 * delivery answers with the job the first one made.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { issuesOf, JobSpecSchema } from "../../protocol/mod.ts";
import type { ApiError } from "../../protocol/mod.ts";
import type { QueenCore } from "../queen.ts";
import { readLimitedBody } from "../read_body.ts";
import type { ProjectStore } from "../projects/store.ts";
import { gitea } from "./gitea.ts";
import { github } from "./github.ts";
import { gitlab } from "./gitlab.ts";
import { webhookJobSpec } from "./job_spec.ts";
import { WebhookPayloadError } from "./types.ts";
import type { Forge } from "./types.ts";

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
  ) => void;
  log?: (message: string) => void;
}

function fail(status: 401 | 403 | 404, message: string): never {
  throw new HTTPException(status, { message });
}

/** The payload: JSON, or GitHub's form encoding (`payload=<JSON>`); undefined when neither. */
function decodePayload(body: Uint8Array, contentType: string | undefined): unknown {
  const text = new TextDecoder().decode(body);
  try {
    if (contentType?.startsWith("application/x-www-form-urlencoded")) {
      const json = new URLSearchParams(text).get("payload");
      return json === null ? undefined : JSON.parse(json);
    }
    return JSON.parse(text);
  } catch {
    return undefined;
  }
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
    const body = await readLimitedBody(c.req.raw);
    const payload = decodePayload(body, c.req.header("content-type"));
    const names = payload === undefined ? [] : forge.repoNames(payload);
    const stored = names.length ? projects.findByRepo(names) : undefined;
    const secret = stored?.project.webhook_secret ?? options.webhookSecret;
    if (!secret) {
      fail(
        403,
        "webhooks are refused: no webhook secret is set. Start the queen with --webhook-secret " +
          "(or STRIDER_WEBHOOK_SECRET), or give the project a webhook_secret, and set the same " +
          `secret on the ${forge.title} webhook`,
      );
    }
    const verdict = forge.verify(c.req.raw.headers, body, secret);
    if (verdict === "missing") {
      fail(401, `no ${forge.authHeader} header: set the webhook's secret on ${forge.title}`);
    }
    if (verdict !== "ok") {
      fail(401, `${forge.authHeader} does not match: the webhook's secret is not the queen's`);
    }
    if (payload === undefined) {
      return c.json({ error: "body is not a JSON webhook payload" } satisfies ApiError, 400);
    }
    let event;
    try {
      event = forge.parse(c.req.raw.headers, payload);
    } catch (error) {
      if (!(error instanceof WebhookPayloadError)) throw error;
      return c.json({ error: error.message, issues: error.issues } satisfies ApiError, 400);
    }
    if (event.kind === "ignored" && event.ping) return c.json({ message: event.reason }, 200);
    if (!stored) {
      const name = names[0] ?? "(none)";
      fail(
        404,
        `no project for repository ${name}: create one with POST /api/projects ` +
          `(name '${name}', or a repo.url of the same repository)`,
      );
    }
    const project = stored.project;
    if (event.kind === "ignored") return c.json({ message: event.reason }, 202);
    if (event.deliveryId) {
      const earlier = projects.deliveryJob(forge.name, event.deliveryId);
      if (earlier) {
        return c.json({
          id: earlier,
          duplicate: true,
          message: `delivery ${event.deliveryId} was received before: it made job ${earlier}`,
        }, 200);
      }
    }
    const made = webhookJobSpec(project, event);
    if (!made.ok) return c.json({ message: made.reason }, 202);
    const spec = JobSpecSchema.safeParse(made.spec);
    if (!spec.success) {
      const issues = issuesOf(spec.error);
      const error = "the delivery would make an invalid job: " +
        issues.map((i) => `${i.path}: ${i.message}`).join("; ");
      return c.json({ error, issues } satisfies ApiError, 400);
    }
    const record = await core.submit(spec.data);
    if (event.deliveryId) {
      projects.recordDelivery(forge.name, event.deliveryId, record.id, Date.now());
    }
    log(`${forge.name} ${event.kind} of ${project.name} made job ${record.id}`);
    if (event.commit) {
      options.onWebhookJob?.(record.id, {
        forge: forge.name,
        project: project.name,
        sha: event.commit,
      });
    }
    return c.json({ id: record.id, status: record.view.status, project: project.name }, 201);
  };

  for (const forge of FORGES) app.post(`/${forge.name}`, (c) => handle(forge, c));
  return app;
}
