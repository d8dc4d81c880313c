/**
 * The dashboard in-process: its pure parts (output tails, the trigger form) and its routes through
 * `app.request`, with a real core over a memory store and no socket.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { BEHIND_CLOSE_CODE, browserSocket } from "../queen/dashboard/browser_socket.ts";
import { tailOf, tailView } from "../queen/dashboard/output.ts";
import { OverviewFeed } from "../queen/dashboard/overview_feed.ts";
import { emptyRunForm, specFromRunForm } from "../queen/dashboard/run_form.ts";
import { newJobView } from "../queen/job_state.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { createApp } from "../queen/server.ts";
import { JobSpecSchema } from "../protocol/mod.ts";

const TOKEN = "dashboard-test-token";

Deno.test("tailOf keeps the last lines and starts at a whole line", () => {
  const text = "one\ntwo\nthree\nfour\n";
  deepEqual(tailOf(text, { lines: 2 }), { text: "three\nfour\n", start: 8 });
  deepEqual(tailOf(text, { lines: 10 }), { text, start: 0 });
  deepEqual(tailOf("a\nb", { lines: 1 }), { text: "b", start: 2 });
  deepEqual(tailOf(text, { end: 8, lines: 1 }), { text: "two\n", start: 4 });
  deepEqual(tailOf("", {}), { text: "", start: 0 });
  // A character cap cuts to the next whole line inside it.
  deepEqual(tailOf("aaaa\nbb\ncc\n", { maxChars: 6 }), { text: "cc\n", start: 8 });
});

Deno.test("tailView shortens every output and says how much it left out", () => {
  const spec = JobSpecSchema.parse({ repo: { url: "/r" }, ref: { branch: "main" } });
  const view = newJobView("j1", spec, 0);
  const output = Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join("");
  view.phases.test.commands.push({
    num: 3,
    command: "make test",
    plugin: null,
    exitCode: 0,
    startedAt: null,
    finishedAt: null,
    output,
  });
  view.output = "short\n";
  const { job, omitted } = tailView(view, 5);
  equal(job.phases.test.commands[0].output, "line 45\nline 46\nline 47\nline 48\nline 49\n");
  deepEqual(omitted, { "3": output.indexOf("line 45") });
  equal(job.output, "short\n");
  equal(view.phases.test.commands[0].output, output, "the view itself is untouched");
});

Deno.test("the trigger form becomes a job spec with a dashboard trigger", () => {
  const made = specFromRunForm({
    ...emptyRunForm(),
    repo: " https://git.example/owner/repo.git ",
    branch: "dev",
    job_type: "TEST&DEPLOY",
    test: "make test\r\nmake lint",
    deploy: "make deploy",
    env: "A=1\nB = two",
    author: "Ada",
    message: "Ship it",
  }, new Date("2026-01-02T03:04:05Z"));
  ok(made.spec, made.problems?.join("; "));
  equal(made.spec.repo.url, "https://git.example/owner/repo.git");
  deepEqual(made.spec.ref, { branch: "dev" });
  equal(made.spec.job_type, "TEST&DEPLOY");
  deepEqual(made.spec.plugins, ["env", "custom"]);
  deepEqual(made.spec.config?.custom, { test: "make test\r\nmake lint", deploy: "make deploy" });
  deepEqual(made.spec.config?.env, { A: "1", B: " two" });
  deepEqual(made.spec.trigger, {
    type: "manual",
    author: { name: "Ada" },
    message: "Ship it",
    timestamp: "2026-01-02T03:04:05.000Z",
    source: { type: "UI", page: "dashboard" },
  });
  const bare = specFromRunForm({ ...emptyRunForm(), repo: "/srv/repo" });
  equal(bare.spec?.plugins, undefined, "no commands: the repository's strider.json decides");
});

Deno.test("the trigger form lists every problem by its field", () => {
  const made = specFromRunForm({
    ...emptyRunForm(),
    repo: "",
    branch: "-x",
    commit: "not-hex",
    env: "1BAD=x",
    test: "true",
  });
  const problems = made.problems?.join("\n") ?? "";
  match(problems, /^repository: /m);
  match(problems, /^branch: /m);
  match(problems, /^commit: /m);
  match(problems, /^environment variables: '1BAD=x'/m);
});

function setup(options: { private?: boolean } = {}) {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  const app = createApp(core, { worker: ["w"], api: [TOKEN] }, options);
  return { core, app, [Symbol.dispose]: () => core.close() };
}

async function logIn(app: ReturnType<typeof setup>["app"]): Promise<string> {
  const response = await app.request("http://queen.test/login", {
    method: "POST",
    body: new URLSearchParams({ token: TOKEN, next: "/" }),
  });
  equal(response.status, 303);
  return (response.headers.get("set-cookie") ?? "").split(";")[0];
}

Deno.test("the pages render a queued job without JavaScript", async () => {
  using queen = setup();
  const record = await queen.core.submit(
    JobSpecSchema.parse({
      repo: { url: "https://git.example/a.git" },
      ref: { branch: "main" },
      trigger: {
        type: "manual",
        author: { name: "Grace <script>" },
        message: "First run",
        timestamp: "2026-01-01T00:00:00Z",
        source: { type: "API", app: "test" },
      },
    }),
  );
  const overview = await queen.app.request("/");
  equal(overview.status, 200);
  match(overview.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  const html = await overview.text();
  match(html, /^<!doctype html>/);
  match(html, /No drones are connected/);
  match(html, new RegExp(`<tr data-job="${record.id}">`));
  match(html, /Grace &lt;script&gt;/);
  ok(!html.includes("<script>"), "text is escaped");

  const job = await (await queen.app.request(`/jobs/${record.id}`)).text();
  match(job, /data-status="queued"/);
  match(job, /https:\/\/git\.example\/a\.git/);
  match(job, /Waiting: /);
  match(job, /Log in<\/a> with the API token to cancel or re-run this job/);

  const missing = await queen.app.request("/jobs/no-such-job");
  equal(missing.status, 404);
  match(await missing.text(), /There is no job/);
});

Deno.test("assets come from the module graph with tags for revalidation", async () => {
  using queen = setup();
  const app = await queen.app.request("/assets/app.js");
  equal(app.status, 200);
  match(app.headers.get("content-type") ?? "", /javascript/);
  match(await app.text(), /job:query-info/);
  const etag = app.headers.get("etag")!;
  const again = await queen.app.request("/assets/app.js", { headers: { "if-none-match": etag } });
  equal(again.status, 304);
  // One file: ansi_up and the rest are bundled in, nothing else is fetched.
  equal((await queen.app.request("/assets/ansi_up.js")).status, 404);
  equal((await queen.app.request("/assets/nope.js")).status, 404);
});

Deno.test("a session acts through the API and forms only with its CSRF token", async () => {
  using queen = setup();
  const spec = JobSpecSchema.parse({ repo: { url: "/r" }, ref: { branch: "main" } });
  const first = await queen.core.submit(spec);
  const cookie = await logIn(queen.app);
  const page = await (await queen.app.request("/", { headers: { cookie } })).text();
  const csrf = page.match(/<meta name="csrf-token" content="([^"]+)"/)?.[1] ?? "";
  ok(csrf);

  const cancel = (headers: Record<string, string>) =>
    queen.app.request(`http://queen.test/api/jobs/${first.id}/cancel`, {
      method: "POST",
      headers,
    });
  equal((await cancel({ cookie })).status, 401);
  equal((await cancel({ cookie, "x-csrf-token": csrf, origin: "http://evil.test" })).status, 401);
  equal((await cancel({ cookie, "x-csrf-token": csrf, origin: "http://queen.test" })).status, 202);
  equal((await queen.core.job(first.id))?.view.result, "cancelled");

  const rerun = (body: Record<string, string>) =>
    queen.app.request(`http://queen.test/jobs/${first.id}/rerun`, {
      method: "POST",
      headers: { cookie },
      body: new URLSearchParams(body),
    });
  equal((await rerun({})).status, 403);
  const made = await rerun({ _csrf: csrf });
  equal(made.status, 303);
  const id = made.headers.get("location")?.split("/").pop() ?? "";
  equal((await queen.core.job(id))?.view.retryOf, first.id);

  // A finished job keeps no secrets: without a project holding them, its re-run is refused.
  const secret = await queen.core.submit({ ...spec, secrets: { DEPLOY_TOKEN: "s3cret-value" } });
  queen.core.cancel(secret.id);
  const refused = await queen.app.request(`http://queen.test/jobs/${secret.id}/rerun`, {
    method: "POST",
    headers: { cookie },
    body: new URLSearchParams({ _csrf: csrf }),
  });
  equal(refused.status, 409);
  match(await refused.text(), /submit the job again with its secrets/);

  const logout = await queen.app.request("http://queen.test/logout", {
    method: "POST",
    headers: { cookie },
    body: new URLSearchParams({ _csrf: csrf }),
  });
  equal(logout.status, 303);
  match(logout.headers.get("set-cookie") ?? "", /strider_session=;/);
});

Deno.test("login refuses a wrong token and never redirects off the site", async () => {
  using queen = setup();
  const wrong = await queen.app.request("http://queen.test/login", {
    method: "POST",
    body: new URLSearchParams({ token: "nope", next: "/" }),
  });
  equal(wrong.status, 401);
  equal(wrong.headers.get("set-cookie"), null);
  for (const next of ["//evil.test/", "https://evil.test/", "/\\evil.test"]) {
    const response = await queen.app.request("http://queen.test/login", {
      method: "POST",
      body: new URLSearchParams({ token: TOKEN, next }),
    });
    equal(response.headers.get("location"), "/", next);
  }
});

Deno.test("a browser that falls too far behind is cut off with 4008", async () => {
  using queen = setup();
  const feed = new OverviewFeed(queen.core);
  const controller = new AbortController();
  // A limit of one byte: the first frame already leaves the browser "behind".
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: controller.signal, onListen() {} },
    (request) => browserSocket(request, queen.core, { feed, maxBuffered: 1 }),
  );
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  ws.onopen = () => ws.send(JSON.stringify({ event: "overview:follow" }));
  const event = await closed;
  equal(event.code, BEHIND_CLOSE_CODE);
  match(event.reason, /behind/);
  controller.abort();
  await server.finished;
});

Deno.test("earlier output has a page of its own for readers without JavaScript", async () => {
  using queen = setup();
  const record = await queen.core.submit(
    JobSpecSchema.parse({ repo: { url: "/r" }, ref: { branch: "main" } }),
  );
  const output = Array.from({ length: 5000 }, (_, i) => `row ${i}\n`).join("");
  record.view.phases.test.commands.push({
    num: 2,
    command: "make noise",
    plugin: null,
    exitCode: 0,
    startedAt: null,
    finishedAt: null,
    output,
  });
  const job = await (await queen.app.request(`/jobs/${record.id}`)).text();
  ok(!job.includes("row 2999\n"), "only the tail is rendered");
  match(job, /row 4999\n/);
  const href = job.match(/<a class="earlier" href="([^"]+)"/)?.[1].replaceAll("&amp;", "&");
  ok(href, "the page links to earlier output");
  const earlier = await (await queen.app.request(href)).text();
  match(earlier, /row 1000\nrow 1001\n/);
  match(earlier, /row 2999\n<\/code>/);
  ok(!earlier.includes("row 3000"), "the earlier part ends where the tail starts");
  match(earlier, /Earlier output/);
  const json = await (await queen.app.request(href.replace("/output?", "/output.json?"))).json();
  equal(json.start, output.indexOf("row 1000\n"));
  equal(json.text, output.slice(json.start, output.indexOf("row 3000\n")));
});
