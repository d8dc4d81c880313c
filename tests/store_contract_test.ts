/**
 * The `Store` contract (queen/store.ts), run against every store: each case below runs once per
 * entry of `STORES`. A new store (a server database shared by several queens) adds an entry and
 * must pass the same cases.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import type { JobSpecInput, RecordedEvent } from "../protocol/mod.ts";
import { JobSpecSchema } from "../protocol/mod.ts";
import { Hub } from "../queen/hub.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { newRecord, Recorder } from "../queen/recorder.ts";
import { SqliteStore } from "../queen/sqlite_store.ts";
import type { JobRecord, Store } from "../queen/store.ts";
import { PostgresStore } from "../queen/postgres/store.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { postgresCluster } from "./helpers/postgres.ts";
import { LOG_BLOCK_BYTES } from "../queen/log_blocks.ts";
import { buildLog } from "./helpers/build_log.ts";
import { SqliteBuildStore } from "../queen/builds/sqlite_store.ts";
import type { BuildRecord, BuildStore } from "../queen/builds/store.ts";
import { PostgresBuildStore } from "../queen/postgres/builds.ts";
import { PostgresStatusRows, SqliteStatusRows } from "../queen/forge_status/rows.ts";
import type { StatusRows } from "../queen/forge_status/rows.ts";

/** A store under test; `reopen` (when the store outlives its process) closes and opens it. */
interface Subject {
  store: Store;
  reopen?: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

const STORES: { name: string; open: () => Promise<Subject> }[] = [
  {
    name: "memory",
    open: () => Promise.resolve({ store: new MemoryStore(), cleanup: () => Promise.resolve() }),
  },
  {
    name: "sqlite",
    open: async () => {
      const dir = await Deno.makeTempDir({ prefix: "strider-contract-" });
      const subject: Subject = {
        store: new SqliteStore(dir),
        reopen: async () => {
          await subject.store.close();
          return subject.store = new SqliteStore(dir);
        },
        cleanup: async () => {
          await subject.store.close();
          await Deno.remove(dir, { recursive: true });
        },
      };
      return subject;
    },
  },
  {
    name: "postgres",
    open: async () => {
      const url = await (await postgresCluster()).newDatabase();
      const box = new SecretBox(crypto.getRandomValues(new Uint8Array(32)), []);
      const subject: Subject = {
        store: await PostgresStore.open({ url, max: 4 }, box),
        reopen: async () => {
          await subject.store.close();
          return subject.store = await PostgresStore.open({ url, max: 4 }, box);
        },
        cleanup: () => subject.store.close(),
      };
      return subject;
    },
  },
];

const T = Date.parse("2026-11-30T12:00:00Z");

function job(id: string, extra: Partial<JobSpecInput> = {}, at = T): JobRecord {
  const spec = JobSpecSchema.parse({
    job_id: id,
    repo: { url: "https://git.example/app.git" },
    ref: { branch: "main" },
    secrets: { DEPLOY_TOKEN: "s3cret" },
    trigger: {
      type: "manual",
      timestamp: new Date(at).toISOString(),
      source: { type: "API", app: "api" },
    },
    ...extra,
  });
  return newRecord(id, spec, at);
}

/** Resolves once everything written so far is durable. */
const committed = (store: Store) => new Promise<void>((resolve) => store.afterCommit(resolve));

/**
 * Resolves once the store has done the work it does after a job ends (compressing its log), for
 * stores that do some: `logsPacked()` when the store has it.
 */
async function settled(store: Store): Promise<void> {
  const packing = store as Store & { logsPacked?: () => Promise<void> };
  await packing.logsPacked?.();
}

/** Runs a job through dispatch, start, output and (with `result`) its end, as the queen does. */
function run(recorder: Recorder, record: JobRecord, output: string[], result?: "passed") {
  const id = record.id;
  recorder.record(record, { event: "job:dispatched", id, attempt: 1, drone: "w", timestamp: T }, T);
  let seq = 0;
  recorder.record(record, { event: "job:started", id, attempt: 1, seq: ++seq, timestamp: T }, T);
  for (const text of output) {
    recorder.record(record, { event: "job:stdout", id, attempt: 1, seq: ++seq, text }, T);
  }
  if (result) {
    recorder.record(record, {
      event: "job:done",
      id,
      attempt: 1,
      seq: ++seq,
      timestamp: T + 1000,
      result,
    }, T + 1000);
  }
}

for (const { name, open } of STORES) {
  const contract = (title: string, body: (subject: Subject) => Promise<void>) =>
    Deno.test(`store contract (${name}): ${title}`, async () => {
      const subject = await open();
      try {
        await body(subject);
      } finally {
        await subject.cleanup();
      }
    });

  contract("a job is kept with its secrets; an id is taken once", async ({ store }) => {
    await store.createJob(job("a"));
    const got = await store.getJob("a");
    deepEqual(got?.spec.secrets, { DEPLOY_TOKEN: "s3cret" }, "the spec is needed to dispatch");
    equal(got?.view.status, "queued");
    equal(got?.view.spec.secrets?.DEPLOY_TOKEN, "***", "the view shows no secret");
    await rejects(store.createJob(job("a")), RangeError);
    equal(await store.getJob("missing"), undefined);
  });

  contract("events, log and positions come back as recorded", async (subject) => {
    const { store } = subject;
    const record = job("b");
    await store.createJob(record);
    const recorder = new Recorder(store, new Hub());
    run(recorder, record, ["héllo\n", "wörld"]);
    // Read before the commit: what is queued is seen.
    const before = await store.events("b");
    deepEqual(before.map((e) => e.n), [1, 2, 3, 4]);
    equal(new TextDecoder().decode(await store.readLog("b", 0, record.logBytes)), "héllo\nwörld");
    await committed(store);
    const again = subject.reopen ? await subject.reopen() : store;
    const events = await again.events("b", 2);
    deepEqual(events.map((e) => (e.data as { text?: string }).text), ["héllo\n", "wörld"]);
    // Byte ranges cut through a chunk and through a two-byte character alike.
    equal(new TextDecoder().decode(await again.readLog("b", 7, 10)), "wö");
    const got = (await again.getJob("b"))!;
    equal(got.lastN, 4);
    equal(got.logBytes, new TextEncoder().encode("héllo\nwörld").length);
    equal(got.logEndsWithNewline, false);
    equal(got.lastSeq[1], 3, "the last seq of attempt 1");
  });

  contract(
    "output with NUL bytes and four-byte characters comes back byte for byte",
    async (subject) => {
      const { store } = subject;
      const record = job("z");
      await store.createJob(record);
      const text = "a\u0000b 🐝 \u0000\n";
      run(new Recorder(store, new Hub()), record, [text, text]);
      await committed(store);
      const again = subject.reopen ? await subject.reopen() : store;
      const output = (await again.events("z", 2)).map((e) => (e.data as { text?: string }).text);
      deepEqual(output, [text, text]);
      const bytes = new TextEncoder().encode(text + text);
      deepEqual(await again.readLog("z", 0, bytes.length), bytes);
      equal((await again.getJob("z"))!.logBytes, bytes.length);
    },
  );

  contract(
    "events read a page at a time come back whole, in order, committed or not",
    async ({ store }) => {
      // How live streams and other queens read a long log: `limit` events after the last one.
      const record = job("p");
      await store.createJob(record);
      const recorder = new Recorder(store, new Hub());
      run(recorder, record, Array.from({ length: 20 }, (_, i) => `line-${i}\n`));
      await committed(store);
      run(recorder, record, ["queued-1\n", "queued-2\n"]);
      const pages: number[][] = [];
      for (let after = 0;;) {
        const page = await store.events("p", after, 7);
        if (!page.length) break;
        pages.push(page.map((e) => e.n));
        after = page[page.length - 1].n;
      }
      deepEqual(pages.flat(), Array.from({ length: record.lastN }, (_, i) => i + 1));
      ok(pages.every((page) => page.length <= 7) || pages.length === 1, "pages, or all at once");
    },
  );

  contract("a saved view comes back; its lag behind the events is told", async (subject) => {
    const { store } = subject;
    const record = job("c");
    await store.createJob(record);
    const recorder = new Recorder(store, new Hub());
    run(recorder, record, ["line\n"]);
    await committed(store);
    const again = subject.reopen ? await subject.reopen() : store;
    const [loaded] = await again.unfinishedJobs();
    equal(loaded.id, "c");
    // The view may lag (saved less often than events), never lead: the rest folds in.
    ok(loaded.viewN <= loaded.lastN);
    const fresh = new Recorder(again, new Hub());
    fresh.catchUp(loaded, await again.events("c", loaded.viewN));
    equal(loaded.view.status, "started");
    equal(loaded.view.output, "line\n");
  });

  contract("jobs are listed newest first, filtered and paged", async ({ store }) => {
    const recorder = new Recorder(store, new Hub());
    for (const [i, branch] of ["main", "dev", "main"].entries()) {
      const record = job(`l${i}`, { ref: { branch } }, T + i);
      await store.createJob(record);
      if (i < 2) run(recorder, record, [], "passed");
    }
    await committed(store);
    const all = await store.listJobs({ limit: 10 });
    deepEqual(all.records.map((r) => r.id), ["l2", "l1", "l0"], "newest first");
    deepEqual((await store.listJobs({ limit: 10, branch: "main" })).records.map((r) => r.id), [
      "l2",
      "l0",
    ]);
    deepEqual((await store.listJobs({ limit: 10, status: "done" })).records.map((r) => r.id), [
      "l1",
      "l0",
    ]);
    const first = await store.listJobs({ limit: 2 });
    ok(first.next);
    const second = await store.listJobs({ limit: 2, cursor: first.next! });
    deepEqual(second.records.map((r) => r.id), ["l0"]);
    equal(second.next, null);
    deepEqual((await store.unfinishedJobs()).map((r) => r.id), ["l2"]);
    const done = (await store.getJob("l0"))!;
    equal(done.view.result, "passed");
  });

  contract("delete and prune remove finished jobs only, with their events", async ({ store }) => {
    const recorder = new Recorder(store, new Hub());
    for (let i = 0; i < 4; i++) {
      const record = job(`p${i}`, {}, T + i);
      await store.createJob(record);
      if (i < 3) run(recorder, record, ["out\n"], "passed");
    }
    await committed(store);
    equal(await store.deleteJob("p3"), false, "an unfinished job stays");
    equal(await store.deleteJob("p0"), true);
    equal(await store.getJob("p0"), undefined);
    deepEqual(await store.events("p0"), []);
    equal(await store.prune({ keepJobs: 1 }, T + 10), 1, "p1 goes, p2 stays");
    deepEqual((await store.listJobs({ limit: 10 })).records.map((r) => r.id), ["p3", "p2"]);
  });

  contract("afterCommit callbacks run in order, once", async ({ store }) => {
    const record = job("o");
    await store.createJob(record);
    const recorder = new Recorder(store, new Hub());
    const ran: number[] = [];
    const seen: RecordedEvent[] = [];
    for (let i = 1; i <= 3; i++) {
      recorder.record(
        record,
        { event: "job:stdout", id: "o", attempt: 1, seq: i, text: `${i}\n` },
        T,
        () => ran.push(i),
      );
    }
    await committed(store);
    seen.push(...await store.events("o"));
    deepEqual(ran, [1, 2, 3]);
    equal(seen.length, 3);
  });

  contract("events come a page at a time, committed and queued alike", async ({ store }) => {
    const record = job("pages");
    await store.createJob(record);
    const recorder = new Recorder(store, new Hub());
    const say = (seq: number) =>
      recorder.record(
        record,
        { event: "job:stdout", id: "pages", attempt: 1, seq, text: `line ${seq}\n` },
        T,
      );
    for (let seq = 1; seq <= 7; seq++) say(seq);
    await committed(store);
    // Three more still queued: a page may end in them, or hold both kinds.
    for (let seq = 8; seq <= 10; seq++) say(seq);
    const all = await store.events("pages");
    equal(all.length, 10);
    for (const size of [1, 3, 4, 7, 10, 11]) {
      const paged: RecordedEvent[] = [];
      let after = 0;
      while (true) {
        const page = await store.events("pages", after, size);
        ok(page.length <= size, `a page of ${size} held ${page.length}`);
        paged.push(...page);
        if (page.length < size) break;
        after = page[page.length - 1].n;
      }
      deepEqual(paged, all, `pages of ${size}`);
    }
    deepEqual(await store.events("pages", 9, 5), all.slice(9));
    await committed(store);
  });

  contract(
    "a finished log reads back whole and by any range, its events keep their text",
    async (subject) => {
      const { store } = subject;
      const record = job("big");
      await store.createJob(record);
      const recorder = new Recorder(store, new Hub());
      // Three and a half blocks of build output, in chunks of uneven size that cut lines and
      // two-byte characters across block boundaries.
      const text = buildLog(3.5 * LOG_BLOCK_BYTES, 7);
      const pieces: string[] = [];
      for (let at = 0, i = 0; at < text.length; i++) {
        const size = [65_536, 1, 40_000, 333_333][i % 4];
        pieces.push(text.slice(at, at + size));
        at += size;
      }
      run(recorder, record, pieces, "passed");
      await committed(store);
      await settled(store);
      const again = subject.reopen ? await subject.reopen() : store;
      await settled(again);
      const raw = new TextEncoder().encode(text);
      const got = (await again.getJob("big"))!;
      equal(got.logBytes, raw.length);
      equal(got.logEndsWithNewline, true);
      deepEqual(await again.readLog("big", 0, raw.length), raw, "the whole log");
      const B = LOG_BLOCK_BYTES;
      for (
        const [start, end] of [
          [0, 1],
          [B - 1, B + 1],
          [B, 2 * B],
          [B - 10, 3 * B + 10],
          [3 * B, raw.length],
          [raw.length - 5, raw.length],
          [12_345, 12_345],
        ]
      ) {
        deepEqual(
          await again.readLog("big", start, end),
          raw.subarray(start, end),
          `${start}-${end}`,
        );
      }
      const events = await again.events("big");
      const output = events.flatMap((e) =>
        "text" in e.data && e.data.event === "job:stdout" ? [e.data.text] : []
      );
      deepEqual(output, pieces, "every output event's text, byte for byte");
      equal(await again.deleteJob("big"), true);
      deepEqual(await again.events("big"), []);
    },
  );
}

/** A job store with the build store and commit-status rows kept in the same database. */
interface BuildSubject {
  store: Store;
  builds: BuildStore;
  statuses: StatusRows;
  cleanup: () => Promise<void>;
}

const BUILD_STORES: { name: string; open: () => Promise<BuildSubject> }[] = [
  {
    name: "sqlite",
    open: async () => {
      const dir = await Deno.makeTempDir({ prefix: "strider-contract-" });
      const store = new SqliteStore(dir);
      return {
        store,
        builds: new SqliteBuildStore(store.database),
        statuses: new SqliteStatusRows(store.database),
        cleanup: async () => {
          await store.close();
          await Deno.remove(dir, { recursive: true });
        },
      };
    },
  },
  {
    name: "postgres",
    open: async () => {
      const url = await (await postgresCluster()).newDatabase();
      const box = new SecretBox(crypto.getRandomValues(new Uint8Array(32)), []);
      const store = await PostgresStore.open({ url, max: 4 }, box);
      return {
        store,
        builds: new PostgresBuildStore(store.sql),
        statuses: new PostgresStatusRows(store.sql),
        cleanup: () => store.close(),
      };
    },
  },
];

function buildOf(
  id: string,
  repo: string,
  jobs: string[],
  status: "running" | "done",
): BuildRecord {
  return {
    id,
    createdAt: T,
    finishedAt: status === "done" ? T + 1000 : null,
    status,
    result: status === "done" ? "passed" : null,
    repo,
    branch: "main",
    failFast: false,
    cancelled: false,
    rerunOf: null,
    axes: [],
    jobs: jobs.map((job) => ({
      id: job,
      name: job,
      allowFailure: false,
      result: status === "done" ? "passed" : null,
    })),
  };
}

for (const { name, open } of BUILD_STORES) {
  Deno.test(`store contract (${name}): retention removes builds whose jobs are all gone, with their summary status and timings`, async () => {
    const { store, builds, statuses, cleanup } = await open();
    try {
      const APP = "https://git.example/app.git";
      const OTHER = "https://git.example/other.git";
      const recorder = new Recorder(store, new Hub());
      // x (build X, of another repository), then a1 and a2 (build A): all finished.
      for (const [i, id] of ["x", "a1", "a2"].entries()) {
        const record = job(id, id === "x" ? { repo: { url: OTHER } } : {}, T + i);
        await store.createJob(record);
        run(recorder, record, [], "passed");
      }
      await committed(store);
      await builds.createBuild(buildOf("X", OTHER, ["x"], "done"));
      await builds.createBuild(buildOf("A", APP, ["a1", "a2"], "done"));
      // A running build whose job is not submitted yet is never removed.
      await builds.createBuild(buildOf("R", APP, ["r1"], "running"));
      await builds.recordTimings(APP, { "a.test": 3 }, T);
      await builds.recordTimings(OTHER, { "x.test": 5 }, T);
      for (const id of ["build:X", "build:A", "x"]) {
        await statuses.insert(id, "github", "octo/app", "a".repeat(40), T);
      }

      equal(await store.prune({ keepJobs: 1 }, T + 10), 2, "x and a1 go, a2 stays");
      equal(await statuses.get("x"), undefined, "a job's status row goes with the job");
      equal(await builds.prune(), 1, "X goes: its one job is gone");
      equal(await builds.getBuild("X"), undefined);
      equal(await builds.buildOfJob("x"), undefined, "its index goes with it");
      equal(await statuses.get("build:X"), undefined, "and its summary status");
      deepEqual(await builds.timings(OTHER, 10), {}, "no build of that repository is left");
      ok(await builds.getBuild("A"), "A keeps a job, so it stays");
      ok(await statuses.get("build:A"));
      deepEqual(await builds.timings(APP, 10), { "a.test": 3 });
      ok(await builds.getBuild("R"));

      equal(await store.prune({ keepJobs: 0 }, T + 10), 1);
      equal(await builds.prune(), 1, "A goes with its last job");
      equal(await builds.getBuild("A"), undefined);
      equal(await statuses.get("build:A"), undefined);
      ok(await builds.getBuild("R"), "a running build stays");
      deepEqual(await builds.timings(APP, 10), { "a.test": 3 }, "R is of that repository");
      equal(await builds.prune(), 0, "nothing more to remove");
      deepEqual(
        (await builds.listBuilds({ limit: 10 })).records.map((b) => b.id),
        ["R"],
      );
    } finally {
      await cleanup();
    }
  });
}
