/**
 * Restart: a queen whose store holds 10,000 queued jobs is killed (`kill -9`); the time from
 * starting a new queen on the same data folder to its first `200` from `/healthz`, beside the
 * same for a queen on an empty data folder (process start, module load, opening the store).
 * The jobs are written straight into the store, as the queen's `submit` would write them.
 */
import { SqliteStore } from "../../queen/sqlite_store.ts";
import { newRecord as storedRecord } from "../../queen/recorder.ts";
import type { JobRecord } from "../../queen/store.ts";
import { JobSpecSchema } from "../../protocol/mod.ts";
import type { JobSpecInput } from "../../protocol/mod.ts";
import { healthz, join, row, startQueenProc, stats, tempDir, waitUntil } from "./lib.ts";
import type { BenchContext, Measure, QueenProc, Row } from "./lib.ts";

/** A new job's record, as `QueenCore.submit` makes it. */
export function newRecord(id: string, input: JobSpecInput, now = Date.now()): JobRecord {
  const spec = JobSpecSchema.parse({
    ...input,
    job_id: id,
    trigger: input.trigger ?? {
      type: "manual",
      timestamp: new Date(now).toISOString(),
      source: { type: "API", app: "bench" },
    },
  });
  return storedRecord(id, spec, now);
}

/** Spawn → first `200` from `/healthz`, in ms; the queen is killed with SIGKILL after. */
async function timeToHealthy(data: string): Promise<{ ms: number; queued: number }> {
  const begin = performance.now();
  let queen: QueenProc | undefined;
  try {
    queen = await startQueenProc(data, [], "restarted queen");
    let queued = -1;
    await waitUntil(
      async () => {
        const health = await healthz(queen!.url);
        if (health) queued = health.queued;
        return health !== undefined;
      },
      120_000,
      "/healthz",
      2,
    );
    return { ms: performance.now() - begin, queued };
  } finally {
    await queen?.proc.kill();
  }
}

export const restart: Measure = {
  name: "restart",
  async run(ctx: BenchContext): Promise<Row[]> {
    const jobs = ctx.quick ? 2000 : 10_000;
    const samples = ctx.quick ? 2 : 5;
    const tmp = await tempDir("restart");
    try {
      const full = join(tmp.path, "full");
      const store = new SqliteStore(full);
      const spec = {
        repo: { url: "https://git.example/bench/repo.git" },
        ref: { branch: "main" },
        plugins: ["custom"],
        config: { custom: { test: "true" } },
      };
      const now = Date.now();
      for (let i = 0; i < jobs; i++) await store.createJob(newRecord(`q${i}`, spec, now + i));
      await store.close();
      ctx.log(`restart: ${jobs} queued jobs written`);
      // The first start also checkpoints the WAL; measured starts all follow a kill -9.
      const first = await timeToHealthy(full);
      if (first.queued !== jobs) throw new Error(`the queen queued ${first.queued} of ${jobs}`);
      const empty = join(tmp.path, "empty");
      await timeToHealthy(empty);
      const withJobs: number[] = [];
      const bare: number[] = [];
      for (let i = 0; i < samples; i++) {
        withJobs.push((await timeToHealthy(full)).ms);
        bare.push((await timeToHealthy(empty)).ms);
      }
      const s = stats(withJobs);
      const b = stats(bare);
      return [row({
        group: "restart",
        measure: `restart after kill -9 with ${jobs} queued jobs → /healthz`,
        unit: "ms",
        median: s.median,
        p99: s.max,
        n: s.n,
        baseline: "the same on an empty data folder",
        baseline_median: b.median,
        baseline_p99: b.max,
      })];
    } finally {
      await tmp.cleanup();
    }
  },
};
