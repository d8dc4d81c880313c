/**
 * The status reporter on its own, with a fake forge: the newest state wins over one not sent,
 * forge errors are retried and 4xx ones are not, the token never shows, and a reporter made on
 * a database a previous run left mid-report carries on.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { JobResult, RecordedEvent } from "../protocol/mod.ts";
import { ProjectSchema } from "../protocol/mod.ts";
import { StatusReporter } from "../queen/forge_status/reporter.ts";
import type { ReporterQueen } from "../queen/forge_status/reporter.ts";
import { MemoryProjectStore } from "../queen/projects/memory_store.ts";
import { migrate } from "../queen/sqlite_schema.ts";
import type { JobRecord } from "../queen/store.ts";

const SHA = "b".repeat(40);
const TOKEN = "tok-secret-123456";

/** A queen of fake jobs, a forge that answers from a script, and a reporter over them. */
function setup(answers: (number | "hang")[], db = freshDb(), extra: Partial<ReporterQueen> = {}) {
  const jobs = new Map<string, { status: string; result: JobResult | null }>();
  let listener: (event: RecordedEvent) => void = () => {};
  const projects = new MemoryProjectStore();
  projects.create(
    ProjectSchema.parse({
      name: "octo/hello",
      repo: { url: "/srv/hello" },
      secrets: { FORGE_TOKEN: TOKEN },
      status: { api: "https://forge.test/api" },
    }),
    0,
  );
  projects.create(ProjectSchema.parse({ name: "quiet/one", repo: { url: "/srv/q" } }), 0);
  const calls: { url: string; state: string; auth: string }[] = [];
  const hung: (() => void)[] = [];
  const fakeFetch = (async (url: string, init: RequestInit) => {
    const body = JSON.parse(String(init.body));
    calls.push({
      url,
      state: body.state,
      auth: (init.headers as Record<string, string>).authorization,
    });
    const answer = answers.shift() ?? 201;
    if (answer === "hang") {
      await new Promise<void>((resolve) => hung.push(resolve));
      return new Response("{}", { status: 201 });
    }
    return new Response(JSON.stringify({ message: `echo ${TOKEN}` }), { status: answer });
  }) as typeof fetch;
  const reporter = new StatusReporter({
    db,
    projects,
    queen: {
      getJob: (id) => {
        const job = jobs.get(id);
        return job && ({ id, view: { id, ...job } } as unknown as JobRecord);
      },
      followAll: (fn) => {
        listener = fn;
        return () => {};
      },
      ...extra,
    },
    publicUrl: () => "https://ci.test/",
    retry: { minMs: 1, maxMs: 1, tries: 3 },
    fetch: fakeFetch,
  });
  const finish = (id: string, result: JobResult) => {
    jobs.set(id, { status: "done", result });
    listener({
      n: 9,
      at: 0,
      data: { event: "job:done", id, attempt: 1, seq: 0, timestamp: 0, result },
    });
  };
  return { db, jobs, reporter, calls, hung, finish };
}

function freshDb(): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  migrate(db);
  return db;
}

const settle = async (check: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 500 && !await check(); i++) await new Promise((r) => setTimeout(r, 2));
  ok(await check(), "did not settle");
};

Deno.test("pending, then the result; a project without a token reports nothing", async () => {
  const { jobs, reporter, calls, finish } = setup([]);
  jobs.set("j1", { status: "queued", result: null });
  await reporter.track("j1", { forge: "github", project: "octo/hello", sha: SHA });
  await reporter.track("j2", { forge: "github", project: "quiet/one", sha: SHA });
  await settle(() => calls.length === 1);
  finish("j1", "failed");
  await settle(async () => (await reporter.view("j1"))?.state === "failure");
  deepEqual(calls.map((c) => c.state), ["pending", "failure"]);
  equal(calls[0].url, `https://forge.test/api/repos/octo/hello/statuses/${SHA}`);
  equal(calls[0].auth, `Bearer ${TOKEN}`);
  equal(await reporter.view("j2"), null);
  await reporter.close();
});

Deno.test("a state not sent yet is replaced by the newer one; 5xx retried, 4xx not", async () => {
  const { jobs, reporter, calls, hung, finish } = setup(["hang", 502, 503]);
  jobs.set("j1", { status: "started", result: null });
  await reporter.track("j1", { forge: "gitea", project: "octo/hello", sha: SHA });
  await settle(() => hung.length === 1);
  finish("j1", "passed");
  hung[0]();
  // pending (hung, then accepted), success fails twice, then goes through: no second pending.
  await settle(async () => (await reporter.view("j1"))?.state === "success");
  deepEqual(calls.map((c) => c.state), ["pending", "success", "success", "success"]);
  equal((await reporter.view("j1"))?.error, null);
  await reporter.close();

  const second = setup([401]);
  second.jobs.set("j9", { status: "started", result: null });
  await second.reporter.track("j9", { forge: "github", project: "octo/hello", sha: SHA });
  await settle(async () => (await second.reporter.view("j9"))?.error !== null);
  const view = (await second.reporter.view("j9"))!;
  match(view.error!, /github answered 401 to pending/);
  ok(!view.error!.includes(TOKEN), "the token shows in the error");
  equal(second.calls.length, 1, "a 401 was retried");
  await second.reporter.close();
});

Deno.test("a reporter on a database left mid-report carries on", async () => {
  const first = setup(["hang"]);
  first.jobs.set("j1", { status: "started", result: null });
  await first.reporter.track("j1", { forge: "gitlab", project: "octo/hello", sha: SHA });
  await settle(() => first.hung.length === 1);
  // The queen goes away with pending in flight; the job ends while it is down.
  const closing = first.reporter.close();
  first.hung[0]();
  await closing;
  const again = setup([], first.db);
  // Only for its call log: one reporter per database, the one made below.
  await again.reporter.close();
  again.jobs.set("j1", { status: "done", result: "passed" });
  const restarted = new StatusReporter({
    db: first.db,
    projects: (() => {
      const p = new MemoryProjectStore();
      p.create(
        ProjectSchema.parse({
          name: "octo/hello",
          repo: { url: "/srv/hello" },
          secrets: { FORGE_TOKEN: TOKEN },
          status: { api: "https://forge.test/api" },
        }),
        0,
      );
      return p;
    })(),
    queen: {
      getJob: (id) =>
        id === "j1"
          ? ({ id, view: { id, status: "done", result: "passed" } } as unknown as JobRecord)
          : undefined,
      followAll: () => () => {},
    },
    publicUrl: () => "https://ci.test",
    retry: { minMs: 1, maxMs: 1, tries: 1 },
    fetch: ((url: string, init: RequestInit) => {
      again.calls.push({ url, state: JSON.parse(String(init.body)).state, auth: "" });
      return Promise.resolve(new Response("{}", { status: 201 }));
    }) as typeof fetch,
  });
  await settle(async () => (await restarted.view("j1"))?.state === "success");
  deepEqual(again.calls.map((c) => c.state), ["success"]);
  equal(again.calls[0].url, `https://forge.test/api/projects/octo%2Fhello/statuses/${SHA}`);
  await restarted.close();
  await again.reporter.close();
});

Deno.test("jobs a strider.json matrix adds report like their planning job, even when the queen missed their start", async () => {
  let added: (job: string, build: string) => void = () => {};
  const { jobs, reporter, calls, finish } = setup([], freshDb(), {
    buildOfJob: () => Promise.resolve("plan"),
    getBuild: (id) =>
      Promise.resolve(id === "plan" ? { status: "running", result: null } : undefined),
    onJobAdded: (listener) => {
      added = listener;
      return () => {};
    },
  });
  jobs.set("plan", { status: "started", result: null });
  await reporter.track("plan", { forge: "github", project: "octo/hello", sha: SHA });
  await settle(() => calls.length === 1);
  // Announced when queued: pending at once, its result when it ends.
  jobs.set("m1", { status: "queued", result: null });
  added("m1", "plan");
  await settle(async () => (await reporter.view("m1"))?.state === "pending");
  finish("m1", "passed");
  await settle(async () => (await reporter.view("m1"))?.state === "success");
  // Not announced (the queen restarted between the plan's end and the job's row): its end
  // still reports, on the planning job's commit.
  finish("m2", "failed");
  await settle(async () => (await reporter.view("m2"))?.state === "failure");
  equal((await reporter.view("m2"))?.commit, SHA);
  deepEqual(calls.filter((c) => c.url.endsWith(SHA)).map((c) => c.state), [
    "pending",
    "pending",
    "success",
    "pending",
    "failure",
  ]);
  await reporter.close();
});
