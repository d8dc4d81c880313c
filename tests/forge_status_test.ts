/** The forges' commit status calls, built as their documentation specifies them. */
import { deepEqual, equal } from "node:assert/strict";
import { defaultApi, forgeState, statusRequest } from "../queen/forge_status/requests.ts";
import { reportingOf } from "../queen/forge_status/reporter.ts";
import { ProjectSchema } from "../protocol/mod.ts";

const SHA = "a".repeat(40);
const base = { sha: SHA, token: "T0k3n", targetUrl: "https://ci/jobs/7", context: "strider" };

Deno.test("each forge gets its own path, auth header and body", () => {
  const gh = statusRequest("github", {
    ...base,
    api: "https://api.github.com/",
    repo: "octo/hello",
    state: "failed",
  });
  equal(gh.url, `https://api.github.com/repos/octo/hello/statuses/${SHA}`);
  equal(gh.headers.authorization, "Bearer T0k3n");
  equal(gh.headers.accept, "application/vnd.github+json");
  deepEqual(gh.body, {
    state: "failure",
    target_url: "https://ci/jobs/7",
    description: "strider: the job failed",
    context: "strider",
  });
  const gl = statusRequest("gitlab", {
    ...base,
    api: "https://gitlab.example/api/v4",
    repo: "group/sub/proj",
    state: "cancelled",
  });
  equal(gl.url, `https://gitlab.example/api/v4/projects/group%2Fsub%2Fproj/statuses/${SHA}`);
  equal(gl.headers["private-token"], "T0k3n");
  equal(gl.headers.authorization, undefined);
  equal(gl.body.state, "canceled");
  equal(gl.body.name, "strider");
  const gt = statusRequest("gitea", {
    ...base,
    api: "https://gitea.example/api/v1",
    repo: "o/r",
    state: "passed",
  });
  equal(gt.url, `https://gitea.example/api/v1/repos/o/r/statuses/${SHA}`);
  equal(gt.headers.authorization, "token T0k3n");
  equal(gt.body.state, "success");
});

Deno.test("results map to each forge's states", () => {
  const results = [
    "pending",
    "passed",
    "failed",
    "errored",
    "cancelled",
    "timeout",
    "lost",
  ] as const;
  deepEqual(results.map((r) => forgeState("github", r)), [
    "pending",
    "success",
    "failure",
    "error",
    "error",
    "error",
    "error",
  ]);
  deepEqual(results.map((r) => forgeState("gitlab", r)), [
    "pending",
    "success",
    "failed",
    "failed",
    "canceled",
    "failed",
    "failed",
  ]);
  deepEqual(results.map((r) => forgeState("gitea", r)), [
    "pending",
    "success",
    "failure",
    "error",
    "error",
    "error",
    "error",
  ]);
});

Deno.test("the API address comes from the project's repository unless it names one", () => {
  equal(defaultApi("github", "https://github.com/o/r.git"), "https://api.github.com");
  equal(defaultApi("github", "git@github.example:o/r.git"), "https://github.example/api/v3");
  equal(defaultApi("gitlab", "https://gitlab.example/g/r.git"), "https://gitlab.example/api/v4");
  equal(defaultApi("gitea", "ssh://git@gitea.example:2222/o/r"), "https://gitea.example/api/v1");
  equal(defaultApi("gitea", "/srv/git/r"), undefined);
  const project = ProjectSchema.parse({
    name: "o/r",
    repo: { url: "/srv/git/r" },
    secrets: { FORGE_TOKEN: "t" },
  });
  deepEqual(reportingOf(project, "github"), {
    ok: false,
    error: "no forge API address for /srv/git/r: set the project's status.api",
  });
  const named = ProjectSchema.parse({
    ...project,
    status: { api: "http://127.0.0.1:1/x", token_secret: "GH", context: "ci/strider" },
    secrets: { GH: "t2" },
  });
  deepEqual(reportingOf(named, "github"), {
    ok: true,
    token: "t2",
    api: "http://127.0.0.1:1/x",
    context: "ci/strider",
  });
  deepEqual(reportingOf(ProjectSchema.parse({ ...project, secrets: {} }), "gitea"), {
    ok: false,
    error: "project o/r has no secret FORGE_TOKEN",
  });
  equal(ProjectSchema.safeParse({ ...project, status: { api: "file:///etc" } }).success, false);
});
