/**
 * The dashboard: server-rendered pages at `/` and `/jobs/:id`, the trigger form, login, actions,
 * the browser socket and the assets, mounted on the queen's Hono app. Pages work without
 * JavaScript; the client script makes them live.
 * @module
 */
import type { Context, Hono } from "hono";
import { JobIdSchema } from "../../protocol/mod.ts";
import { tokenMatches } from "../auth.ts";
import { ConflictError, InvalidInputError, NotFoundError, RejectedError } from "../errors.ts";
import { mayView as mayViewWith } from "../http/auth.ts";
import type { GuardTokens } from "../http/auth.ts";
import { formLimit } from "../http/limits.ts";
import { acceptJob } from "../intake.ts";
import { browserSocket } from "./browser_socket.ts";
import { VIEW_OUTPUT_LIMIT } from "../job_state.ts";
import type { ProjectStore } from "../projects/store.ts";
import { rerunSpec } from "../rerun.ts";
import type { QueenCore } from "../queen.ts";
import { ASSETS } from "./assets.ts";
import { JobPage } from "./job_page.tsx";
import { BuildPage } from "./build_page.tsx";
import { buildsOf } from "../builds/registry.ts";
import type { Artifact, ReportedStatus } from "../../protocol/mod.ts";
import { ProblemPage } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import { LoginPage } from "./login_page.tsx";
import { logTail, tailOf } from "./output.ts";
import { OutputPage } from "./output_page.tsx";
import { OverviewFeed } from "./overview_feed.ts";
import { overviewOf } from "./overview_data.ts";
import { OverviewPage } from "./overview_page.tsx";
import { RunPage } from "./run_page.tsx";
import { emptyRunForm, readRunForm, specFromRunForm } from "./run_form.ts";
import { csrfValid, endSession, sameOrigin, sessionOf, startSession } from "./session.ts";
import { mountTeamPages } from "./team_routes.tsx";
import { runFormOfProject, withProjectSecrets } from "./run_projects.ts";
import type { Session } from "./session.ts";

/** Settings of the dashboard. */
export interface DashboardOptions {
  /**
   * The API tokens (the login form accepts them, and sessions are signed with them) and the
   * view tokens (they may view a private queen: the API tokens and the read-only ones).
   */
  tokens: Pick<GuardTokens, "api" | "view">;
  /** Viewing needs a session (pages, `/ws/browser`) or the token too. */
  private?: boolean;
  /** Milliseconds a browser socket has to send its first frame. */
  handshakeMs?: number;
  /** Where a re-run of a finished job takes its secrets from (see `rerun.ts`). */
  projects: ProjectStore;
  /** A job's artifacts, listed on its page. */
  artifacts?: (jobId: string) => Artifact[] | Promise<Artifact[]>;
  /** The commit status reported for a job, shown on its page. */
  reported?: (jobId: string) => ReportedStatus | null | Promise<ReportedStatus | null>;
}

/** What pages are sent with: scripts and styles from this host only, no framing. */
const PAGE_HEADERS = {
  "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; " +
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "cache-control": "no-store",
};

/** A same-site path to go to after logging in; anything else becomes `/`. */
function safeNext(next: unknown): string {
  return typeof next === "string" && /^\/(?![/\\])/.test(next) ? next : "/";
}

/** A domain error a form shows as its problem; anything else is rethrown. */
function refusal(error: unknown): RejectedError | ConflictError | InvalidInputError {
  if (
    error instanceof RejectedError || error instanceof ConflictError ||
    error instanceof InvalidInputError
  ) {
    return error;
  }
  throw error;
}

/** Mounts the dashboard's routes on `app`. The API's guards are the server's (`http/auth.ts`). */
export function mountDashboard(app: Hono, core: QueenCore, options: DashboardOptions): void {
  // Getters: the server's token lists change in place when the tokens file is reloaded.
  const guard = options.tokens;
  const feed = new OverviewFeed(core);

  const contextOf = (c: Context, session = sessionOf(c, guard.api)): PageContext => {
    const url = new URL(c.req.url);
    return { path: url.pathname + url.search, session };
  };
  const html = (c: Context, node: unknown, status: 200 | 400 | 401 | 403 | 404 | 409 = 200) =>
    c.html(`<!doctype html>${node}`, status, PAGE_HEADERS);
  const problem = (c: Context, status: 400 | 401 | 403 | 404 | 409, title: string, text: string) =>
    html(c, ProblemPage({ ctx: contextOf(c), title, text }), status);
  /** Whether this request may see the dashboard. */
  const mayView = (c: Context) => mayViewWith(c, guard, options.private ?? false);
  const toLogin = (c: Context) =>
    c.redirect(`/login?next=${encodeURIComponent(contextOf(c).path)}`, 303);
  /** The session of a form post that may act, or the page that says why it may not. */
  const actor = async (c: Context): Promise<Session | Response> => {
    const session = sessionOf(c, guard.api);
    if (!session) {
      return problem(c, 401, "Log in first", "This action needs the API token: log in first.");
    }
    const body = await c.req.parseBody();
    if (!csrfValid(c, session, typeof body._csrf === "string" ? body._csrf : undefined)) {
      return problem(
        c,
        403,
        "Form expired",
        "The form did not come from this dashboard's current session. Reload the page and try again.",
      );
    }
    return session;
  };

  app.get("/assets/:name", (c) => {
    const asset = ASSETS[c.req.param("name")];
    if (!asset) return c.text("no such asset", 404);
    const headers = {
      "content-type": asset.type,
      etag: asset.etag,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    };
    if (c.req.header("if-none-match") === asset.etag) return c.body(null, 304, headers);
    return c.body(asset.body, 200, headers);
  });

  app.get("/", async (c) => {
    if (!mayView(c)) return toLogin(c);
    return html(c, OverviewPage({ ctx: contextOf(c), overview: await overviewOf(core) }));
  });

  app.get("/jobs/:id", async (c) => {
    if (!mayView(c)) return toLogin(c);
    const record = await core.job(c.req.param("id"));
    if (!record) return problem(c, 404, "No such job", `There is no job '${c.req.param("id")}'.`);
    const complete = record.viewBytes < VIEW_OUTPUT_LIMIT;
    const data = {
      view: record.view,
      n: record.lastN,
      logBytes: record.logBytes,
      logTail: complete ? undefined : await logTail(core.store, record),
      artifacts: await options.artifacts?.(record.id),
      reported: (await options.reported?.(record.id)) ?? undefined,
    };
    return html(c, JobPage({ ctx: contextOf(c), data }));
  });

  app.get("/builds/:id", async (c) => {
    if (!mayView(c)) return toLogin(c);
    const build = await buildsOf(core).view(c.req.param("id"));
    if (!build) {
      return problem(c, 404, "No such build", `There is no build '${c.req.param("id")}'.`);
    }
    return html(c, BuildPage({ ctx: contextOf(c), build }));
  });

  // A build's actions as plain forms: the server acts and shows the (new) build's page.
  for (const action of ["cancel", "rerun", "rerun-failed"] as const) {
    app.post(`/builds/:id/${action}`, formLimit, async (c) => {
      const session = await actor(c);
      if (session instanceof Response) return session;
      const id = c.req.param("id");
      const builds = buildsOf(core);
      try {
        if (action === "cancel") {
          if (!await builds.cancel(id)) {
            throw new ConflictError(`build '${id}' has already finished`);
          }
          return c.redirect(`/builds/${encodeURIComponent(id)}`, 303);
        }
        const made = await builds.rerun(
          id,
          action === "rerun-failed",
          (record) => rerunSpec(record, options.projects),
        );
        return c.redirect(`/builds/${encodeURIComponent(made.build)}`, 303);
      } catch (error) {
        if (error instanceof NotFoundError) {
          return problem(c, 404, "No such build", `There is no build '${id}'.`);
        }
        const refused = refusal(error);
        const status = refused instanceof ConflictError ? 409 : 400;
        return problem(c, status, "Cannot do that", refused.message);
      }
    });
  }

  /** An earlier part of one output: `key` is a command num or `job`, `end` where it ends. */
  const outputPart = async (c: Context) => {
    const record = await core.job(c.req.param("id") ?? "");
    if (!record) return undefined;
    const key = c.req.query("key") ?? "";
    const end = Number(c.req.query("end"));
    let text: string | undefined;
    let label = "job output";
    if (key === "job") text = record.view.output;
    else {
      for (const phase of Object.values(record.view.phases)) {
        const command = phase.commands.find((cmd) => String(cmd.num) === key);
        if (command) {
          text = command.output;
          label = `$ ${command.command}`;
        }
      }
    }
    if (text === undefined || !Number.isInteger(end) || end < 0) return undefined;
    return { record, key, label, part: tailOf(text, { end }) };
  };

  app.get("/jobs/:id/output", async (c) => {
    if (!mayView(c)) return toLogin(c);
    const found = await outputPart(c);
    if (!found) return problem(c, 404, "No such output", "That job or output does not exist.");
    const { record, key, part, label } = found;
    return html(
      c,
      OutputPage({ ctx: contextOf(c), jobId: record.id, outputKey: key, part, label }),
    );
  });

  app.get("/jobs/:id/output.json", async (c) => {
    if (!mayView(c)) return c.json({ error: "log in to view this queen" }, 401);
    const found = await outputPart(c);
    if (!found) return c.json({ error: "no such job or output" }, 404);
    return c.json({ start: found.part.start, text: found.part.text });
  });

  mountTeamPages(app, {
    core,
    projects: options.projects,
    mayView,
    toLogin,
    contextOf,
    html,
    problem,
    actor,
  });

  app.get("/run", async (c) => {
    if (!mayView(c)) return toLogin(c);
    const chosen = await runFormOfProject(
      options.projects,
      c.req.query("project"),
      c.req.query("branch"),
    );
    return html(c, RunPage({ ctx: contextOf(c), ...chosen, form: chosen.form ?? emptyRunForm() }));
  });

  app.post("/run", formLimit, async (c) => {
    const session = await actor(c);
    if (session instanceof Response) return session;
    const form = readRunForm(await c.req.parseBody());
    const made = specFromRunForm(await withProjectSecrets(options.projects, form));
    let problems = made.problems;
    if (made.spec) {
      try {
        const record = await acceptJob(core, made.spec, "dashboard");
        return c.redirect(`/jobs/${record.id}`, 303);
      } catch (error) {
        problems = [refusal(error).message];
      }
    }
    return html(c, RunPage({ ctx: contextOf(c, session), form, problems }), 400);
  });

  app.post("/jobs/:id/cancel", formLimit, async (c) => {
    const session = await actor(c);
    if (session instanceof Response) return session;
    const id = c.req.param("id");
    if (!(await core.job(id))) {
      return problem(c, 404, "No such job", `There is no job '${id}'.`);
    }
    await core.cancelAnywhere(id);
    return c.redirect(`/jobs/${id}`, 303);
  });

  app.post("/jobs/:id/rerun", formLimit, async (c) => {
    const session = await actor(c);
    if (session instanceof Response) return session;
    const id = c.req.param("id");
    const original = JobIdSchema.safeParse(id).success ? await core.job(id) : undefined;
    if (!original) return problem(c, 404, "No such job", `There is no job '${id}'.`);
    try {
      const spec = await rerunSpec(original, options.projects);
      const record = await acceptJob(core, spec, "rerun", { retryOf: id });
      return c.redirect(`/jobs/${record.id}`, 303);
    } catch (error) {
      const refused = refusal(error);
      return problem(
        c,
        refused instanceof ConflictError ? 409 : 400,
        "Cannot re-run",
        refused.message,
      );
    }
  });

  app.get("/login", (c) => {
    const next = safeNext(c.req.query("next"));
    return html(c, LoginPage({ ctx: contextOf(c), next }));
  });

  app.post("/login", formLimit, async (c) => {
    const body = await c.req.parseBody();
    const next = safeNext(body.next);
    if (!sameOrigin(c)) {
      return problem(c, 403, "Wrong origin", "Log in from this dashboard's own login page.");
    }
    const token = typeof body.token === "string" ? body.token.trim() : "";
    if (!tokenMatches(token, guard.view)) {
      const problem = "That is not this queen's API token.";
      return html(c, LoginPage({ ctx: contextOf(c), next, problem }), 401);
    }
    startSession(c, token);
    return c.redirect(next, 303);
  });

  app.post("/logout", formLimit, async (c) => {
    const session = await actor(c);
    if (session instanceof Response) return session;
    endSession(c);
    return c.redirect("/", 303);
  });

  app.get("/ws/browser", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json({ error: "this route speaks WebSocket only" }, 426);
    }
    // A private queen's socket needs a session from a page of this host (or the token).
    if (options.private && (!mayView(c) || !sameOrigin(c))) {
      return c.json({ error: "this queen is private: log in first" }, 401);
    }
    return browserSocket(c.req.raw, core, {
      feed,
      mayAct: sessionOf(c, guard.api) !== undefined && sameOrigin(c),
      apiTokens: guard.api,
      handshakeMs: options.handshakeMs,
    });
  });
}
