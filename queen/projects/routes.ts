/**
 * `/api/projects`: create, list, show, change and remove projects. Writes need the API token;
 * secrets go in and are never shown again (their names are, with `***`).
 */
import { Hono } from "hono";
import type { z } from "zod";
import { issuesOf, ProjectSchema } from "../../protocol/mod.ts";
import type { ProjectList } from "../../protocol/mod.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../errors.ts";
import { jsonBody } from "../http/limits.ts";
import { patchProject } from "./patch.ts";
import { ProjectExistsError } from "./store.ts";
import type { ProjectStore, StoredProject } from "./store.ts";
import { projectView } from "./view.ts";

function invalid(error: z.ZodError): never {
  throw InvalidInputError.of("invalid project", issuesOf(error));
}

/**
 * The project routes, to mount at `/api/projects`. The server's guards check tokens and limit
 * bodies before these run.
 */
export function projectRoutes(projects: ProjectStore): Hono {
  const app = new Hono();
  const found = async (name: string): Promise<StoredProject> => {
    const stored = await projects.get(name);
    if (!stored) throw new NotFoundError(`no project named '${name}'`);
    return stored;
  };

  app.get(
    "/",
    async (c) =>
      c.json({ projects: (await projects.list()).map(projectView) } satisfies ProjectList),
  );

  app.post("/", async (c) => {
    const parsed = ProjectSchema.safeParse(await jsonBody(c));
    if (!parsed.success) invalid(parsed.error);
    try {
      return c.json(projectView(await projects.create(parsed.data, Date.now())), 201);
    } catch (error) {
      if (error instanceof ProjectExistsError) throw new ConflictError(error.message);
      throw error;
    }
  });

  // Names hold a '/': `/api/projects/owner/repo` and `/api/projects/owner%2Frepo` both work.
  app.get("/:name{.+}", async (c) => c.json(projectView(await found(c.req.param("name")))));

  app.patch("/:name{.+}", async (c) => {
    const stored = await found(c.req.param("name"));
    const patch = await jsonBody(c);
    if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
      throw new InvalidInputError(
        "a PATCH body is a JSON object of the fields to change (null removes one)",
      );
    }
    const body = patch as Record<string, unknown>;
    if (
      body.name !== undefined &&
      String(body.name).toLowerCase() !== stored.project.name.toLowerCase()
    ) {
      const message = "name cannot change: create a project with the new name and delete this one";
      throw new InvalidInputError(message, [{ path: "name", message }]);
    }
    delete body.name;
    const parsed = ProjectSchema.safeParse(patchProject(stored.project, body));
    if (!parsed.success) invalid(parsed.error);
    const updated = await projects.update(
      { ...parsed.data, name: stored.project.name },
      Date.now(),
    );
    return c.json(projectView(updated ?? await found(stored.project.name)));
  });

  app.delete("/:name{.+}", async (c) => {
    if (!await projects.delete((await found(c.req.param("name"))).project.name)) {
      throw new NotFoundError(`no project named '${c.req.param("name")}'`);
    }
    return c.body(null, 204);
  });

  return app;
}
