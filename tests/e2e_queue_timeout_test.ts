/**
 * `--queue-timeout` (here from STRIDER_QUEUE_TIMEOUT) on a real queen: a job that no connected
 * drone can run ends `errored` and says why; a job that only waits for a busy drone does not.
 */
import { equal, match } from "node:assert/strict";
import {
  customJob,
  getJob,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import type { Proc } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

Deno.test("--queue-timeout ends a job no drone can run, errored with the reason", async () => {
  const repo = await makeRepo({ "README.md": "queue timeout\n" });
  const queen = await startQueen({ args: ["--lease", "3"], env: { STRIDER_QUEUE_TIMEOUT: "1" } });
  let worker: Proc | undefined;
  try {
    worker = await startWorker(queen, { name: "plain", args: ["--capacity", "1"] });
    const busy = await submitJob(queen, customJob(repo.path, { test: "sleep 6" }));
    const behind = await submitJob(queen, customJob(repo.path, { test: "true" }));
    const behind2 = await submitJob(queen, customJob(repo.path, { test: "true" }));
    const never = await submitJob(
      queen,
      customJob(repo.path, { test: "true" }, { labels: ["gpu"] }),
    );
    const job = await waitForJob(queen, never, 30_000);
    equal(job.result, "errored");
    match(
      job.error ?? "",
      /waiting for a drone with labels: gpu for \d+ s; ended by --queue-timeout 1/,
    );
    equal(job.attempts.length, 0);
    // Jobs that only wait for a slot are not ended; they run once it frees.
    equal((await getJob(queen, behind2)).result, null);
    for (const id of [busy, behind, behind2]) {
      equal((await waitForJob(queen, id, 60_000)).result, "passed");
    }
  } finally {
    await worker?.stop("SIGKILL");
    await queen.proc.stop();
  }
});
