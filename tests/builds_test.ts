/**
 * Builds without processes: how a spec fans out (matrix, exclude/include, allow_failure, label
 * templates, limits), how `strider shard` splits a suite, JUnit timings, the build stores (memory
 * and SQLite, one contract), and commit statuses per job of a build plus its summary.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { JobResult, QueenFrame, RecordedEvent } from "../protocol/mod.ts";
import { JobSpecSchema, ProjectSchema, PROTOCOL_VERSION, shardShare } from "../protocol/mod.ts";
import { buildsOf } from "../queen/builds/registry.ts";
import { acceptJob } from "../queen/intake.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { planBuild } from "../queen/builds/expand.ts";
import { SqliteBuildStore } from "../queen/builds/sqlite_store.ts";
import { MemoryBuildStore } from "../queen/builds/store.ts";
import type { BuildRecord, BuildStore } from "../queen/builds/store.ts";
import { junitTimings } from "../queen/builds/timings.ts";
import { InvalidInputError } from "../queen/errors.ts";
import { BUILD_KEY, StatusReporter } from "../queen/forge_status/reporter.ts";
import { MemoryProjectStore } from "../queen/projects/memory_store.ts";
import { migrate } from "../queen/sqlite_schema.ts";
import type { JobRecord } from "../queen/store.ts";

const spec = (extra: Record<string, unknown>) =>
  JobSpecSchema.parse({ repo: { url: "/srv/r" }, ref: { branch: "main" }, ...extra });

Deno.test("a matrix makes one job per combination, less exclude, plus include", () => {
  const plan = planBuild(
    spec({
      matrix: {
        node: ["18", "20", "22"],
        os: ["linux", "mac"],
        exclude: [{ node: "18", os: "mac" }],
        include: [{ node: "23", os: "bsd" }],
        allow_failure: [{ node: "22" }],
      },
      labels: ["node-${node}", "os-${os}", "fast"],
    }),
    "b1",
  );
  deepEqual(plan.jobs.map((j) => j.build.name), [
    "node-18-os-linux",
    "node-20-os-linux",
    "node-20-os-mac",
    "node-22-os-linux",
    "node-22-os-mac",
    "node-23-os-bsd",
  ]);
  deepEqual(plan.jobs[2].spec.labels, ["node-20", "os-mac", "fast"]);
  equal(plan.jobs[2].id, "b1.node-20-os-mac");
  deepEqual(plan.jobs.map((j) => !!j.build.allow_failure), [
    false,
    false,
    false,
    true,
    true,
    false,
  ]);
  deepEqual(plan.axes, [
    { name: "node", values: ["18", "20", "22", "23"] },
    { name: "os", values: ["linux", "mac", "bsd"] },
  ]);
  for (const job of plan.jobs) {
    equal(job.spec.matrix, undefined);
    equal(job.spec.build?.id, "b1");
  }
});

Deno.test("parallelism makes shards of each combination; a plain job stays one job", () => {
  const plan = planBuild(spec({ matrix: { node: ["18", "20"] }, parallelism: 3 }), "b2");
  equal(plan.jobs.length, 6);
  deepEqual(plan.jobs[4].build.shard, { index: 1, total: 3 });
  equal(plan.jobs[4].build.name, "node-20-shard-1");
  const single = planBuild(spec({ labels: ["linux"] }), "j1");
  equal(single.jobs.length, 1);
  equal(single.jobs[0].spec.build, undefined, "a build of one carries no build field");
  deepEqual(single.jobs[0].spec.labels, ["linux"]);
});

Deno.test("bad matrices are refused with messages that say what to fix", () => {
  const values = Array.from({ length: 10 }, (_, i) => `v${i}`);
  throws(
    () => planBuild(spec({ matrix: { a: values, b: values } }), "b"),
    (e: Error) =>
      e instanceof InvalidInputError && /100 combinations, over the limit of 64/.test(e.message),
  );
  throws(
    () => planBuild(spec({ matrix: { a: ["1", "2", "3", "4", "5"] }, parallelism: 64 }), "b"),
    /5 × 64 jobs, over the limit of 256/,
  );
  throws(
    () => planBuild(spec({ matrix: { a: ["1"] }, labels: ["node-${node}"] }), "b"),
    /labels\[0\]: 'node-\$\{node\}' names \$\{node\}, which is not an axis/,
  );
  throws(() => planBuild(spec({ labels: ["node-${node}"] }), "b"), /not an axis/);
  throws(
    () => planBuild(spec({ matrix: { a: ["1"], exclude: [{ a: "1" }] } }), "b"),
    /every combination is excluded/,
  );
  // Axis names become variable names; the schema refuses the rest.
  ok(
    !JobSpecSchema.safeParse({
      repo: { url: "/srv/r" },
      ref: { branch: "main" },
      matrix: { "Bad-Axis": ["1"] },
    }).success,
  );
  ok(
    !JobSpecSchema.safeParse({
      repo: { url: "/srv/r" },
      ref: { branch: "main" },
      matrix: { a: ["has space"] },
    }).success,
  );
});

Deno.test("shards cover every file exactly once, by count or balanced by timings", () => {
  const files = Array.from({ length: 23 }, (_, i) => `t/test_${i}.bats`);
  for (const timings of [{}, Object.fromEntries(files.map((f, i) => [f, i * i]))]) {
    const shares = [0, 1, 2, 3].map((i) => shardShare(files, i, 4, timings));
    deepEqual(shares.flat().sort(), [...files].sort());
    ok(shares.every((s) => s.length > 0));
  }
  // By count: sizes differ by at most one.
  const sizes = [0, 1, 2, 3].map((i) => shardShare(files, i, 4).length);
  ok(Math.max(...sizes) - Math.min(...sizes) <= 1, String(sizes));
  // By time: one slow file gets a shard of its own.
  const timed = { "a": 100, "b": 1, "c": 1, "d": 1 };
  deepEqual(shardShare(["a", "b", "c", "d"], 0, 2, timed), ["a"]);
  deepEqual(shardShare(["a", "b", "c", "d"], 1, 2, timed), ["b", "c", "d"]);
  // Duplicates and blank lines are dropped; an index out of range is an error.
  deepEqual(shardShare(["x", "x", ""], 0, 1), ["x"]);
  throws(() => shardShare(files, 4, 4), RangeError);
});

Deno.test("JUnit reports give seconds per file (bats, pytest style)", () => {
  deepEqual(
    junitTimings(`<testsuites><testsuite name="a.bats" time="3"><testcase classname="a.bats"
      name="one" time="1.5"/><testcase classname="a.bats" name="two" time="0.5"/></testsuite>
      <testsuite name="b.bats"><testcase file="t/b &amp; c.py" time="2"/></testsuite></testsuites>`),
    { "a.bats": 2, "t/b & c.py": 2 },
  );
  deepEqual(junitTimings(`<testsuite name="x.bats" time="4.25"></testsuite>`), { "x.bats": 4.25 });
  deepEqual(junitTimings("not xml <testcase time='nan'"), {});
});

function build(id: string, extra: Partial<BuildRecord> = {}): BuildRecord {
  return {
    id,
    createdAt: 1,
    finishedAt: null,
    status: "running",
    result: null,
    repo: "/srv/r",
    branch: "main",
    failFast: false,
    cancelled: false,
    rerunOf: null,
    axes: [],
    jobs: [{ id: `${id}.a`, name: "a", allowFailure: false, result: null }],
    ...extra,
  };
}

for (
  const [name, make] of [
    ["memory", () => new MemoryBuildStore()],
    ["sqlite", () => {
      const db = new DatabaseSync(":memory:");
      migrate(db);
      return new SqliteBuildStore(db);
    }],
  ] as [string, () => BuildStore][]
) {
  Deno.test(`build store (${name}): create, save, list by page, running, timings`, async () => {
    const store = make();
    await store.createBuild(build("b1"));
    await store.createBuild(build("b2"));
    await store.createBuild(build("b3"));
    let refused = false;
    await store.createBuild(build("b2")).catch((e) => refused = e instanceof RangeError);
    ok(refused, "a taken id was accepted");
    await store.saveBuild({ ...build("b2"), status: "done", result: "passed" });
    equal((await store.getBuild("b2"))?.result, "passed");
    deepEqual((await store.runningBuilds()).map((b) => b.id), ["b1", "b3"]);
    const first = await store.listBuilds({ limit: 2 });
    deepEqual(first.records.map((b) => b.id), ["b3", "b2"]);
    const second = await store.listBuilds({ limit: 2, cursor: first.next! });
    deepEqual(second.records.map((b) => b.id), ["b1"]);
    equal(second.next, null);
    deepEqual((await store.listBuilds({ limit: 5, status: "done" })).records.map((b) => b.id), [
      "b2",
    ]);
    equal(await store.buildOfJob("b3.a"), "b3");
    // A build that gains jobs (strider.json's matrix) indexes them when saved.
    const grown = build("b1");
    grown.jobs.push({ id: "b1.more", name: "more", allowFailure: false, result: null });
    await store.saveBuild(grown);
    equal(await store.buildOfJob("b1.more"), "b1");
    await store.recordTimings("/srv/r", { "a.bats": 1, "b.bats": 2 }, 10);
    await store.recordTimings("/srv/r", { "a.bats": 5 }, 20);
    deepEqual(await store.timings("/srv/r", 10), { "a.bats": 5, "b.bats": 2 });
    deepEqual(await store.timings("/srv/r", 1), { "a.bats": 5 });
    deepEqual(await store.timings("/srv/other", 10), {});
  });
}

Deno.test("a build's jobs report under their own contexts, the build under the project's", async () => {
  const db = new DatabaseSync(":memory:");
  migrate(db);
  const projects = new MemoryProjectStore();
  projects.create(
    ProjectSchema.parse({
      name: "octo/hello",
      repo: { url: "/srv/hello" },
      secrets: { FORGE_TOKEN: "tok-0123456789" },
      status: { api: "https://forge.test/api" },
    }),
    0,
  );
  const jobs = new Map<string, { result: JobResult | null; name: string }>([
    ["b.node-18", { result: null, name: "node-18" }],
    ["b.node-20", { result: null, name: "node-20" }],
  ]);
  const calls: { context: string; state: string; target: string }[] = [];
  let listener: (event: RecordedEvent) => void = () => {};
  const buildResult = () => {
    const results = [...jobs.values()].map((j) => j.result);
    return results.includes(null)
      ? null
      : results.every((r) => r === "passed")
      ? "passed"
      : "failed";
  };
  const reporter = new StatusReporter({
    db,
    projects,
    queen: {
      getJob: (id) => {
        const job = jobs.get(id);
        return job && ({
          id,
          spec: { build: { id: "b", name: job.name } },
          view: { id, status: job.result ? "done" : "started", result: job.result },
        } as unknown as JobRecord);
      },
      followAll: (fn) => {
        listener = fn;
        return () => {};
      },
      buildOfJob: (id) => Promise.resolve(jobs.has(id) ? "b" : undefined),
      getBuild: (id) =>
        Promise.resolve(
          id === "b"
            ? { status: buildResult() ? "done" : "running", result: buildResult() }
            : undefined,
        ),
    },
    publicUrl: () => "https://ci.test",
    retry: { minMs: 1, maxMs: 1, tries: 3 },
    fetch: ((_url: string, init: RequestInit) => {
      const body = JSON.parse(String(init.body));
      calls.push({ context: body.context, state: body.state, target: body.target_url });
      return Promise.resolve(new Response("{}", { status: 201 }));
    }) as typeof fetch,
  });
  const where = { forge: "github" as const, project: "octo/hello", sha: "c".repeat(40) };
  for (const id of [...jobs.keys(), BUILD_KEY + "b"]) reporter.track(id, where);
  const finish = (id: string, result: JobResult) => {
    jobs.get(id)!.result = result;
    listener({
      n: 9,
      at: 0,
      data: { event: "job:done", id, attempt: 1, seq: 0, timestamp: 0, result },
    });
  };
  const settle = async (check: () => boolean) => {
    for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 2));
    ok(check(), `did not settle: ${JSON.stringify(calls)}`);
  };
  await settle(() => calls.length === 3);
  finish("b.node-18", "passed");
  await settle(() => calls.length === 4);
  finish("b.node-20", "failed");
  await settle(() => calls.length === 6);
  const last = (context: string) => calls.filter((c) => c.context === context).at(-1);
  equal(last("strider/node-18")?.state, "success");
  equal(last("strider/node-20")?.state, "failure");
  equal(last("strider")?.state, "failure");
  equal(last("strider")?.target, "https://ci.test/builds/b");
  equal(last("strider/node-20")?.target, "https://ci.test/jobs/b.node-20");
  await reporter.close();
});

/** Stands in for a worker's WebSocket: keeps what the queen sends. */
class FakeSocket {
  readyState: number = WebSocket.OPEN;
  sent: QueenFrame[] = [];
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = WebSocket.CLOSED;
  }
  dispatched(): string[] {
    return this.sent.flatMap((f) => f.event === "queue:new" ? [f.job.job_id] : []);
  }
}

Deno.test("serialize holds other builds of the branch back, not the jobs of the same build", async () => {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  const base = { repo: { url: "/tmp/repo" }, ref: { branch: "main" }, serialize: true };
  const sharded = await acceptJob(core, { ...base, parallelism: 3 }, "api");
  const single = await acceptJob(core, base, "api");
  const socket = new FakeSocket();
  const drone = core.connect(socket as unknown as WebSocket);
  const send = (frame: Record<string, unknown>) => core.receive(drone, JSON.stringify(frame));
  send({
    event: "drone:info",
    name: "w",
    version: "test",
    protocol: PROTOCOL_VERSION,
    speed: 1,
    capacity: 4,
    plugins: [],
    labels: [],
    running: [],
  });
  await new Promise((r) => setTimeout(r, 0));
  deepEqual(socket.dispatched(), sharded.jobs);
  const waiting = (await core.job(single.id))!.view.waiting ?? "";
  ok(waiting.startsWith(`waiting for job ${sharded.build}.shard-`), waiting);
  for (const id of sharded.jobs) {
    send({ event: "job:started", id, attempt: 1, seq: 1, timestamp: Date.now() });
    send({ event: "job:done", id, attempt: 1, seq: 2, timestamp: Date.now(), result: "passed" });
  }
  await new Promise((r) => setTimeout(r, 0));
  deepEqual(socket.dispatched(), [...sharded.jobs, single.id]);
  const build = await buildsOf(core).view(sharded.build);
  equal(build?.result, "passed");
  core.close();
});
