/**
 * The dashboard's pages for a team: projects and branches, a project's jobs, the numbered and
 * searchable log, badges, and a drone's page with drain and disconnect. Mounted by `mod.ts` with
 * the page helpers it owns (access, sessions, CSRF).
 */
import type { Context, Hono } from "hono";
import { NotFoundError } from "../errors.ts";
import { actOnDrone, findDrone, localView } from "../fleet.ts";
import { jobSummary } from "../job_summary.ts";
import type { ProjectStore } from "../projects/store.ts";
import { storedEvents } from "../store.ts";
import type { QueenCore } from "../queen.ts";
import { BADGE_HEADERS, badgeSvg } from "./badge.ts";
import { utilisation } from "./charts.tsx";
import { DronePage } from "./drone_page.tsx";
import type { PageContext } from "./layout.tsx";
import { lineTimes, lineWindow, searchLog } from "./log_lines.ts";
import { LogPage } from "./log_page.tsx";
import {
  branchesOf,
  filteredJobs,
  findProject,
  latestFinished,
  listProjects,
  readJobQuery,
  recentRuns,
} from "./project_data.ts";
import { ProjectPage, ProjectsPage } from "./projects_page.tsx";
import type { Session } from "./session.ts";

/** What `mod.ts` lends these routes. */
export interface PageTools {
  core: QueenCore;
  projects: ProjectStore;
  mayView: (c: Context) => boolean;
  toLogin: (c: Context) => Response;
  contextOf: (c: Context, session?: Session) => PageContext;
  html: (c: Context, node: unknown, status?: 200 | 400 | 404) => Response | Promise<Response>;
  problem: (
    c: Context,
    status: 400 | 404,
    title: string,
    text: string,
  ) => Response | Promise<Response>;
  actor: (c: Context) => Promise<Session | Response>;
}

/** Longest query find-in-log takes. */
const MAX_QUERY = 200;

/** Mounts the routes on `app`. */
export function mountTeamPages(app: Hono, t: PageTools): void {
  const { core } = t;
  const store = core.store;

  app.get("/projects", async (c) => {
    if (!t.mayView(c)) return t.toLogin(c);
    const entries = await listProjects(store, t.projects);
    const projects = [];
    for (const entry of entries) {
      projects.push({ entry, branches: await branchesOf(store, entry.repo) });
    }
    return t.html(c, ProjectsPage({ ctx: t.contextOf(c), projects }));
  });

  app.get("/projects/:name{.+}", async (c) => {
    if (!t.mayView(c)) return t.toLogin(c);
    const name = c.req.param("name");
    const project = await findProject(store, t.projects, name);
    if (!project) return t.problem(c, 404, "No such project", `There is no project '${name}'.`);
    const { query, problems } = readJobQuery((n) => c.req.query(n));
    const { jobs, next } = await filteredJobs(store, project.repo, query);
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (key !== "after") search.set(key, value);
    const data = {
      project,
      branches: await branchesOf(store, project.repo),
      runs: await recentRuns(store, project.repo),
      query,
      problems,
      jobs,
      next,
      search,
      origin: new URL(c.req.url).origin,
    };
    return t.html(c, ProjectPage({ ctx: t.contextOf(c), data }), problems.length ? 400 : 200);
  });

  // `/badge/<project>/<branch>.svg`; the project's name may hold '/', encoded or not.
  app.get("/badge/:path{.+\\.svg}", async (c) => {
    if (!t.mayView(c)) return c.text("this queen is private", 401);
    const path = c.req.param("path").replace(/\.svg$/, "");
    const entries = await listProjects(store, t.projects);
    const project = entries.filter((e) => path.startsWith(`${e.name}/`))
      .sort((a, b) => b.name.length - a.name.length)[0];
    if (!project) {
      return c.body(badgeSvg(undefined), 404, BADGE_HEADERS);
    }
    const branch = path.slice(project.name.length + 1);
    const latest = await latestFinished(store, project.repo, branch);
    const body = badgeSvg(latest?.result ?? undefined);
    const etag = `"${latest?.id ?? "none"}-${latest?.result ?? ""}"`;
    const headers = { ...BADGE_HEADERS, etag };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    return c.body(body, 200, headers);
  });

  app.get("/jobs/:id/log", async (c) => {
    if (!t.mayView(c)) return t.toLogin(c);
    const record = await store.getJob(c.req.param("id"));
    if (!record) {
      return t.problem(c, 404, "No such job", `There is no job '${c.req.param("id")}'.`);
    }
    const lineText = c.req.query("line");
    const line = lineText && /^\d{1,9}$/.test(lineText) ? Number(lineText) : undefined;
    const ts = c.req.query("ts") === "1";
    const q = (c.req.query("q") ?? "").slice(0, MAX_QUERY);
    const cursor = c.req.query("cursor");
    const window = await lineWindow(store, record.id, record.logBytes, line);
    const times = ts ? await lineTimes(storedEvents(store, record.id), window.starts) : undefined;
    const search = q ? await searchLog(store, record.id, record.logBytes, q, cursor) : undefined;
    const data = {
      jobId: record.id,
      window,
      times,
      query: q || undefined,
      search,
      params: { line, ts, q: q || undefined },
    };
    return t.html(c, LogPage({ ctx: t.contextOf(c), data }));
  });

  app.get("/jobs/:id/log/search", async (c) => {
    if (!t.mayView(c)) return c.json({ error: "log in to view this queen" }, 401);
    const record = await store.getJob(c.req.param("id"));
    if (!record) return c.json({ error: "no such job" }, 404);
    const q = c.req.query("q") ?? "";
    if (!q || q.length > MAX_QUERY) {
      return c.json({ error: `q must be 1 to ${MAX_QUERY} characters` }, 400);
    }
    return c.json(await searchLog(store, record.id, record.logBytes, q, c.req.query("cursor")));
  });

  // Any drone of the fleet: this queen's, or another live queen's (`DRONE@QUEEN`).
  const droneOf = async (c: Context) => {
    const found = await findDrone(core, c.req.param("id") ?? "");
    if (!found) return undefined;
    return "local" in found ? localView(core, found.local) : found.remote;
  };

  app.get("/drones/:id", async (c) => {
    if (!t.mayView(c)) return t.toLogin(c);
    const drone = await droneOf(c);
    if (!drone) {
      return t.problem(
        c,
        404,
        "No such drone",
        `No drone '${c.req.param("id")}' is connected (it may have drained or disconnected).`,
      );
    }
    const now = Date.now();
    const page = await store.listJobs({ since: now - 24 * 3600_000, limit: 1000 });
    const mine = page.records.filter((r) => r.view.attempts.some((a) => a.drone === drone.name));
    const attempts = mine.flatMap((r) => r.view.attempts.filter((a) => a.drone === drone.name));
    const data = {
      drone,
      recent: mine.slice(0, 20).map(jobSummary),
      shares: utilisation(attempts, drone.capacity, now),
    };
    return t.html(c, DronePage({ ctx: t.contextOf(c), data }));
  });

  // A drone of another queen is drained or disconnected by that queen, a moment later.
  for (const what of ["drain", "disconnect"] as const) {
    app.post(`/drones/:id/${what}`, async (c) => {
      const session = await t.actor(c);
      if (session instanceof Response) return session;
      const drone = await actOnDrone(core, c.req.param("id"), what);
      if (!drone) return t.problem(c, 404, "No such drone", "That drone is not connected.");
      return c.redirect(what === "drain" ? `/drones/${encodeURIComponent(drone.id)}` : "/", 303);
    });
    // The write guard of `/api/*` (queen/http/auth.ts) has checked the token.
    app.post(`/api/drones/:id/${what}`, async (c) => {
      const drone = await actOnDrone(core, c.req.param("id"), what);
      if (!drone) {
        throw new NotFoundError(
          `no connected drone '${c.req.param("id")}' (GET /api/drones lists them)`,
        );
      }
      return c.json({ ok: true, drone: drone.id, action: what, queen: drone.queen?.id });
    });
  }
}
