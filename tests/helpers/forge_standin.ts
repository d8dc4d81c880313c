/**
 * A local stand-in for the commit status APIs of GitHub, GitLab and Gitea. It accepts a call
 * only when method, path, auth header, content type and body are exactly what each forge's
 * documentation specifies, and answers 422 naming what is wrong otherwise (GitHub's answer to
 * a bad status). Tests can make it fail a call or hold its answer.
 *
 * - GitHub (docs.github.com, "Create a commit status"): `POST /repos/{owner}/{repo}/statuses/{sha}`,
 *   `Authorization: Bearer` (or `token`), `Accept: application/vnd.github+json`, JSON
 *   `{state, target_url?, description?, context?}`, state pending|success|failure|error; 201.
 * - GitLab (docs.gitlab.com, "Commits API: Set the pipeline status of a commit"):
 *   `POST /api/v4/projects/{id or URL-encoded path}/statuses/{sha}`, `PRIVATE-TOKEN`,
 *   `{state, target_url?, description?, name?/context?, ref?, ...}`, state
 *   pending|running|success|failed|canceled|skipped; 201.
 * - Gitea (docs.gitea.com API, "Create a commit status"):
 *   `POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`, `Authorization: token`, JSON
 *   `{state, target_url?, description?, context?}`, state pending|success|error|failure|warning; 201.
 */

export interface StatusCall {
  forge: "github" | "gitlab" | "gitea";
  repo: string;
  sha: string;
  token: string;
  body: Record<string, unknown>;
}

const STATES = {
  github: ["pending", "success", "failure", "error"],
  gitlab: ["pending", "running", "success", "failed", "canceled", "skipped"],
  gitea: ["pending", "success", "error", "failure", "warning"],
};
const KEYS = {
  github: ["state", "target_url", "description", "context"],
  gitlab: [
    "state",
    "ref",
    "target_url",
    "description",
    "name",
    "context",
    "coverage",
    "pipeline_id",
  ],
  gitea: ["state", "target_url", "description", "context"],
};

export class ForgeStandIn {
  readonly calls: StatusCall[] = [];
  readonly refused: string[] = [];
  /** Answers to give before accepting, per sha: e.g. [502] fails the first call. */
  readonly failures = new Map<string, number[]>();
  /** Calls for these `sha:state` pairs wait until released. */
  readonly #held = new Map<string, PromiseWithResolvers<void>>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  url = "";

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (r) => this.#handle(r),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Holds the answer to the call setting `sha` to `state` until `release`. */
  hold(sha: string, state: string): void {
    this.#held.set(`${sha}:${state}`, Promise.withResolvers());
  }

  release(sha: string, state: string): void {
    this.#held.get(`${sha}:${state}`)?.resolve();
  }

  /** Whether a call for `sha:state` is being held now. */
  waiting = new Set<string>();

  statesOf(sha: string): string[] {
    return this.calls.filter((c) => c.sha === sha).map((c) => String(c.body.state));
  }

  async close(): Promise<void> {
    for (const held of this.#held.values()) held.resolve();
    await this.#server.shutdown();
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const refuse = (why: string) => {
      this.refused.push(`${request.method} ${url.pathname}: ${why}`);
      return Response.json({ message: why }, { status: 422 });
    };
    if (request.method !== "POST") return refuse("method must be POST");
    let forge: StatusCall["forge"];
    let repo: string;
    let sha: string;
    let token: string | undefined;
    const auth = request.headers.get("authorization") ?? "";
    let m;
    if ((m = url.pathname.match(/^\/github\/repos\/([^/]+)\/([^/]+)\/statuses\/([0-9a-f]{40})$/))) {
      forge = "github";
      repo = `${m[1]}/${m[2]}`;
      sha = m[3];
      token = auth.match(/^(?:Bearer|token) (\S+)$/)?.[1];
      if (request.headers.get("accept") !== "application/vnd.github+json") {
        return refuse("Accept must be application/vnd.github+json");
      }
      if (!request.headers.get("user-agent")) return refuse("GitHub requires a User-Agent");
    } else if (
      (m = url.pathname.match(/^\/gitlab\/api\/v4\/projects\/([^/]+)\/statuses\/([0-9a-f]{40})$/))
    ) {
      forge = "gitlab";
      repo = decodeURIComponent(m[1]);
      if (!repo.includes("/") && !/^\d+$/.test(repo)) {
        return refuse("project must be an id or path");
      }
      if (m[1].includes("/")) return refuse("the project path must be URL-encoded");
      sha = m[2];
      token = request.headers.get("private-token") ?? undefined;
    } else if (
      (m = url.pathname.match(
        /^\/gitea\/api\/v1\/repos\/([^/]+)\/([^/]+)\/statuses\/([0-9a-f]{40})$/,
      ))
    ) {
      forge = "gitea";
      repo = `${m[1]}/${m[2]}`;
      sha = m[3];
      token = auth.match(/^token (\S+)$/)?.[1];
    } else return refuse(`no such API path ${url.pathname}`);
    if (!token) return refuse("no token in the forge's auth header");
    if (!request.headers.get("content-type")?.startsWith("application/json")) {
      return refuse("content-type must be application/json");
    }
    let body: Record<string, unknown>;
    try {
      body = await request.json();
    } catch {
      return refuse("body is not JSON");
    }
    const extra = Object.keys(body).filter((k) => !KEYS[forge].includes(k));
    if (extra.length) return refuse(`unknown fields ${extra.join(", ")}`);
    if (!STATES[forge].includes(String(body.state))) return refuse(`bad state ${body.state}`);
    for (const key of ["target_url", "description", "context", "name"]) {
      if (key in body && typeof body[key] !== "string") return refuse(`${key} must be a string`);
    }
    if (forge === "github" && String(body.description ?? "").length > 140) {
      return refuse("description is over 140 characters");
    }
    const fail = this.failures.get(sha)?.shift();
    if (fail) return Response.json({ message: "stand-in failure" }, { status: fail });
    const held = this.#held.get(`${sha}:${body.state}`);
    if (held) {
      this.waiting.add(`${sha}:${body.state}`);
      await held.promise;
      this.waiting.delete(`${sha}:${body.state}`);
    }
    this.calls.push({ forge, repo, sha, token, body });
    return Response.json({ id: this.calls.length, state: body.state }, { status: 201 });
  }
}
