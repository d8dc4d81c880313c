/**
 * `/api/projects`: create, list, show, change and remove projects. Writes need the API token;
 * secrets go in and are never shown again (their names are, with `***`).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import { issuesOf, ProjectSchema } from "../../protocol/mod.ts";
import type { ApiError, ProjectList } from "../../protocol/mod.ts";
import { readJsonBody } from "../read_body.ts";
import { patchProject } from "./patch.ts";
import { ProjectExistsError } from "./store.ts";
import type { ProjectStore, StoredProject } from "./store.ts";
import { projectView } from "./view.ts";

function invalid(c: Context, error: z.ZodError) {
  const issues = issuesOf(error);
  const message = "invalid project: " + issues.map((i) => `${i.path}: ${i.message}`).join("; ");
  return c.json({ error: message, issues } satisfies ApiError, 400);
}

/**
 * The project routes, to mount at `/api/projects`. `requireApiToken` throws (401) unless the
 * request carries an API token.
 */
export function projectRoutes(
  projects: ProjectStore,
  requireApiToken: (c: Context) => void,
): Hono {
  const app = new Hono();
  const found = (name: string): StoredProject => {
    const stored = projects.get(name);
    if (!stored) throw new HTTPException(404, { message: `no project named '${name}'` });
    return stored;
  };

  app.get("/", (c) => c.json({ projects: projects.list().map(projectView) } satisfies ProjectList));

  app.post("/", async (c) => {
    requireApiToken(c);
    const parsed = ProjectSchema.safeParse(await readJsonBody(c.req.raw));
    if (!parsed.success) return invalid(c, parsed.error);
    try {
      return c.json(projectView(projects.create(parsed.data, Date.now())), 201);
    } catch (error) {
      if (error instanceof ProjectExistsError) {
        throw new HTTPException(409, { message: error.message });
      }
      throw error;
    }
  });

  // Names hold a '/': `/api/projects/owner/repo` and `/api/projects/owner%2Frepo` both work.
  app.get("/:name{.+}", (c) => c.json(projectView(found(c.req.param("name")))));

  app.patch("/:name{.+}", async (c) => {
    requireApiToken(c);
    const stored = found(c.req.param("name"));
    const patch = await readJsonBody(c.req.raw);
    if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
      const error = "a PATCH body is a JSON object of the fields to change (null removes one)";
      return c.json({ error } satisfies ApiError, 400);
    }
    const body = patch as Record<string, unknown>;
    if (
      body.name !== undefined &&
      String(body.name).toLowerCase() !== stored.project.name.toLowerCase()
    ) {
      const message = "name cannot change: create a project with the new name and delete this one";
      return c.json(
        { error: message, issues: [{ path: "name", message }] } satisfies ApiError,
        400,
      );
    }
    delete body.name;
    const parsed = ProjectSchema.safeParse(patchProject(stored.project, body));
    if (!parsed.success) return invalid(c, parsed.error);
    const updated = projects.update({ ...parsed.data, name: stored.project.name }, Date.now());
    return c.json(projectView(updated ?? found(stored.project.name)));
  });

  app.delete("/:name{.+}", (c) => {
    requireApiToken(c);
    if (!projects.delete(found(c.req.param("name")).project.name)) {
      throw new HTTPException(404, { message: `no project named '${c.req.param("name")}'` });
    }
    return c.body(null, 204);
  });

  return app;
}
