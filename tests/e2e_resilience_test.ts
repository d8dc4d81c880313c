/**
 * End to end, "never lose a job": real queens and workers (subprocesses) and real git
 * repositories, with workers killed, frozen, cut off, drained and stopped mid-job, and job
 * commands that leave children behind. Each test asserts what a user would see: the job's
 * result, its attempts, its log and its event stream, and which processes are left running.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { JobView } from "../protocol/mod.ts";
import {
  api,
  customJob,
  droneNames,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import type { Proc, TestQueen } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { TcpProxy } from "./helpers/tcp_proxy.ts";

const repo = await makeRepo({ "README.md": "resilience tests\n" });

/** The events of a job's SSE stream, parsed (the stream ends once the job is done). */
async function sseEvents(
  queen: TestQueen,
  id: string,
): Promise<{ event: string; data: { data: Record<string, unknown> } }[]> {
  const text = await (await api(queen, `/api/jobs/${id}/events`)).text();
  return [...text.matchAll(/^event: (.+)\ndata: (.+)$/gm)].map((m) => ({
    event: m[1],
    data: JSON.parse(m[2]),
  }));
}

/** The `job:done` events of a job's SSE stream. */
async function doneEvents(queen: TestQueen, id: string) {
  return (await sseEvents(queen, id)).filter((e) => e.event === "job:done");
}

/** Pids of processes whose command line contains `pattern` (`pgrep -f`). */
async function pgrep(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
}

/** Waits until no process matching `pattern` is left; throws naming them otherwise. */
async function waitNoProcess(pattern: string, timeoutMs: number): Promise<void> {
  try {
    await waitUntil(async () => (await pgrep(pattern)).length === 0, timeoutMs, pattern);
  } catch {
    const left = await pgrep(pattern);
    throw new Error(`processes matching '${pattern}' survived: ${left.join(", ")}`);
  }
}

/** Kills whatever matches `pattern`, so that a failing test leaves nothing behind. */
async function reap(pattern: string): Promise<void> {
  for (const pid of await pgrep(pattern)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

async function waitStatus(
  queen: TestQueen,
  id: string,
  check: (job: JobView) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<JobView> {
  let job: JobView | undefined;
  await waitUntil(async () => check(job = await getJob(queen, id)), timeoutMs, what);
  return job!;
}

async function waitLog(queen: TestQueen, id: string, text: string, timeoutMs = 20_000) {
  await waitUntil(async () => (await jobLog(queen, id)).includes(text), timeoutMs, text);
}

async function stopAll(queen: TestQueen | undefined, procs: (Proc | undefined)[]) {
  await Promise.all(procs.map((p) => p?.stop("SIGKILL")));
  await queen?.proc.stop();
}

Deno.test("a worker killed with SIGKILL mid-job: the job runs again elsewhere and passes once", async () => {
  const queen = await startQueen({ args: ["--lease", "2"] });
  let a: Proc | undefined, b: Proc | undefined;
  try {
    // The faster drone gets the job.
    [a, b] = await Promise.all([
      startWorker(queen, { name: "kill9-a", args: ["--speed", "2"] }),
      startWorker(queen, { name: "kill9-b" }),
    ]);
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        test: 'echo "kill9 attempt $STRIDER_ATTEMPT"; ' +
          "for i in 1 2 3 4 5 6; do echo kill9-tick-$i; sleep 0.5; done",
      }),
    );
    await waitStatus(queen, id, (j) => j.status === "started" && j.drone === "kill9-a", "start");
    await waitLog(queen, id, "kill9-tick-1");
    a.signal("SIGKILL");
    equal((await a.exit(10_000)).signal, "SIGKILL");

    const job = await waitForJob(queen, id, 30_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 2);
    equal(job.attempts[0].drone, "kill9-a");
    equal(job.attempts[1].attempt, 2);
    equal(job.attempts[1].drone, "kill9-b");
    equal(job.attempts[1].result, "passed");
    equal(job.drone, "kill9-b");
    match(job.phases.test.commands[0].output, /kill9 attempt 2/);
    const log = await jobLog(queen, id);
    match(log, /--- attempt 2 on kill9-b ---/);
    match(log, /kill9-tick-6/);

    // Reported once: the stream holds attempt 1's events too, but a single job:done.
    const done = await doneEvents(queen, id);
    equal(done.length, 1, JSON.stringify(done));
    equal(done[0].data.data.result, "passed");
    equal(done[0].data.data.attempt, 2);
  } finally {
    await stopAll(queen, [a, b]);
    // A killed worker cannot stop its commands; the first attempt's shell dies on its next echo.
    await reap("kill9-tick");
  }
});

Deno.test("a connection cut mid-job, again and again: the job carries on, no line lost or doubled", async () => {
  const queen = await startQueen({ args: ["--lease", "5"] });
  const proxy = new TcpProxy({ port: Number(new URL(queen.url).port) });
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "cut-a", connect: proxy.url });
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        test: "for i in $(seq 1 60); do echo line-$i; sleep 0.05; done",
      }),
    );
    for (const after of ["line-5", "line-20", "line-40"]) {
      await waitLog(queen, id, after);
      const before = proxy.accepted;
      ok(proxy.cut() >= 1, "no connection to cut");
      // The worker reconnects by itself through the proxy.
      await waitUntil(() => proxy.accepted > before, 10_000, "the worker to reconnect");
    }
    const job = await waitForJob(queen, id, 30_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the job ran a second time");
    equal(job.drone, "cut-a");
    const log = await jobLog(queen, id);
    const lines = [...log.matchAll(/^line-(\d+)$/gm)].map((m) => Number(m[1]));
    deepEqual(lines, Array.from({ length: 60 }, (_, i) => i + 1));
    const viewLines = [...job.phases.test.commands[0].output.matchAll(/^line-(\d+)$/gm)];
    equal(viewLines.length, 60);
    equal((await doneEvents(queen, id)).length, 1);
    ok(proxy.cuts === 3 && proxy.accepted >= 4, `accepted ${proxy.accepted}`);
    // And the worker is still there for the next job.
    ok((await droneNames(queen)).includes("cut-a"));
  } finally {
    await stopAll(queen, [worker]);
    await proxy.close();
  }
});

Deno.test("a connection gone silent without a close (half-open): the worker reconnects and the job carries on", async () => {
  const queen = await startQueen({ args: ["--lease", "3"] });
  const proxy = new TcpProxy({ port: Number(new URL(queen.url).port) });
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "silent-a", connect: proxy.url });
    const connected = Date.now();
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        test: "for i in $(seq 1 100); do echo silent-line-$i; sleep 0.05; done",
      }),
    );
    await waitLog(queen, id, "silent-line-30");
    // The worker learns the queen's ping interval from two pings (a third of the lease).
    await new Promise((r) => setTimeout(r, Math.max(0, connected + 2_500 - Date.now())));
    equal(proxy.freeze(), 1);
    await waitUntil(() => proxy.accepted > 1, 10_000, "the worker to reconnect");

    const job = await waitForJob(queen, id, 30_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the job ran a second time");
    const lines = [...(await jobLog(queen, id)).matchAll(/^silent-line-(\d+)$/gm)];
    deepEqual(lines.map((m) => Number(m[1])), Array.from({ length: 100 }, (_, i) => i + 1));
    equal((await doneEvents(queen, id)).length, 1);
    ok((await droneNames(queen)).includes("silent-a"));
  } finally {
    await stopAll(queen, [worker]);
    await proxy.close();
  }
});

Deno.test("a worker frozen past its lease: the job moves on, and the stale worker's late events are refused", async () => {
  const queen = await startQueen({ args: ["--lease", "2"] });
  let a: Proc | undefined, b: Proc | undefined;
  // Attempt 1 keeps printing the marker long after it was frozen; attempt 2 runs quickly. The
  // marker is put together at run time, so that the command line shown in the log lacks it.
  const tag = "frozen-7781";
  const script = `: ${tag}; if [ "$STRIDER_ATTEMPT" = 1 ]; then echo stale-attempt-begins; ` +
    'sleep 1; m=STALE; for i in $(seq 1 100); do echo "$m-OUTPUT-$i"; sleep 0.1; done; ' +
    "else echo fresh-attempt-runs; fi";
  try {
    [a, b] = await Promise.all([
      startWorker(queen, { name: "frozen-a", args: ["--speed", "2"] }),
      startWorker(queen, { name: "frozen-b" }),
    ]);
    const id = await submitJob(queen, customJob(repo.path, { test: script }));
    await waitStatus(queen, id, (j) => j.status === "started" && j.drone === "frozen-a", "start");
    await waitLog(queen, id, "stale-attempt-begins");
    a.signal("SIGSTOP");

    const job = await waitForJob(queen, id, 30_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 2);
    equal(job.attempts[1].drone, "frozen-b");
    const logBefore = await jobLog(queen, id);
    match(logBefore, /fresh-attempt-runs/);
    ok(!logBefore.includes("STALE-OUTPUT"), logBefore);

    // The stale worker wakes up with output buffered from while it was frozen, and more coming.
    a.signal("SIGCONT");
    await waitUntil(async () => (await droneNames(queen)).includes("frozen-a"), 10_000, "rejoin");
    await new Promise((r) => setTimeout(r, 2_500));

    const after = await getJob(queen, id);
    equal(after.status, "done");
    equal(after.result, "passed");
    equal(after.attempts.length, 2);
    equal(after.drone, "frozen-b");
    ok(!JSON.stringify(after).includes("STALE-OUTPUT"), "the job view shows stale output");
    const logAfter = await jobLog(queen, id);
    equal(logAfter, logBefore);
    const events = await sseEvents(queen, id);
    ok(!JSON.stringify(events).includes("STALE-OUTPUT"), "the event stream has stale output");
    equal(events.filter((e) => e.event === "job:done").length, 1);
    // The superseded attempt is stopped on the stale worker, not left running.
    await waitNoProcess(tag, 10_000);
  } finally {
    a?.signal("SIGCONT");
    await stopAll(queen, [a, b]);
    await reap(tag);
  }
});

Deno.test("cancelling a job stops every background child it started, and cleanup runs", async () => {
  const marker = "sleep 1000.4242";
  const queen = await startQueen();
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "cancel-a", args: ["--kill-grace", "1"] });
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        // One child ignores SIGTERM: it must be killed all the same.
        test: `${marker} & (trap '' TERM; exec ${marker}) & echo bg-children-started; wait`,
        cleanup: "echo cleanup-ran",
      }),
    );
    await waitLog(queen, id, "bg-children-started");
    ok((await pgrep(marker)).length >= 2, "the background children did not start");
    const response = await api(queen, `/api/jobs/${id}/cancel`, { method: "POST" });
    equal(response.status, 202);
    const job = await waitForJob(queen, id, 20_000);
    equal(job.result, "cancelled");
    equal(job.attempts.length, 1);
    match(await jobLog(queen, id), /cleanup-ran/);
    equal(job.phases.cleanup.commands[0].exitCode, 0);
    await waitNoProcess(marker, 5_000);
  } finally {
    await stopAll(queen, [worker]);
    await reap(marker);
  }
});

Deno.test("a job past its timeout ends 'timeout', its processes gone and its cleanup run", async () => {
  const marker = "sleep 1000.5151";
  const queen = await startQueen();
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "timeout-a", args: ["--kill-grace", "1"] });
    const started = Date.now();
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        // The command ignores SIGTERM: the SIGKILL after the grace period ends it.
        test: `trap '' TERM; echo timeout-job-begins; ${marker}`,
        cleanup: "echo timeout-cleanup-ran",
      }, { timeout: 2 }),
    );
    const job = await waitForJob(queen, id, 20_000);
    const took = Date.now() - started;
    equal(job.result, "timeout", job.error ?? "");
    ok(took >= 2_000 && took < 10_000, `took ${took} ms`);
    equal(job.attempts.length, 1);
    const log = await jobLog(queen, id);
    match(log, /timeout-job-begins/);
    match(log, /timeout-cleanup-ran/);
    await waitNoProcess(marker, 5_000);
  } finally {
    await stopAll(queen, [worker]);
    await reap(marker);
  }
});

Deno.test("SIGTERM drains a worker: its running job passes, it takes no new one, it exits 0", async () => {
  const queen = await startQueen();
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "drain-a" });
    const first = await submitJob(
      queen,
      customJob(repo.path, { test: "echo drain-job-begins; sleep 2; echo drain-job-ends" }),
    );
    await waitLog(queen, first, "drain-job-begins");
    worker.signal("SIGTERM");
    await waitUntil(
      async () => {
        const body = await (await api(queen, "/api/drones")).json();
        return body.drones.some((d: { name: string; draining: boolean }) =>
          d.name === "drain-a" && d.draining
        );
      },
      10_000,
      "the drone to be draining",
    );
    const second = await submitJob(queen, customJob(repo.path, { test: "echo SECOND-JOB-RAN" }));

    const job = await waitForJob(queen, first, 20_000);
    equal(job.result, "passed", job.error ?? "");
    match(await jobLog(queen, first), /drain-job-ends/);
    const status = await worker.exit(20_000);
    equal(status.code, 0, worker.stderr);

    const waiting = await getJob(queen, second);
    equal(waiting.status, "queued");
    equal(waiting.attempts.length, 0);
    ok(!(await jobLog(queen, second)).includes("SECOND-JOB-RAN"));
    ok(!(await droneNames(queen)).includes("drain-a"));
    equal((await api(queen, `/api/jobs/${second}/cancel`, { method: "POST" })).status, 202);
    equal((await getJob(queen, second)).result, "cancelled");
  } finally {
    await stopAll(queen, [worker]);
  }
});

Deno.test("a second SIGTERM stops a draining worker: its job ends cancelled after cleanup, nothing left running", async () => {
  const marker = "sleep 1000.7171";
  const queen = await startQueen();
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "stop-a", args: ["--kill-grace", "1"] });
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        test: `echo stop-job-begins; ${marker}`,
        cleanup: "echo cleanup-after-stop",
      }),
    );
    await waitLog(queen, id, "stop-job-begins");
    worker.signal("SIGTERM");
    await worker.waitFor(/draining/, 10_000);
    worker.signal("SIGTERM");
    equal((await worker.exit(20_000)).code, 0, worker.stderr);
    const job = await getJob(queen, id);
    equal(job.status, "done");
    equal(job.result, "cancelled");
    match(await jobLog(queen, id), /cleanup-after-stop/);
    await waitNoProcess(marker, 5_000);
  } finally {
    await stopAll(queen, [worker]);
    await reap(marker);
  }
});

Deno.test("a job waiting for a label runs once a drone with that label joins", async () => {
  const queen = await startQueen();
  let plain: Proc | undefined, gpu: Proc | undefined;
  try {
    plain = await startWorker(queen, { name: "label-plain" });
    const id = await submitJob(
      queen,
      customJob(repo.path, { test: "echo gpu-job-ran" }, { labels: ["gpu"] }),
    );
    await new Promise((r) => setTimeout(r, 500));
    const queued = await getJob(queen, id);
    equal(queued.status, "queued");
    equal(queued.attempts.length, 0);
    match(queued.waiting ?? "", /labels: gpu/);

    gpu = await startWorker(queen, { name: "label-gpu", args: ["--labels", "gpu"] });
    const job = await waitForJob(queen, id, 20_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.drone, "label-gpu");
    equal(job.attempts.length, 1);
    match(await jobLog(queen, id), /gpu-job-ran/);
  } finally {
    await stopAll(queen, [plain, gpu]);
  }
});

Deno.test("an ephemeral worker (--max-jobs 1) runs one job, takes no other, and exits 0", async () => {
  const queen = await startQueen();
  let worker: Proc | undefined, next: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "ephemeral-a", args: ["--max-jobs", "1"] });
    const first = await submitJob(
      queen,
      customJob(repo.path, { test: "echo ephemeral-job-1; sleep 1" }),
    );
    await waitStatus(queen, first, (j) => j.status === "started", "the first job to start");
    // It has room for another (capacity 2), but it may run one job only.
    const second = await submitJob(queen, customJob(repo.path, { test: "echo ephemeral-job-2" }));
    const status = await worker.exit(30_000);
    equal(status.code, 0, worker.stderr);
    const job = await getJob(queen, first);
    equal(job.result, "passed", job.error ?? "");
    equal(job.drone, "ephemeral-a");
    match(await jobLog(queen, first), /ephemeral-job-1/);
    // The other job is not lost: it waits for the next worker.
    const waiting = await getJob(queen, second);
    equal(waiting.status, "queued");
    equal(waiting.attempts.length, 0);
    next = await startWorker(queen, { name: "ephemeral-b", args: ["--max-jobs", "1"] });
    const ran = await waitForJob(queen, second, 20_000);
    equal(ran.result, "passed");
    equal(ran.drone, "ephemeral-b");
    equal((await next.exit(20_000)).code, 0, next.stderr);
  } finally {
    await stopAll(queen, [worker, next]);
  }
});

Deno.test({
  name: "an ephemeral worker connecting to a full queue takes one job only",
  // On a drone's first `drone:info` the queen dispatches every queued job it can; the worker's
  // `accepts` budget keeps a `--max-jobs 1` worker from being sent more than one.
  fn: async () => {
    const queen = await startQueen();
    let worker: Proc | undefined;
    try {
      const ids = [
        await submitJob(queen, customJob(repo.path, { test: "echo ephemeral-job-1; sleep 0.5" })),
        await submitJob(queen, customJob(repo.path, { test: "echo ephemeral-job-2; sleep 0.5" })),
      ];
      worker = await startWorker(queen, {
        name: "ephemeral-c",
        args: ["--max-jobs", "1"],
        wait: false,
      });
      equal((await worker.exit(30_000)).code, 0, worker.stderr);
      const jobs = await Promise.all(ids.map((id) => getJob(queen, id)));
      equal(jobs.filter((j) => j.attempts.length > 0).length, 1);
      equal(jobs.filter((j) => j.status === "queued" && j.attempts.length === 0).length, 1);
    } finally {
      await stopAll(queen, [worker]);
    }
  },
});

Deno.test("a worker restarted after kill -9 ends the commands its last run left behind", async () => {
  const repo = await makeRepo({ "a.txt": "a\n" });
  const queen = await startQueen({ args: ["--lease", "30"] });
  const workdir = await Deno.makeTempDir({ prefix: "strider-leftovers-" });
  const marker = `1000.${Math.floor(Math.random() * 9000 + 1000)}`;
  /** The ids of the job's `sleep` processes (its first attempt's, or a later one's). */
  const sleeping = async () => {
    const out = await new Deno.Command("pgrep", {
      args: ["-f", `sleep ${marker}`],
      stdout: "piped",
    })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
  };
  const alive = async () => (await sleeping()).length > 0;
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "crashy", args: ["--workdir", workdir] });
    const id = await submitJob(queen, customJob(repo.path, { test: `sleep ${marker}` }));
    await waitUntil(alive, 20_000, "the job's sleep to start");
    await waitUntil(async () => (await getJob(queen, id)).status === "started", 10_000);
    await worker.stop("SIGKILL");
    const leftovers = await sleeping();
    ok(leftovers.length > 0, "a quiet command outlives its killed worker");
    worker = await startWorker(queen, { name: "crashy", args: ["--workdir", workdir] });
    // The job may start again on the restarted worker (a new attempt, the same command): only the
    // processes the killed worker left count.
    await waitUntil(
      async () => !(await sleeping()).some((pid) => leftovers.includes(pid)),
      10_000,
      "the leftover to be ended",
    );
    await api(queen, `/api/jobs/${id}/cancel`, { method: "POST" });
  } finally {
    await worker?.stop();
    await queen.proc.stop();
  }
});
