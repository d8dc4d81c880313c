/**
 * The builds API: `GET /api/builds`, `GET /api/builds/:id`, `POST /api/builds/:id/cancel`,
 * `POST /api/builds/:id/rerun` and `POST /api/builds/:id/rerun-failed`. Mounted under `/api`,
 * so the read and write guards of `server.ts` apply.
 * @module
 */
import type { Hono } from "hono";
import { BuildStatusSchema } from "../../protocol/mod.ts";
import type { BuildList } from "../../protocol/mod.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../errors.ts";
import type { ProjectStore } from "../projects/store.ts";
import { rerunSpec } from "../rerun.ts";
import { decodeCursor } from "../store.ts";
import type { BuildCore } from "./builds.ts";
import { buildsOf } from "./registry.ts";

export function mountBuildRoutes(app: Hono, core: BuildCore, projects: ProjectStore): void {
  const builds = () => buildsOf(core);

  app.get("/api/builds", async (c) => {
    const q = (name: string) => c.req.query(name) || undefined;
    const limit = Number(q("limit") ?? "50");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new InvalidInputError("limit must be an integer from 1 to 1000");
    }
    const status = q("status");
    if (status && !BuildStatusSchema.safeParse(status).success) {
      throw new InvalidInputError(`status must be one of ${BuildStatusSchema.options.join(", ")}`);
    }
    const cursor = q("cursor");
    if (cursor !== undefined) {
      try {
        decodeCursor(cursor);
      } catch (error) {
        throw new InvalidInputError((error as Error).message);
      }
    }
    const page = await builds().list({
      limit,
      cursor,
      repo: q("repo"),
      status: status as "running" | "done" | undefined,
    });
    return c.json(page satisfies BuildList);
  });

  app.get("/api/builds/:id", async (c) => {
    const id = c.req.param("id");
    const view = await builds().view(id);
    if (!view) throw new NotFoundError(`no build with id '${id}'`);
    return c.json(view);
  });

  app.post("/api/builds/:id/cancel", async (c) => {
    const id = c.req.param("id");
    if (!await builds().cancel(id)) throw new ConflictError(`build '${id}' has already finished`);
    return c.json((await builds().view(id))!, 202);
  });

  for (const [path, failedOnly] of [["rerun", false], ["rerun-failed", true]] as const) {
    app.post(`/api/builds/:id/${path}`, async (c) => {
      const made = await builds().rerun(
        c.req.param("id"),
        failedOnly,
        (record) => rerunSpec(record, projects),
      );
      return c.json(made, 201);
    });
  }
}
