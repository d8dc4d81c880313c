/**
 * The queen's HTTP and WebSocket server: a Hono app on `Deno.serve`. Handlers are thin: they
 * authenticate, validate with the protocol's schemas and call the core.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  convertLegacyJob,
  isLegacyJob,
  issuesOf,
  JobResultSchema,
  JobSpecSchema,
  JobStatusSchema,
  LegacyJobSchema,
  VERSION,
} from "../protocol/mod.ts";
import type { ApiError, JobList } from "../protocol/mod.ts";
import { bearerToken, tokenMatches } from "./auth.ts";
import { mountDashboard, sessionAuthorizes } from "./dashboard/mod.ts";
import { MAX_FOLLOWERS_PER_JOB } from "./hub.ts";
import { jobSummary } from "./job_summary.ts";
import { logResponse } from "./log_response.ts";
import { queenMetrics } from "./metrics.ts";
import { JobRejectedError } from "./queen.ts";
import { rerunSpec } from "./rerun.ts";
import type { QueenCore } from "./queen.ts";
import { jobEventStream } from "./sse.ts";
import { MemoryProjectStore } from "./projects/memory_store.ts";
import { projectRoutes } from "./projects/routes.ts";
import type { ProjectStore } from "./projects/store.ts";
import { webhookRoutes } from "./webhooks/routes.ts";
import { mountArtifactRoutes } from "./artifacts/routes.ts";
import { memoryArtifactStore } from "./artifacts/store.ts";
import type { ArtifactStore } from "./artifacts/store.ts";
import type { StatusReporter } from "./forge_status/reporter.ts";

/** Tokens the server accepts. */
export interface ServerTokens {
  worker: readonly string[];
  /** API tokens with write scope. */
  api: readonly string[];
  /** Read-only API tokens (they matter on a `--private` queen); write tokens read too. */
  view?: readonly string[];
}

/** Largest request body the API reads. */
const MAX_BODY_BYTES = 1024 * 1024;

function fail(status: ContentfulStatusCode, error: string): never {
  throw new HTTPException(status, { message: error });
}

/** Settings of the server beyond its tokens. */
export interface ServerOptions {
  /** Viewing (dashboard, browser socket, API reads) needs the API token too. */
  private?: boolean;
  /** Where projects are kept (default: in memory). */
  projects?: ProjectStore;
  /** The queen's `--webhook-secret`: without it (or a project's own), webhooks are refused. */
  webhookSecret?: string;
  /** Where artifacts are kept (default: an in-memory database). */
  artifacts?: ArtifactStore;
  /** Bytes one job's artifacts may take together (`--max-artifact-mib`). */
  maxArtifactBytes?: number;
  /** Reports webhook jobs' commit statuses to their forge. */
  reporter?: StatusReporter;
  log?: (message: string) => void;
}

/** Builds the queen's Hono app over `core`. */
export function createApp(
  core: QueenCore,
  tokens: ServerTokens,
  options: ServerOptions = {},
): Hono {
  const app = new Hono();
  const projects = options.projects ?? new MemoryProjectStore();
  const artifactStore = options.artifacts ?? memoryArtifactStore();
  // First, so that a private queen's guard runs before the API routes.
  mountDashboard(app, core, {
    apiTokens: tokens.api,
    viewTokens: tokens.view ?? tokens.api,
    private: options.private,
    projects,
    artifacts: (id) => artifactStore.list(id),
    reported: (id) => options.reporter?.view(id) ?? null,
  });

  // The Bearer token, or the dashboard's session cookie with its CSRF token.
  const requireApiToken = (c: Context) => {
    if (
      !tokenMatches(bearerToken(c.req.header("authorization")), tokens.api) &&
      !sessionAuthorizes(c, tokens.api)
    ) {
      fail(401, "an API token is required: send 'Authorization: Bearer <token>'");
    }
  };
  const jobOr404 = async (id: string) =>
    (await core.job(id)) ?? fail(404, `no job with id '${id}'`);

  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return c.json({ error: error.message } satisfies ApiError, error.status);
    }
    console.error("queen: unexpected error:", error);
    return c.json({ error: "internal error" } satisfies ApiError, 500);
  });
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  const metrics = queenMetrics(core);
  app.get("/metrics", async (c) => {
    const text = await metrics.metrics();
    return c.body(text, 200, { "content-type": metrics.contentType });
  });

  app.get("/healthz", (c) =>
    c.json({
      ok: true,
      version: VERSION,
      drones: core.drones.size,
      queued: core.queue().length,
    }));

  app.post("/api/jobs", async (c) => {
    requireApiToken(c);
    const length = Number(c.req.header("content-length") ?? 0);
    if (length > MAX_BODY_BYTES) fail(413, `body exceeds ${MAX_BODY_BYTES} bytes`);
    const text = await c.req.text();
    if (text.length > MAX_BODY_BYTES) fail(413, `body exceeds ${MAX_BODY_BYTES} bytes`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      fail(400, `body is not JSON: ${(error as Error).message}`);
    }
    if (isLegacyJob(body)) {
      const legacy = LegacyJobSchema.safeParse(body);
      if (!legacy.success) {
        const issues = issuesOf(legacy.error);
        const error = "invalid job data (older Strider format): " +
          issues.map((i) => `${i.path}: ${i.message}`).join("; ");
        return c.json({ error, issues } satisfies ApiError, 400);
      }
      body = convertLegacyJob(legacy.data);
    }
    const parsed = JobSpecSchema.safeParse(body);
    if (!parsed.success) {
      const issues = issuesOf(parsed.error);
      const error = "invalid job spec: " +
        issues.map((i) => `${i.path}: ${i.message}`).join("; ");
      return c.json({ error, issues } satisfies ApiError, 400);
    }
    try {
      const record = await core.submit(parsed.data);
      return c.json({ id: record.id, status: record.view.status }, 201);
    } catch (error) {
      if (error instanceof JobRejectedError) fail(error.status, error.message);
      throw error;
    }
  });

  app.get("/api/jobs", async (c) => {
    const q = (name: string) => c.req.query(name) || undefined;
    const limit = Number(q("limit") ?? "50");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      fail(400, "limit must be an integer from 1 to 1000");
    }
    const status = q("status");
    if (status && !JobStatusSchema.safeParse(status).success) {
      fail(400, `status must be one of ${JobStatusSchema.options.join(", ")}`);
    }
    const result = q("result");
    if (result && !JobResultSchema.safeParse(result).success) {
      fail(400, `result must be one of ${JobResultSchema.options.join(", ")}`);
    }
    const sinceText = q("since");
    const since = sinceText ? Date.parse(sinceText) : undefined;
    if (since !== undefined && Number.isNaN(since)) {
      fail(400, "since must be a date and time, e.g. 2026-11-28T00:00:00Z");
    }
    let page;
    try {
      page = await core.store.listJobs({
        status,
        result,
        repo: q("repo"),
        branch: q("branch"),
        since,
        limit,
        cursor: q("cursor"),
      });
    } catch (error) {
      if (error instanceof TypeError) fail(400, error.message);
      throw error;
    }
    return c.json({ jobs: page.records.map(jobSummary), next: page.next } satisfies JobList);
  });

  app.get("/api/jobs/:id", async (c) => {
    const view = (await jobOr404(c.req.param("id"))).view;
    const reported = reporter?.view(view.id);
    return c.json(reported ? { ...view, reported } : view);
  });

  app.delete("/api/jobs/:id", async (c) => {
    requireApiToken(c);
    const record = await jobOr404(c.req.param("id"));
    if (record.view.status !== "done") {
      fail(409, `job '${record.id}' has not finished: cancel it first`);
    }
    await core.store.deleteJob(record.id);
    return c.body(null, 204);
  });

  app.post("/api/jobs/:id/retry", async (c) => {
    requireApiToken(c);
    const original = await jobOr404(c.req.param("id"));
    try {
      const record = await core.submit(rerunSpec(original, projects), { retryOf: original.id });
      return c.json({ id: record.id, status: record.view.status }, 201);
    } catch (error) {
      if (error instanceof JobRejectedError) fail(error.status, error.message);
      throw error;
    }
  });

  app.get("/api/jobs/:id/log", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    return logResponse(core.store, record, c.req.header("range"));
  });

  app.get("/api/jobs/:id/events", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    const from = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
    const after = Number(from);
    if (!Number.isInteger(after) || after < 0) fail(400, "Last-Event-ID must be an event number");
    if (record.view.status !== "done" && core.hub.followers(record.id) >= MAX_FOLLOWERS_PER_JOB) {
      fail(429, `job '${record.id}' has too many followers; try again later`);
    }
    return jobEventStream(core, record.id, after);
  });

  app.post("/api/jobs/:id/cancel", async (c) => {
    requireApiToken(c);
    const record = await jobOr404(c.req.param("id"));
    if (!core.cancel(record.id)) fail(409, `job '${record.id}' has already finished`);
    return c.json({ id: record.id, status: record.view.status }, 202);
  });

  app.get("/api/drones", (c) => {
    const drones = [...core.drones.values()].map((d) => d.view((id) => core.isStarted(id)));
    return c.json({ drones });
  });

  app.route("/api/projects", projectRoutes(projects, requireApiToken));
  const reporter = options.reporter;
  app.route(
    "/hooks",
    webhookRoutes(core, projects, {
      ...options,
      onWebhookJob: reporter && ((job, where) => reporter.track(job, where)),
    }),
  );
  mountArtifactRoutes(app, core, artifactStore, {
    workerTokens: () => tokens.worker,
    maxBytes: options.maxArtifactBytes,
  });

  app.get("/ws/worker", (c) => {
    if (!tokenMatches(bearerToken(c.req.header("authorization")), tokens.worker)) {
      fail(401, "a worker token is required: send 'Authorization: Bearer <token>'");
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      fail(426, "this route speaks WebSocket only");
    }
    // Read before upgrading: once upgraded, the request's headers are gone.
    const credential = bearerToken(c.req.header("authorization"));
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout: 0 });
    let drone: ReturnType<QueenCore["connect"]> | undefined;
    socket.onopen = () => {
      drone = core.connect(socket);
      drone.credential = credential;
    };
    socket.onmessage = (message) => drone && core.receive(drone, message.data);
    socket.onclose = () => drone && core.disconnect(drone);
    socket.onerror = () => {};
    return response;
  });

  return app;
}
