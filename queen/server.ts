/**
 * The queen's HTTP and WebSocket server: a Hono app on `Deno.serve`. Handlers are thin: they
 * authenticate, validate with the protocol's schemas and call the core.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { issuesOf, JobSpecSchema, VERSION } from "../protocol/mod.ts";
import type { ApiError, JobList, JobSummary } from "../protocol/mod.ts";
import { bearerToken, tokenMatches } from "./auth.ts";
import { mergedLog } from "./job_state.ts";
import { JobRejectedError } from "./queen.ts";
import type { QueenCore } from "./queen.ts";
import { jobEventStream } from "./sse.ts";
import type { JobRecord } from "./store.ts";

/** Tokens the server accepts. */
export interface ServerTokens {
  worker: readonly string[];
  api: readonly string[];
}

/** Largest request body the API reads. */
const MAX_BODY_BYTES = 1024 * 1024;

function summary(record: JobRecord): JobSummary {
  const { view, spec } = record;
  const ref = "fetch" in spec.ref
    ? spec.ref.fetch
    : spec.ref.id
    ? `${spec.ref.branch}@${spec.ref.id}`
    : spec.ref.branch;
  return {
    id: view.id,
    status: view.status,
    result: view.result,
    repo: spec.repo.url,
    ref,
    job_type: spec.job_type,
    trigger: spec.trigger!,
    drone: view.drone,
    attempt: view.attempt,
    createdAt: view.createdAt,
    startedAt: view.startedAt,
    finishedAt: view.finishedAt,
  };
}

function fail(status: ContentfulStatusCode, error: string): never {
  throw new HTTPException(status, { message: error });
}

/** Builds the queen's Hono app over `core`. */
export function createApp(core: QueenCore, tokens: ServerTokens): Hono {
  const app = new Hono();

  const requireApiToken = (header: string | undefined) => {
    if (!tokenMatches(bearerToken(header), tokens.api)) {
      fail(401, "an API token is required: send 'Authorization: Bearer <token>'");
    }
  };
  const jobOr404 = (id: string) => core.store.getJob(id) ?? fail(404, `no job with id '${id}'`);

  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return c.json({ error: error.message } satisfies ApiError, error.status);
    }
    console.error("queen: unexpected error:", error);
    return c.json({ error: "internal error" } satisfies ApiError, 500);
  });
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  app.get("/healthz", (c) =>
    c.json({
      ok: true,
      version: VERSION,
      drones: core.drones.size,
      queued: core.queue().length,
    }));

  app.post("/api/jobs", async (c) => {
    requireApiToken(c.req.header("authorization"));
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
    const parsed = JobSpecSchema.safeParse(body);
    if (!parsed.success) {
      const issues = issuesOf(parsed.error);
      const error = "invalid job spec: " +
        issues.map((i) => `${i.path}: ${i.message}`).join("; ");
      return c.json({ error, issues } satisfies ApiError, 400);
    }
    try {
      const record = core.submit(parsed.data);
      return c.json({ id: record.id, status: record.view.status }, 201);
    } catch (error) {
      if (error instanceof JobRejectedError) fail(error.status, error.message);
      throw error;
    }
  });

  app.get("/api/jobs", (c) => {
    const limitText = c.req.query("limit") ?? "50";
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      fail(400, "limit must be an integer from 1 to 1000");
    }
    const jobs = core.store.listJobs({
      status: c.req.query("status"),
      result: c.req.query("result"),
      limit,
    });
    return c.json({ jobs: jobs.map(summary), next: null } satisfies JobList);
  });

  app.get("/api/jobs/:id", (c) => c.json(jobOr404(c.req.param("id")).view));

  app.get("/api/jobs/:id/log", (c) => {
    const record = jobOr404(c.req.param("id"));
    return c.text(mergedLog(core.store.events(record.id)));
  });

  app.get("/api/jobs/:id/events", (c) => {
    const record = jobOr404(c.req.param("id"));
    const from = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
    const after = Number(from);
    if (!Number.isInteger(after) || after < 0) fail(400, "Last-Event-ID must be an event number");
    return jobEventStream(core, record.id, after);
  });

  app.post("/api/jobs/:id/cancel", (c) => {
    requireApiToken(c.req.header("authorization"));
    const record = jobOr404(c.req.param("id"));
    if (!core.cancel(record.id)) fail(409, `job '${record.id}' has already finished`);
    return c.json({ id: record.id, status: record.view.status }, 202);
  });

  app.get("/api/drones", (c) => {
    const drones = [...core.drones.values()].map((d) => d.view((id) => core.isStarted(id)));
    return c.json({ drones });
  });

  app.get("/ws/worker", (c) => {
    if (!tokenMatches(bearerToken(c.req.header("authorization")), tokens.worker)) {
      fail(401, "a worker token is required: send 'Authorization: Bearer <token>'");
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      fail(426, "this route speaks WebSocket only");
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout: 0 });
    let drone: ReturnType<QueenCore["connect"]> | undefined;
    socket.onopen = () => drone = core.connect(socket);
    socket.onmessage = (message) => drone && core.receive(drone, message.data);
    socket.onclose = () => drone && core.disconnect(drone);
    socket.onerror = () => {};
    return response;
  });

  return app;
}
