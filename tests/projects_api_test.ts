/**
 * `/api/projects` and `/hooks/*` in-process (`app.request`): validation, masking, merge
 * patches, authentication of deliveries, and the jobs deliveries make.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { JobViewSchema, ProjectViewSchema } from "../protocol/mod.ts";
import type { JobSpec } from "../protocol/mod.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { MemoryProjectStore } from "../queen/projects/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { createApp } from "../queen/server.ts";
import { deliveryHeaders, fixture } from "./helpers/webhooks.ts";
import type { ForgeName } from "./helpers/webhooks.ts";

const TOKEN = "api-token-for-tests";
const HOOK_SECRET = "hook-secret-for-tests";

function setup(options: { webhookSecret?: string } = { webhookSecret: HOOK_SECRET }) {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  const projects = new MemoryProjectStore();
  const app = createApp(core, { worker: ["w"], api: [TOKEN] }, { projects, ...options });
  const call = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token !== null) headers.set("authorization", `Bearer ${init.token ?? TOKEN}`);
    if (typeof init.body === "string") headers.set("content-type", "application/json");
    return app.request(path, { ...init, headers });
  };
  const send = (path: string, method: string, body: unknown, token?: string | null) =>
    call(path, { method, body: JSON.stringify(body), token });
  const hook = (
    forge: ForgeName,
    event: string,
    payload: unknown,
    extra: { delivery?: string; secret?: string | null } = {},
  ) => {
    const body = JSON.stringify(payload);
    const secret = extra.secret === null ? undefined : extra.secret ?? HOOK_SECRET;
    return app.request(`/hooks/${forge}`, {
      method: "POST",
      headers: deliveryHeaders(forge, { event, delivery: extra.delivery, secret, body }),
      body,
    });
  };
  return { app, core, projects, call, send, hook, [Symbol.dispose]: () => core.close() };
}

const HELLO = {
  name: "octo-org/hello-world",
  repo: {
    url: "https://github.com/octo-org/hello-world.git",
    auth: { type: "https", username: "ci", password: "repo-password-1" },
  },
  branches: {
    main: { plugins: ["env", "custom"], config: { custom: { test: "make test" } }, deploy: true },
    "*": { plugins: ["env", "custom"], config: { custom: { test: "make quick" } } },
  },
  secrets: { NPM_TOKEN: "npm-secret-value" },
};

Deno.test("projects: writes need the token; bodies are checked naming each field", async () => {
  using q = setup();
  equal((await q.send("/api/projects", "POST", HELLO, null)).status, 401);
  const bad = await q.send("/api/projects", "POST", {
    name: "no-slash",
    repo: { url: "ftp://host/x" },
    branches: { "bad..branch": {}, main: { plugins: ["not ok!"], deploy: "yes" } },
    secrets: { "1BAD": "x", GOOD: "***" },
    surprise: true,
  });
  equal(bad.status, 400);
  const body = await bad.json();
  const paths = body.issues.map((i: { path: string }) => i.path);
  for (
    const path of [
      "name",
      "repo.url",
      "branches.bad..branch",
      "branches.main.plugins.0",
      "branches.main.deploy",
      "secrets.1BAD",
      "secrets.GOOD",
      "(body)",
    ]
  ) ok(paths.includes(path), `${path} in ${paths.join(", ")}`);
  match(body.error, /^invalid project: /);
  equal((await q.call("/api/projects", { method: "POST", body: "{" })).status, 400);
});

Deno.test("projects: created, listed and shown with every secret as ***", async () => {
  using q = setup();
  const created = await q.send("/api/projects", "POST", { ...HELLO, webhook_secret: "per-proj" });
  equal(created.status, 201);
  const view = ProjectViewSchema.parse(await created.json());
  deepEqual(view.secrets, { NPM_TOKEN: "***" });
  deepEqual(view.repo.auth, { type: "https", username: "ci", password: "***" });
  equal(view.webhook_secret, "***");
  equal(view.branches.main.deploy, true);
  const duplicate = await q.send("/api/projects", "POST", {
    ...HELLO,
    name: "Octo-Org/Hello-World",
  });
  equal(duplicate.status, 409);
  match((await duplicate.json()).error, /already exists/);
  for (
    const path of ["/api/projects/octo-org/hello-world", "/api/projects/octo-org%2Fhello-world"]
  ) {
    const shown = await q.call(path, { token: null });
    equal(shown.status, 200, path);
    const text = await shown.text();
    ok(!text.includes("npm-secret-value") && !text.includes("repo-password-1"), text);
    ok(!text.includes("per-proj"), text);
  }
  const list = await (await q.call("/api/projects", { token: null })).json();
  deepEqual(list.projects.map((p: { name: string }) => p.name), ["octo-org/hello-world"]);
  ok(!JSON.stringify(list).includes("npm-secret-value"));
  const missing = await q.call("/api/projects/no/such");
  equal(missing.status, 404);
  equal((await missing.json()).error, "no project named 'no/such'");
});

Deno.test("projects: PATCH merges, null removes, *** keeps a secret; DELETE removes", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", HELLO);
  const path = "/api/projects/octo-org/hello-world";
  equal((await q.send(path, "PATCH", { secrets: { X_KEY: "x-value" } }, null)).status, 401);
  const shown = await (await q.call(path)).json();
  // Sending back what GET showed, plus changes: the masked values stay as they were.
  const patched = await q.send(path, "PATCH", {
    ...shown,
    secrets: { ...shown.secrets, NEW_ONE: "new-value" },
    branches: { main: { deploy: null, job_type: "TEST" }, "release/*": null, dev: {} },
  });
  equal(patched.status, 200, await patched.clone().text());
  const stored = q.projects.get("octo-org/hello-world")!.project;
  deepEqual(stored.secrets, { NPM_TOKEN: "npm-secret-value", NEW_ONE: "new-value" });
  deepEqual(stored.repo.auth, { type: "https", username: "ci", password: "repo-password-1" });
  deepEqual(stored.branches.main, {
    plugins: ["env", "custom"],
    config: { custom: { test: "make test" } },
    job_type: "TEST",
  });
  deepEqual(stored.branches.dev, {});
  await q.send(path, "PATCH", { secrets: { NPM_TOKEN: null }, repo: { auth: null } });
  const after = q.projects.get("octo-org/hello-world")!.project;
  deepEqual(after.secrets, { NEW_ONE: "new-value" });
  equal(after.repo.auth, undefined);
  const renamed = await q.send(path, "PATCH", { name: "octo-org/other" });
  equal(renamed.status, 400);
  equal((await renamed.json()).issues[0].path, "name");
  const invalid = await q.send(path, "PATCH", { branches: { main: { plugins: "env" } } });
  equal(invalid.status, 400);
  equal((await invalid.json()).issues[0].path, "branches.main.plugins");
  equal((await q.send("/api/projects/no/such", "PATCH", {})).status, 404);
  equal((await q.call(path, { method: "DELETE" })).status, 204);
  equal((await q.call(path)).status, 404);
  equal((await q.call(path, { method: "DELETE" })).status, 404);
});

Deno.test("webhooks without any secret are refused, saying how to set one", async () => {
  using q = setup({});
  await q.send("/api/projects", "POST", HELLO);
  const response = await q.hook("github", "push", await fixture("github_push"));
  equal(response.status, 403);
  match((await response.json()).error, /--webhook-secret/);
  equal((await q.core.store.listJobs({ limit: 10 })).records.length, 0);
});

Deno.test("a forged or unsigned delivery gets 401 and makes nothing", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", HELLO);
  const push = await fixture("github_push");
  const forged = await q.hook("github", "push", push, { secret: "guessed" });
  equal(forged.status, 401);
  match((await forged.json()).error, /X-Hub-Signature-256 does not match/);
  const unsigned = await q.hook("github", "push", push, { secret: null });
  equal(unsigned.status, 401);
  match((await unsigned.json()).error, /no X-Hub-Signature-256 header/);
  equal(
    (await q.hook("gitlab", "Push Hook", await fixture("gitlab_push"), { secret: "x" })).status,
    401,
  );
  equal((await q.hook("gitea", "push", await fixture("gitea_push"), { secret: "x" })).status, 401);
  equal((await q.core.store.listJobs({ limit: 10 })).records.length, 0);
});

Deno.test("a signed push makes one job from the project's settings, however often delivered", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", HELLO);
  const push = await fixture("github_push");
  const first = await q.hook("github", "push", push, { delivery: "delivery-1" });
  equal(first.status, 201);
  const { id } = await first.json();
  const again = await q.hook("github", "push", push, { delivery: "delivery-1" });
  equal(again.status, 200);
  const repeated = await again.json();
  equal(repeated.id, id);
  equal(repeated.duplicate, true);
  const jobs = (await q.core.store.listJobs({ limit: 10 })).records;
  equal(jobs.length, 1);
  const spec: JobSpec = jobs[0].spec;
  equal(spec.repo.url, HELLO.repo.url, "the project's repository, not the payload's");
  deepEqual(spec.ref, { branch: "main", id: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" });
  equal(spec.job_type, "TEST&DEPLOY");
  deepEqual(spec.plugins, ["env", "custom"]);
  deepEqual(spec.config, { custom: { test: "make test" } });
  deepEqual(spec.secrets, { NPM_TOKEN: "npm-secret-value" });
  equal(spec.trigger?.author?.username, "monalisa");
  const view = JobViewSchema.parse(await (await q.call(`/api/jobs/${id}`)).json());
  deepEqual(view.spec.secrets, { NPM_TOKEN: "***" });
  equal(view.spec.repo.auth?.type === "https" && view.spec.repo.auth.password, "***");
  // Another branch takes the '*' settings.
  const dev = { ...push, ref: "refs/heads/dev" };
  equal((await q.hook("github", "push", dev)).status, 201);
  const devSpec = (await q.core.store.listJobs({ limit: 1 })).records[0].spec;
  equal(devSpec.job_type, "TEST");
  deepEqual(devSpec.config, { custom: { test: "make quick" } });
});

Deno.test("without branch settings the repository's strider.json decides; unknown branches wait", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", {
    name: "octo-org/hello-world",
    repo: { url: "/srv/git/hello-world" },
    branches: { main: {} },
  });
  const push = await fixture("github_push");
  equal((await q.hook("github", "push", push)).status, 201);
  const spec = (await q.core.store.listJobs({ limit: 1 })).records[0].spec;
  equal(spec.plugins, undefined);
  equal(spec.secrets, undefined);
  const other = await q.hook("github", "push", { ...push, ref: "refs/heads/dev" });
  equal(other.status, 202);
  match((await other.json()).message, /no settings for branch 'dev'/);
});

Deno.test("pull requests only test, and a fork's get no secrets", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", HELLO);
  const pr = await fixture("github_pull_request");
  equal((await q.hook("github", "pull_request", pr)).status, 201);
  let spec = (await q.core.store.listJobs({ limit: 1 })).records[0].spec;
  deepEqual(spec.ref, { fetch: "refs/pull/2/merge" });
  equal(spec.job_type, "TEST", "main deploys, but not from a pull request");
  deepEqual(spec.secrets, { NPM_TOKEN: "npm-secret-value" });
  const fork = structuredClone(pr) as { pull_request: { head: { repo: unknown } } };
  fork.pull_request.head.repo = { full_name: "mallory/hello-world" };
  equal((await q.hook("github", "pull_request", fork)).status, 201);
  spec = (await q.core.store.listJobs({ limit: 1 })).records[0].spec;
  equal(spec.secrets, undefined);
  const closed = await q.hook("github", "pull_request", { ...pr, action: "closed" });
  equal(closed.status, 202);
  equal((await q.core.store.listJobs({ limit: 10 })).records.length, 2);
});

Deno.test("unknown repositories get 404; pings 200; other events 202", async () => {
  using q = setup();
  const unknown = await q.hook("github", "push", await fixture("github_push"));
  equal(unknown.status, 404);
  match((await unknown.json()).error, /no project for repository octo-org\/hello-world/);
  const ping = await q.hook("github", "ping", await fixture("github_ping"));
  equal(ping.status, 200);
  match((await ping.json()).message, /^pong/);
  await q.send("/api/projects", "POST", HELLO);
  const star = await q.hook("github", "star", { repository: { full_name: HELLO.name } });
  equal(star.status, 202);
  equal((await q.core.store.listJobs({ limit: 10 })).records.length, 0);
});

Deno.test("a project's own webhook secret wins over the queen's", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", {
    name: "mike/diaspora",
    repo: { url: "/srv/git/diaspora" },
    webhook_secret: "project-only-token",
  });
  const push = await fixture("gitlab_push");
  equal((await q.hook("gitlab", "Push Hook", push)).status, 401);
  const ok = await q.hook("gitlab", "Push Hook", push, { secret: "project-only-token" });
  equal(ok.status, 201);
});

Deno.test("GitLab and Gitea deliveries make jobs matched by clone URL", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", {
    name: "team/diaspora",
    repo: { url: "git@example.com:mike/diaspora.git" },
  });
  await q.send("/api/projects", "POST", {
    name: "team/webhooks",
    repo: { url: "http://localhost:3000/gitea/webhooks.git" },
  });
  equal((await q.hook("gitlab", "Push Hook", await fixture("gitlab_push"))).status, 201);
  const mr = await q.hook("gitlab", "Merge Request Hook", await fixture("gitlab_merge_request"));
  equal(mr.status, 404, "the merge request fixture is another project");
  equal((await q.hook("gitea", "pull_request", await fixture("gitea_pull_request"))).status, 201);
  const [pr, push] = (await q.core.store.listJobs({ limit: 10 })).records;
  deepEqual(push.spec.ref, { branch: "master", id: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7" });
  equal(push.spec.trigger?.source.type === "plugin" && push.spec.trigger.source.plugin, "gitlab");
  deepEqual(pr.spec.ref, { fetch: "refs/pull/7/head" });
  equal(pr.spec.trigger?.type, "pull-request");
});

Deno.test("a delivery over 1 MiB gets 413", async () => {
  using q = setup();
  const response = await q.hook("github", "push", { padding: "x".repeat(1024 * 1024) });
  equal(response.status, 413);
});

Deno.test("GitHub's form-encoded deliveries work; a ref unsafe for git is refused", async () => {
  using q = setup();
  await q.send("/api/projects", "POST", HELLO);
  const body = new URLSearchParams({ payload: JSON.stringify(await fixture("github_push")) })
    .toString();
  const headers = deliveryHeaders("github", { event: "push", secret: HOOK_SECRET, body });
  headers["content-type"] = "application/x-www-form-urlencoded";
  const response = await q.app.request("/hooks/github", { method: "POST", headers, body });
  equal(response.status, 201, await response.clone().text());
  const evil = { ...(await fixture("github_push")), ref: "refs/heads/--upload-pack=touch" };
  const refused = await q.hook("github", "push", evil);
  equal(refused.status, 400);
  match((await refused.json()).error, /^the delivery would make an invalid job: ref/);
  equal((await q.core.store.listJobs({ limit: 10 })).records.length, 1);
});
