/**
 * A queen on PostgreSQL whose database freezes while it serves: the postmaster and every backend
 * stopped with SIGSTOP (connections stay open and silent, new ones are never answered), as a
 * hung server or a stalled storage would. API calls that need the database answer 503 within the
 * bound (`--database-timeout`) instead of hanging; after SIGCONT the queen serves again, and the
 * job that ran through the freeze finishes with every line once.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import postgres from "postgres";
import {
  API_TOKEN,
  customJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { freePort } from "./helpers/haproxy.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { postgresCluster } from "./helpers/postgres.ts";

/** The PostgreSQL server's processes: the postmaster (parent of `backend`) and its children. */
async function serverProcesses(database: string): Promise<number[]> {
  const admin = postgres(database, { max: 1, onnotice: () => {} });
  try {
    const [{ pid }] = await admin`SELECT pg_backend_pid() AS pid`;
    const parentOf = async (p: number) =>
      Number((await Deno.readTextFile(`/proc/${p}/stat`)).replace(/^.*\) /s, "").split(" ")[1]);
    const postmaster = await parentOf(Number(pid));
    const pids = [postmaster];
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        if (await parentOf(Number(entry.name)) === postmaster) pids.push(Number(entry.name));
      } catch {
        // Gone meanwhile.
      }
    }
    return pids;
  } finally {
    await admin.end({ timeout: 1 });
  }
}

function signalAll(pids: number[], signal: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, signal);
    } catch {
      // A backend that ended meanwhile.
    }
  }
}

/** A request with a generous limit: a hang fails the test, a quick error is what is wanted. */
function call(url: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(new URL(path, url), {
    ...init,
    headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
    signal: AbortSignal.timeout(60_000),
  });
}

Deno.test("a frozen PostgreSQL: the API answers 503 instead of hanging; after it thaws the queen serves on and the running job loses nothing", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const queen = await startQueen({ args: ["--database", database, "--database-timeout", "2"] });
  const worker = await startWorker(queen, { name: "through-freeze" });
  let frozen: number[] = [];
  try {
    const id = await submitJob(
      queen,
      customJob(repo.path, { test: "for i in $(seq 1 80); do echo line-$i; sleep 0.1; done" }),
    );
    await waitUntil(async () => (await jobLog(queen, id)).includes("line-5"), 30_000, "line-5");

    frozen = await serverProcesses(database);
    signalAll(frozen, "SIGSTOP");
    // A list needs the database: it fails, and says why, rather than waiting for it.
    const listed = await call(queen.url, "/api/jobs?limit=5");
    equal(listed.status, 503, await listed.clone().text());
    ok(/database/.test((await listed.json()).error));
    const submitted = await call(queen.url, "/api/jobs", {
      method: "POST",
      body: JSON.stringify(customJob(repo.path, { test: "echo never" })),
    });
    equal(submitted.status, 503, "a job that cannot be stored is refused, not half-taken");
    await submitted.body?.cancel();
    // A job's page reads the database too (its commit status): an answer, not a hang.
    const page = await call(queen.url, `/api/jobs/${id}`);
    ok([200, 503].includes(page.status), `GET /api/jobs/${id}: ${page.status}`);
    await page.body?.cancel();

    signalAll(frozen, "SIGCONT");
    frozen = [];
    await waitUntil(
      async () =>
        (await call(queen.url, "/api/jobs?limit=5").then((r) =>
          r.body?.cancel().then(() => r.status)
        )) === 200,
      60_000,
      "the queen to serve again",
    );
    const job = await waitForJob(queen, id, 90_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the job ran once, through the freeze");
    const lines = (await jobLog(queen, id)).split("\n").filter((l) => l.startsWith("line-"));
    deepEqual(lines, Array.from({ length: 80 }, (_, i) => `line-${i + 1}`), "every line, once");
    // And new work goes through.
    const after = await submitJob(queen, customJob(repo.path, { test: "echo after-thaw" }));
    equal((await waitForJob(queen, after)).result, "passed");
    ok(!queen.proc.exited, "the queen never stopped");
  } finally {
    if (frozen.length) signalAll(frozen, "SIGCONT");
    await worker.stop();
    await queen.proc.stop();
  }
});

Deno.test("a PostgreSQL frozen past the commit retries: the queen stops with a clear error; restarted after the thaw, the job goes on with no line lost or doubled", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const port = freePort();
  const args = ["--database", database, "--database-timeout", "1", "--port", String(port)];
  const queen = await startQueen({ args: [...args, "--lease", "120"] });
  const worker = await startWorker(queen, { name: "outlives-queen" });
  let frozen: number[] = [];
  let again: TestQueen | undefined;
  try {
    const id = await submitJob(
      queen,
      customJob(repo.path, { test: "for i in $(seq 1 150); do echo line-$i; sleep 0.1; done" }),
    );
    await waitUntil(async () => (await jobLog(queen, id)).includes("line-5"), 30_000, "line-5");
    frozen = await serverProcesses(database);
    signalAll(frozen, "SIGSTOP");
    // The worker's output cannot be committed: after its retries the queen stops, saying why,
    // rather than acknowledge what it could not keep.
    const status = await queen.proc.exit(120_000);
    equal(status.code, 1, queen.proc.stdout + queen.proc.stderr);
    // Which it notices first: its commits failing, or the connection holding its lock.
    ok(
      /could not commit to PostgreSQL after \d+ tries|lost the database connection that holds/
        .test(queen.proc.stderr),
      queen.proc.stderr,
    );
    signalAll(frozen, "SIGCONT");
    frozen = [];

    again = await startQueen({ data: queen.data, args: [...args, "--lease", "120"] });
    const job = await waitForJob(again, id, 120_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the worker re-attached its attempt to the new queen");
    const lines = (await jobLog(again, id)).split("\n").filter((l) => l.startsWith("line-"));
    deepEqual(lines, Array.from({ length: 150 }, (_, i) => `line-${i + 1}`), "every line, once");
  } finally {
    if (frozen.length) signalAll(frozen, "SIGCONT");
    await worker.stop();
    await queen.proc.stop();
    await again?.proc.stop();
  }
});
