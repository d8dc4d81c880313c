/**
 * The queen's HTTP and WebSocket server: a Hono app on `Deno.serve`. Handlers are thin: they
 * authenticate, validate with the protocol's schemas and call the core.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  frameTooLarge,
  JobResultSchema,
  JobStatusSchema,
  MAX_FRAME_BYTES,
  VERSION,
} from "../protocol/mod.ts";
import type { JobList } from "../protocol/mod.ts";
import { bearerToken } from "./auth.ts";
import { mountDashboard } from "./dashboard/mod.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "./errors.ts";
import { readGuard, workerGuard, writeGuard } from "./http/auth.ts";
import type { GuardTokens } from "./http/auth.ts";
import {
  HANDSHAKE_CLOSE_CODE,
  HANDSHAKE_MS,
  jsonBody,
  jsonLimit,
  TOO_BIG_CLOSE_CODE,
} from "./http/limits.ts";
import { onError } from "./http/on_error.ts";
import { MAX_FOLLOWERS_PER_JOB } from "./hub.ts";
import { acceptJob } from "./intake.ts";
import { jobSummary } from "./job_summary.ts";
import { logResponse } from "./log_response.ts";
import { queenMetrics } from "./metrics.ts";
import { fleetViews } from "./fleet.ts";
import { rerunSpec } from "./rerun.ts";
import { decodeCursor } from "./store.ts";
import type { QueenCore } from "./queen.ts";
import { jobEventStream } from "./sse.ts";
import type { JobViews } from "./sse.ts";
import { MemoryProjectStore } from "./projects/memory_store.ts";
import { projectRoutes } from "./projects/routes.ts";
import type { ProjectStore } from "./projects/store.ts";
import { webhookRoutes } from "./webhooks/routes.ts";
import { mountArtifactRoutes } from "./artifacts/routes.ts";
import { memoryArtifactStore } from "./artifacts/store.ts";
import type { Artifacts } from "./artifacts/store.ts";
import type { StatusReporter } from "./forge_status/reporter.ts";
import { mountBuildRoutes } from "./builds/routes.ts";

/** Tokens the server accepts. */
export interface ServerTokens {
  worker: readonly string[];
  /** API tokens with write scope. */
  api: readonly string[];
  /** Read-only API tokens (they matter on a `--private` queen); write tokens read too. */
  view?: readonly string[];
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
  artifacts?: Artifacts;
  /** Bytes one job's artifacts may take together (`--max-artifact-mib`). */
  maxArtifactBytes?: number;
  /** Reports webhook jobs' commit statuses to their forge. */
  reporter?: StatusReporter;
  /** Milliseconds a worker has to send `drone:info` and a browser its first frame (default 10 s). */
  handshakeMs?: number;
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
  const handshakeMs = options.handshakeMs ?? HANDSHAKE_MS;
  // Read on each request: reloading the tokens file changes these arrays in place.
  const guardTokens: GuardTokens = {
    get worker() {
      return tokens.worker;
    },
    get api() {
      return tokens.api;
    },
    get view() {
      return tokens.view ?? tokens.api;
    },
  };
  const isPrivate = options.private ?? false;
  const jobOr404 = async (id: string) => (await core.job(id)) ?? fail404(`no job with id '${id}'`);

  app.onError(onError);
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  // Who may do what, per route group: reads of a private queen, and every change.
  app.on(["GET", "HEAD"], "/api/*", readGuard(guardTokens, isPrivate));
  app.on(["POST", "PUT", "PATCH", "DELETE"], "/api/*", writeGuard(guardTokens), jsonLimit);
  app.use("/worker/*", workerGuard(guardTokens));
  app.use("/hooks/*", jsonLimit);

  mountDashboard(app, core, {
    tokens: guardTokens,
    private: isPrivate,
    projects,
    handshakeMs,
    artifacts: (id) => artifactStore.list(id),
    reported: async (id) => (await options.reporter?.view(id)) ?? null,
  });

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
      queued: core.queueDepth(),
    }));

  app.post("/api/jobs", async (c) => {
    return c.json(await acceptJob(core, await jsonBody(c), "api"), 201);
  });

  mountJobReads(app, core);

  app.get("/api/jobs/:id", async (c) => {
    const view = (await jobOr404(c.req.param("id"))).view;
    const reported = await reporter?.view(view.id);
    return c.json(reported ? { ...view, reported } : view);
  });

  app.delete("/api/jobs/:id", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    if (record.view.status !== "done") {
      throw new ConflictError(`job '${record.id}' has not finished: cancel it first`);
    }
    await core.store.deleteJob(record.id);
    return c.body(null, 204);
  });

  app.post("/api/jobs/:id/retry", async (c) => {
    const original = await jobOr404(c.req.param("id"));
    const spec = await rerunSpec(original, projects);
    return c.json(await acceptJob(core, spec, "rerun", { retryOf: original.id }), 201);
  });

  app.post("/api/jobs/:id/cancel", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    if (!(await core.cancelAnywhere(record.id))) {
      throw new ConflictError(`job '${record.id}' has already finished`);
    }
    return c.json({ id: record.id, status: record.view.status }, 202);
  });

  // The whole fleet: with several queens, every live queen's drones (queen/fleet.ts).
  app.get("/api/drones", async (c) => c.json({ drones: await fleetViews(core) }));

  mountBuildRoutes(app, core, projects);
  app.route("/api/projects", projectRoutes(projects));
  const reporter = options.reporter;
  app.route(
    "/hooks",
    webhookRoutes(core, projects, {
      ...options,
      onWebhookJob: reporter && ((job, where) => reporter.track(job, where)),
    }),
  );
  mountArtifactRoutes(app, core, artifactStore, { maxBytes: options.maxArtifactBytes });

  app.get("/ws/worker", workerGuard(guardTokens), (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      fail(426, "this route speaks WebSocket only");
    }
    // Read before upgrading: once upgraded, the request's headers are gone.
    const credential = bearerToken(c.req.header("authorization"));
    // idleTimeout 0: the core's heartbeat (pings, and the lease) judges silence instead, once a
    // drone has introduced itself; before that the handshake deadline below does.
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout: 0 });
    let drone: ReturnType<QueenCore["connect"]> | undefined;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    // Output frames may come as binary (protocol/output_frame.ts): read them as ArrayBuffers.
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      drone = core.connect(socket);
      drone.credential = credential;
      deadline = setTimeout(() => {
        if (!drone || drone.info || drone.closed) return;
        options.log?.(`drone ${drone.name}: no drone:info within ${handshakeMs} ms; closing`);
        socket.close(HANDSHAKE_CLOSE_CODE, `send drone:info within ${handshakeMs} ms`);
      }, handshakeMs);
    };
    socket.onmessage = (message) => {
      if (!drone) return;
      // Deno has already read this message whole (it has no size option); the queen refuses to
      // parse it and closes the socket, so one oversize frame is the most a worker can send.
      if (frameTooLarge(message.data)) {
        options.log?.(`drone ${drone.name}: frame past ${MAX_FRAME_BYTES} bytes; closing`);
        socket.close(TOO_BIG_CLOSE_CODE, `frames are limited to ${MAX_FRAME_BYTES} bytes`);
        return;
      }
      core.receive(drone, message.data);
    };
    socket.onclose = () => {
      clearTimeout(deadline);
      if (drone) core.disconnect(drone);
    };
    socket.onerror = () => {};
    return response;
  });

  return app;
}

/**
 * The reads of jobs that need nothing but the store and a hub: the list, a job's log and its
 * event stream; with several queens, jobs other queens record come through the cluster bus.
 */
export function mountJobReads(app: Hono, views: JobViews): void {
  const jobOr404 = async (id: string) => (await views.job(id)) ?? fail404(`no job with id '${id}'`);
  app.get("/api/jobs", async (c) => {
    const q = (name: string) => c.req.query(name) || undefined;
    const limit = Number(q("limit") ?? "50");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new InvalidInputError("limit must be an integer from 1 to 1000");
    }
    const status = q("status");
    if (status && !JobStatusSchema.safeParse(status).success) {
      throw new InvalidInputError(`status must be one of ${JobStatusSchema.options.join(", ")}`);
    }
    const result = q("result");
    if (result && !JobResultSchema.safeParse(result).success) {
      throw new InvalidInputError(`result must be one of ${JobResultSchema.options.join(", ")}`);
    }
    const sinceText = q("since");
    const since = sinceText ? Date.parse(sinceText) : undefined;
    if (since !== undefined && Number.isNaN(since)) {
      throw new InvalidInputError("since must be a date and time, e.g. 2026-11-28T00:00:00Z");
    }
    const cursor = q("cursor");
    if (cursor !== undefined) checkCursor(cursor);
    const page = await views.store.listJobs({
      status,
      result,
      repo: q("repo"),
      branch: q("branch"),
      since,
      limit,
      cursor,
    });
    return c.json({ jobs: page.records.map(jobSummary), next: page.next } satisfies JobList);
  });

  app.get("/api/jobs/:id/log", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    return logResponse(views.store, record, c.req.header("range"), {
      freeSent: servedOverSocket(c.env),
    });
  });

  app.get("/api/jobs/:id/events", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    const from = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
    const after = Number(from);
    if (!Number.isInteger(after) || after < 0) {
      throw new InvalidInputError("Last-Event-ID must be an event number");
    }
    if (record.view.status !== "done" && views.hub.followers(record.id) >= MAX_FOLLOWERS_PER_JOB) {
      fail(429, `job '${record.id}' has too many followers; try again later`);
    }
    return jobEventStream(views, record, after, { freeSent: servedOverSocket(c.env) });
  });
}

/**
 * Whether the request came through `Deno.serve` (which hands the app its connection's info as
 * the environment), so that its response's chunks go to a socket, one at a time, and none is
 * kept by an in-process reader (a test's `app.request`).
 */
function servedOverSocket(env: unknown): boolean {
  return typeof env === "object" && env !== null && "remoteAddr" in env;
}

function fail(status: ContentfulStatusCode, error: string): never {
  throw new HTTPException(status, { message: error });
}

function fail404(message: string): never {
  throw new NotFoundError(message);
}

/** An `InvalidInputError` unless `cursor` is one of the store's. */
function checkCursor(cursor: string): void {
  try {
    decodeCursor(cursor);
  } catch (error) {
    throw new InvalidInputError((error as Error).message);
  }
}
