/** `strider worker --health-addr`: health and metrics of a worker for its orchestrator. */
import { equal, match } from "node:assert/strict";
import {
  customJob,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

Deno.test("a worker serves /healthz and /metrics, and turns unhealthy without its queen", async () => {
  const repo = await makeRepo({ "a.txt": "a\n" });
  const queen = await startQueen();
  const worker = await startWorker(queen, {
    name: "healthy",
    args: ["--health-addr", "127.0.0.1:0"],
  });
  try {
    const [, base] = await worker.waitFor(/health and metrics on (http:\/\/\S+)/);
    const health = await fetch(`${base}/healthz`);
    equal(health.status, 200);
    const state = await health.json();
    equal(state.name, "healthy");
    equal(state.connected, true);
    const id = await submitJob(queen, customJob(repo.path, { test: "true" }));
    equal((await waitForJob(queen, id)).result, "passed");
    // The queen records the result as the worker sends it; the worker counts it just after.
    let metrics = "";
    await waitUntil(
      async () => {
        metrics = await (await fetch(`${base}/metrics`)).text();
        return /^strider_worker_jobs_finished\{result="passed"\} 1$/m.test(metrics);
      },
      10_000,
      "the worker to count the passed job",
    );
    match(metrics, /^strider_worker_connected 1$/m);
    match(metrics, /^strider_worker_jobs_finished\{result="passed"\} 1$/m);
    match(metrics, /^strider_worker_capacity 2$/m);
    await queen.proc.stop();
    await waitUntil(
      async () => {
        const response = await fetch(`${base}/healthz`);
        await response.body?.cancel();
        return response.status === 503;
      },
      20_000,
      "the worker to report it lost its queen",
    );
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
