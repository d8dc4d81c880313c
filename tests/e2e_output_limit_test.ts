/**
 * A worker's `--output-limit` is a limit in bytes: multibyte output counts as the bytes it
 * takes, not as UTF-16 units, so three-byte characters cannot carry three times the limit.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  customJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

Deno.test({
  name: "multibyte output past --output-limit is cut at the limit in bytes, between characters",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const repo = await makeRepo({ "README.md": "wide output\n" });
    const queen = await startQueen();
    const worker = await startWorker(queen, { name: "wide", args: ["--output-limit", "1"] });
    try {
      // 10,000 lines of 64 '€' (3 bytes each): 1.93 MB, but only 650,000 UTF-16 units, which
      // a count in units would have let through whole under the 1 MiB limit.
      const line = "€".repeat(64);
      const script = `yes '${line}' | head -n 10000; echo after-the-flood | tr a-z A-Z >&2`;
      const id = await submitJob(queen, customJob(repo.path, { test: script }));
      const job = await waitForJob(queen, id, 120_000);
      equal(job.result, "passed", job.error ?? "");
      const log = await jobLog(queen, id);
      match(log, /output truncated at 1048576 bytes; the command keeps running/);
      // What the command printed and the log kept: its lines of '€', each with its newline.
      const kept = log.split("\n").filter((l) => /^€+$/.test(l));
      const bytes = kept.reduce((n, l) => n + new TextEncoder().encode(l).length + 1, 0);
      ok(bytes <= 1024 * 1024 + 1, `the log kept ${bytes} bytes of output`);
      // The limit is the job's: the fetch's few hundred bytes of output count too.
      ok(bytes > 1024 * 1024 - 4096, `the log kept only ${bytes} bytes of output`);
      ok(!log.includes("\ufffd"), "no character was split");
      ok(!log.includes("AFTER-THE-FLOOD"), "nothing passes once the limit is reached");
    } finally {
      await worker.stop();
      await queen.proc.stop();
    }
  },
});
