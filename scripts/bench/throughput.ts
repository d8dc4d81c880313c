/**
 * Throughput: 2,000 trivial jobs across 20 workers of capacity 4, submitted through the API (16
 * requests in flight), timed from the first `POST` to the queen recording the last `job:done`.
 * The workers are simulated (scripts/bench/sim_worker.ts, in their own process): they run the
 * job's `sh -c true` without fetching code (a real worker's clone is the turnaround measure),
 * and again with no work at all, which is the queen alone. Beside: `sh -c true` spawned 2,000
 * times at the same concurrency (80).
 */
import { startQueen } from "../../queen/mod.ts";
import {
  API_TOKEN,
  join,
  pool,
  round,
  row,
  run,
  submit,
  tempDir,
  timed,
  waitUntil,
  Watcher,
  within,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Row } from "./lib.ts";
import { SimFleet } from "./sim_worker.ts";
import type { SimMode } from "./sim_worker.ts";

const WORKERS = 20;
const CAPACITY = 4;
const IN_FLIGHT = 16;

export const throughput: Measure = {
  name: "throughput",
  async run(ctx: BenchContext): Promise<Row[]> {
    const jobs = ctx.quick ? 400 : 2000;
    const tmp = await tempDir("throughput");
    const queen = await startQueen({
      port: 0,
      host: "127.0.0.1",
      data: join(tmp.path, "data"),
      workerTokens: [WORKER_TOKEN],
      apiTokens: [API_TOKEN],
      log: () => {},
    });
    const watcher = new Watcher(queen.core, []);
    let done = 0;
    watcher.onEvent = (event) => {
      if (event.event === "job:done") done++;
    };
    const spec = {
      repo: { url: "/nonexistent/bench.git" },
      ref: { branch: "main" },
      plugins: ["custom"],
      config: { custom: { test: "true" } },
    };
    const pass = async (mode: SimMode, prefix: string): Promise<number> => {
      const fleet = await SimFleet.start({
        url: queen.url,
        token: WORKER_TOKEN,
        count: WORKERS,
        capacity: CAPACITY,
        mode,
        prefix,
      });
      try {
        await waitUntil(() => queen.core.drones.size === WORKERS, 30_000, "the fleet");
        // Warm-up.
        done = 0;
        await pool(100, IN_FLIGHT, (i) => submit(queen.url, { ...spec, job_id: `${prefix}w${i}` }));
        await waitUntil(() => done === 100, 60_000, "warm-up jobs");
        done = 0;
        const ms = await timed(async () => {
          await pool(
            jobs,
            IN_FLIGHT,
            (i) => submit(queen.url, { ...spec, job_id: `${prefix}${i}` }),
          );
          await waitUntil(() => done >= jobs, 300_000, `${jobs} jobs to finish`, 2);
        });
        return jobs / (ms / 1000);
      } finally {
        await fleet.close();
        await waitUntil(() => queen.core.drones.size === 0, 30_000, "the fleet to leave");
      }
    };
    try {
      ctx.log("throughput: simulated workers running sh -c true");
      const spawning = await pass("spawn", "s");
      ctx.log("throughput: simulated workers doing nothing");
      const instant = await pass("instant", "i");
      ctx.log("throughput: sh -c true at concurrency 80");
      await pool(100, WORKERS * CAPACITY, () => run("sh", ["-c", "true"]));
      const bareMs = await within(
        timed(() => pool(jobs, WORKERS * CAPACITY, () => run("sh", ["-c", "true"]))),
        300_000,
        "spawning",
      );
      const bare = jobs / (bareMs / 1000);
      const common = {
        group: "throughput",
        unit: "jobs/s",
        baseline: "`sh -c true` ×N at concurrency 80",
        baseline_median: round(bare),
        higherIsBetter: true,
        n: jobs,
      };
      return [
        row({
          ...common,
          measure: `throughput ${jobs} jobs, 20 simulated workers ×4 running \`sh -c true\``,
          median: spawning,
        }),
        row({
          ...common,
          measure: `throughput ${jobs} jobs, 20 simulated workers ×4 doing nothing (queen alone)`,
          median: instant,
        }),
      ];
    } finally {
      watcher.stop();
      await queen.close();
      await tmp.cleanup();
    }
  },
};
