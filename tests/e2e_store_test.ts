/**
 * The queen remembers: its SQLite store survives `kill -9`, serves history with filters and
 * pagination, re-runs and deletes jobs, and accepts Strider's older job format.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  customJob,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

/** Starts a queen again on the same data folder and port, as after a crash. */
async function restart(queen: TestQueen, args: string[] = []): Promise<TestQueen> {
  const port = new URL(queen.url).port;
  return await startQueen({ data: queen.data, args: ["--port", port, ...args] });
}

Deno.test("queued jobs survive kill -9 of the queen and all pass after the restart", async () => {
  const repo = await makeRepo({ "a.txt": "a\n" });
  let queen = await startQueen();
  let worker;
  try {
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      ids.push(await submitJob(queen, customJob(repo.path, { test: `echo queued-${i}` })));
    }
    await queen.proc.stop("SIGKILL");
    queen = await restart(queen);
    const queued = await (await api(queen, "/api/jobs?status=queued&limit=100")).json();
    equal(queued.jobs.length, 60);
    worker = await startWorker(queen, { name: "after-crash", args: ["--capacity", "4"] });
    for (const [i, id] of ids.entries()) {
      const job = await waitForJob(queen, id, 120_000);
      equal(job.result, "passed");
      match(await jobLog(queen, id), new RegExp(`^queued-${i}$`, "m"));
    }
  } finally {
    await worker?.stop();
    await queen.proc.stop();
  }
});

Deno.test("a running job survives kill -9 of the queen with every line once, in order", async () => {
  const repo = await makeRepo({ "a.txt": "a\n" });
  let queen = await startQueen({ args: ["--lease", "20"] });
  const worker = await startWorker(queen, { name: "steady" });
  try {
    const id = await submitJob(
      queen,
      customJob(repo.path, { test: "for i in $(seq 1 150); do echo line-$i; sleep 0.02; done" }),
    );
    await waitUntil(async () => (await jobLog(queen, id)).includes("line-40"), 30_000, "line-40");
    await queen.proc.stop("SIGKILL");
    queen = await restart(queen, ["--lease", "20"]);
    const job = await waitForJob(queen, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the worker re-attached; no second run");
    const lines = (await jobLog(queen, id)).split("\n").filter((l) => l.startsWith("line-"));
    deepEqual(lines, Array.from({ length: 150 }, (_, i) => `line-${i + 1}`));
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

Deno.test("history: filters, pagination, log ranges, re-run, delete, retention", async (t) => {
  const repo = await makeRepo({ "a.txt": "a\n" });
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "history", args: ["--capacity", "4"] });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const test = i % 2 ? "echo odd; exit 1" : `echo even-${i}`;
      ids.push(await submitJob(queen, customJob(repo.path, { test })));
    }
    for (const id of ids) await waitForJob(queen, id);

    await t.step(
      "pages hold exactly `limit` jobs and the cursor continues without overlap",
      async () => {
        const seen: string[] = [];
        let cursor: string | null = "";
        let pages = 0;
        while (cursor !== null) {
          const query: string = `/api/jobs?limit=3${cursor ? `&cursor=${cursor}` : ""}`;
          const page: { jobs: { id: string }[]; next: string | null } =
            await (await api(queen, query)).json();
          ok(page.jobs.length === 3 || page.next === null);
          seen.push(...page.jobs.map((j: { id: string }) => j.id));
          cursor = page.next;
          pages++;
        }
        equal(pages, 3);
        deepEqual(seen, ids.toReversed());
        const bad = await api(queen, "/api/jobs?cursor=nonsense!");
        equal(bad.status, 400);
      },
    );

    await t.step("jobs filter by result, repository and time", async () => {
      const failed = await (await api(queen, "/api/jobs?result=failed")).json();
      equal(failed.jobs.length, 3);
      const mine = await (await api(queen, `/api/jobs?repo=${encodeURIComponent(repo.path)}`))
        .json();
      equal(mine.jobs.length, 7);
      const future = await (await api(queen, "/api/jobs?since=2999-01-01T00:00:00Z")).json();
      equal(future.jobs.length, 0);
      equal((await api(queen, "/api/jobs?status=sideways")).status, 400);
    });

    await t.step("a log range returns exactly those bytes", async () => {
      const whole = await jobLog(queen, ids[0]);
      const part = await api(queen, `/api/jobs/${ids[0]}/log`, { headers: { range: "bytes=2-9" } });
      equal(part.status, 206);
      equal(
        part.headers.get("content-range"),
        `bytes 2-9/${new TextEncoder().encode(whole).length}`,
      );
      equal(await part.text(), whole.slice(2, 10));
      const tail = await api(queen, `/api/jobs/${ids[0]}/log`, { headers: { range: "bytes=-7" } });
      equal(await tail.text(), whole.slice(-7));
      const beyond = await api(queen, `/api/jobs/${ids[0]}/log`, {
        headers: { range: "bytes=999999-" },
      });
      equal(beyond.status, 416);
      await beyond.body?.cancel();
    });

    await t.step("retry runs the same spec as a new job that links to the original", async () => {
      const response = await api(queen, `/api/jobs/${ids[0]}/retry`, { method: "POST" });
      equal(response.status, 201);
      const { id } = await response.json();
      const job = await waitForJob(queen, id);
      equal(job.result, "passed");
      equal(job.retryOf, ids[0]);
      match(await jobLog(queen, id), /even-0/);
    });

    await t.step("a finished job can be deleted; a queued one cannot", async () => {
      equal((await api(queen, `/api/jobs/${ids[1]}`, { method: "DELETE" })).status, 204);
      equal((await api(queen, `/api/jobs/${ids[1]}`)).status, 404);
      const waiting = await submitJob(
        queen,
        customJob(repo.path, { test: "true" }, { labels: ["none"] }),
      );
      equal((await api(queen, `/api/jobs/${waiting}`, { method: "DELETE" })).status, 409);
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

Deno.test("retention removes old finished jobs and never a queued one", async () => {
  const repo = await makeRepo({ "a.txt": "a\n" });
  let queen = await startQueen();
  const worker = await startWorker(queen, { name: "keeper" });
  const ids: string[] = [];
  let queued = "";
  try {
    for (let i = 0; i < 5; i++) {
      ids.push(await submitJob(queen, customJob(repo.path, { test: "true" })));
      await waitForJob(queen, ids[i]);
    }
    queued = await submitJob(queen, customJob(repo.path, { test: "true" }, { labels: ["absent"] }));
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
  queen = await restart(queen, ["--keep-jobs", "2"]);
  try {
    const left = (await (await api(queen, "/api/jobs")).json()).jobs.map((j: { id: string }) =>
      j.id
    );
    deepEqual(left, [queued, ids[4], ids[3]]);
    equal((await getJob(queen, queued)).status, "queued");
    // Each job was a build of one: the builds of the removed jobs go with them.
    const builds = async () =>
      (await (await api(queen, "/api/builds")).json()).builds.map((b: { id: string }) => b.id);
    await waitUntil(async () => (await builds()).length === 3, 30_000, "builds pruned");
    deepEqual(await builds(), [queued, ids[4], ids[3]]);
  } finally {
    await queen.proc.stop();
  }
});

Deno.test("Strider's older job format is accepted, converted and runs", async () => {
  const repo = await makeRepo({ "a.txt": "legacy content\n" });
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "legacy" });
  try {
    const response = await api(queen, "/api/jobs", {
      method: "POST",
      body: JSON.stringify({
        user_id: "u1",
        github_apikey: "not-used-here",
        job_id: "legacy-job-1",
        repo_config: {
          branch: "main",
          plugins: [{
            id: "custom",
            enabled: true,
            config: { test: "cat a.txt; echo $STRIDER_DEPLOY_TARGET" },
          }, {
            id: "env",
            config: {},
          }],
        },
        deploy_config: {},
        deploy_target: "staging",
        repo_ssh_url: repo.path,
        job_type: "TEST_ONLY",
        github_commit_info: {
          id: repo.commit,
          message: "the legacy commit",
          author: { name: "Jared Forsyth", username: "jaredly" },
          timestamp: "2013-06-01T12:00:00Z",
        },
      }),
    });
    equal(response.status, 201, await response.clone().text());
    const job = await waitForJob(queen, "legacy-job-1");
    equal(job.result, "passed", job.error ?? "");
    equal(job.spec.job_type, "TEST");
    equal(job.spec.trigger?.author?.name, "Jared Forsyth");
    equal(job.spec.trigger?.message, "the legacy commit");
    const log = await jobLog(queen, "legacy-job-1");
    match(log, /legacy content/);
    match(log, /staging/);
    const bad = await api(queen, "/api/jobs", {
      method: "POST",
      body: JSON.stringify({ repo_ssh_url: repo.path, job_type: "SOMETIMES" }),
    });
    equal(bad.status, 400);
    match((await bad.json()).error, /job_type/);
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
