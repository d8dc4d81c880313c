/**
 * Artifact routes. Workers upload with `PUT /worker/artifacts/:id/:attempt?path=P`, the worker
 * token (checked by the server's worker guard), the attempt's lease token in `x-strider-lease`
 * and `x-strider-sha256`; the queen keeps a file only for the attempt that lease token proves,
 * while a connection with that same worker token holds it and the job runs. Workers share worker
 * tokens, so the token alone proves nothing about an attempt. Anyone who may view the job lists
 * and downloads them with `GET /api/jobs/:id/artifacts[/path]`.
 */
import type { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { artifactPathProblem } from "../../protocol/mod.ts";
import type { ArtifactList } from "../../protocol/mod.ts";
import { bearerToken, tokenMatches } from "../auth.ts";
import type { QueenCore } from "../queen.ts";
import { ArtifactRefusedError } from "./store.ts";
import type { Artifacts } from "./store.ts";

/** Default cap on one job's artifacts together. */
export const DEFAULT_MAX_ARTIFACT_BYTES = 256 * 1024 * 1024;

function fail(status: ContentfulStatusCode, error: string): never {
  throw new HTTPException(status, { message: error });
}

/** `path`, or a 400 saying what is wrong with it. */
function cleanPath(path: string | undefined): string {
  if (path === undefined) fail(400, "the artifact path is missing: add ?path=RELATIVE/PATH");
  const problem = artifactPathProblem(path);
  if (problem) fail(400, `artifact path '${path.slice(0, 200)}' ${problem}`);
  return path;
}

/** The attempt number in an upload's URL, or a 400. */
function attemptOf(raw: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) {
    fail(400, `attempt '${raw.slice(0, 20)}' is not a number from 1`);
  }
  return Number(raw);
}

/** Mounts the upload route and the API's artifact routes on `app`. */
export function mountArtifactRoutes(
  app: Hono,
  core: QueenCore,
  artifacts: Artifacts,
  options: { maxBytes?: number },
): void {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_ARTIFACT_BYTES;
  const jobOr404 = async (id: string) =>
    (await core.job(id)) ?? fail(404, `no job with id '${id}'`);

  app.put("/worker/artifacts/:id/:attempt", async (c) => {
    // The server's worker guard has checked the token; it also names the connection below.
    const token = bearerToken(c.req.header("authorization"));
    const path = cleanPath(c.req.query("path"));
    const sha256 = c.req.header("x-strider-sha256") ?? "";
    if (!/^[0-9a-f]{64}$/.test(sha256)) fail(400, "x-strider-sha256 must be 64 hex digits");
    const record = await jobOr404(c.req.param("id"));
    const attempt = attemptOf(c.req.param("attempt"));
    // The lease token proves the attempt: checked first, before anything is read or kept.
    const lease = c.req.header("x-strider-lease");
    if (!lease) {
      fail(
        403,
        `an artifact upload needs the lease token of job '${record.id}' attempt ${attempt} ` +
          "(the one its queue:new carried) in x-strider-lease; a worker that sends none is " +
          "older than this queen: upgrade it",
      );
    }
    if (!core.provesAttempt(record.id, attempt, lease)) {
      fail(
        403,
        `the lease token sent is not that of job '${record.id}' attempt ${attempt}: only the ` +
          "worker that attempt was dispatched to may add its artifacts",
      );
    }
    // And the attempt runs now, on a connection made with this same worker token.
    const holder = [...core.drones.values()].find((d) =>
      d.jobs.get(record.id) === attempt && d.credential !== undefined &&
      tokenMatches(token, [d.credential])
    );
    if (record.view.status === "done") {
      fail(409, `job '${record.id}' has finished: it takes no more artifacts`);
    }
    // With several queens the worker may be connected to another one (its upload came through
    // the load balancer): then the lease token proves the attempt, and the job's row (read
    // from the database, the owner's) says which attempt runs.
    const elsewhere = core.fleet !== undefined && !core.liveJob(record.id);
    if (record.view.attempt !== attempt || (!holder && !elsewhere)) {
      fail(
        409,
        `job '${record.id}' attempt ${attempt} is not running on this worker` +
          (record.view.attempt !== attempt
            ? ` (the job is on attempt ${record.view.attempt})`
            : ""),
      );
    }
    const others = (await artifacts.list(record.id))
      .filter((a) => a.path !== path && a.attempt === attempt)
      .reduce((sum, a) => sum + a.size, 0);
    const room = maxBytes - others;
    if (Number(c.req.header("content-length") ?? 0) > room) {
      fail(413, `artifact '${path}' passes the job's artifact limit of ${maxBytes} bytes`);
    }
    try {
      const stored = await artifacts.put(
        { jobId: record.id, attempt, path, sha256 },
        c.req.raw.body ?? new ReadableStream({ start: (s) => s.close() }),
        room,
      );
      return c.json(stored, 201);
    } catch (error) {
      if (error instanceof ArtifactRefusedError) fail(error.status, error.message);
      throw error;
    }
  });

  app.get("/api/jobs/:id/artifacts", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    return c.json({ artifacts: await artifacts.list(record.id) } satisfies ArtifactList);
  });

  app.get("/api/jobs/:id/artifacts/*", async (c) => {
    const record = await jobOr404(c.req.param("id"));
    const prefix = `/api/jobs/${encodeURIComponent(record.id)}/artifacts/`;
    const raw = new URL(c.req.url).pathname;
    let path: string;
    try {
      path = raw.startsWith(prefix)
        ? raw.slice(prefix.length).split("/").map(decodeURIComponent).join("/")
        : "";
    } catch {
      fail(400, "the artifact path is not valid percent-encoding");
    }
    const opened = await artifacts.open(record.id, cleanPath(path));
    if (!opened) fail(404, `job '${record.id}' has no artifact '${path}'`);
    const name = path.split("/").pop()!.replace(/[^A-Za-z0-9._-]/g, "_");
    return new Response(opened.body, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(opened.artifact.size),
        "content-disposition": `attachment; filename="${name}"`,
        "x-content-type-options": "nosniff",
        "x-strider-sha256": opened.artifact.sha256,
        etag: `"${opened.artifact.sha256}"`,
      },
    });
  });
}
