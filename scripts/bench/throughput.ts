/**
 * Throughput: 2,000 trivial jobs across 20 workers of capacity 4, submitted through the API (16
 * requests in flight), timed from the first `POST` to the queen recording the last `job:done`.
 * The workers are simulated (scripts/bench/sim_worker.ts, in their own process): they run the
 * job's `sh -c true` without fetching code (a real worker's clone is the turnaround measure),
 * and again with no work at all, which is the queen alone. Beside: `sh -c true` spawned 2,000
 * times at the same concurrency (80). Then the whole job: 200 jobs that clone a small local
 * repository and run `true` on 2 real workers of capacity 2, beside `git clone` + `sh -c true`
 * by hand at concurrency 4.
 */
import { startQueen } from "../../queen/mod.ts";
import {
  API_TOKEN,
  join,
  makeRepo,
  pool,
  round,
  row,
  run,
  startWorkerProc,
  submit,
  tempDir,
  timed,
  waitUntil,
  Watcher,
  within,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";
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
    /** Real workers fetching a local repository, beside the same clones by hand. */
    const realPass = async (count: number) => {
      const repo = await makeRepo(tmp.path);
      const workers: Proc[] = [];
      try {
        for (const name of ["real-a", "real-b"]) {
          workers.push(
            startWorkerProc(queen.url, name, join(tmp.path, name), ["--capacity", "2"]),
          );
        }
        await waitUntil(() => queen.core.drones.size === 2, 60_000, "two real workers");
        const cloneSpec = { ...spec, repo: { url: repo } };
        const batch = async (prefix: string, n: number) => {
          done = 0;
          await pool(
            n,
            IN_FLIGHT,
            (i) => submit(queen.url, { ...cloneSpec, job_id: `${prefix}${i}` }),
          );
          await waitUntil(() => done >= n, 300_000, `${n} cloning jobs to finish`, 2);
        };
        let k = 0;
        const direct = async () => {
          const dir = join(tmp.path, `direct-${k++}`);
          await run("git", ["clone", "-q", "--", repo, dir]);
          await run("sh", ["-c", "true"], dir);
          await Deno.remove(dir, { recursive: true });
        };
        await batch("rw", 8);
        await pool(8, 4, direct);
        // Interleaved in four rounds, so that both see the same (shared) machine.
        let striderMs = 0;
        let directMs = 0;
        for (let round = 0; round < 4; round++) {
          striderMs += await timed(() => batch(`r${round}-`, count / 4));
          directMs += await timed(() => pool(count / 4, 4, direct));
        }
        return {
          jobs: count,
          strider: round(count / (striderMs / 1000)),
          direct: round(count / (directMs / 1000)),
        };
      } finally {
        for (const worker of workers) await worker.stop();
        await waitUntil(() => queen.core.drones.size === 0, 30_000, "the real workers to leave");
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
      ctx.log("throughput: real workers cloning, 2 ×2");
      const real = await realPass(ctx.quick ? 60 : 200);

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
        row({
          group: "throughput",
          unit: "jobs/s",
          measure: `throughput ${real.jobs} jobs, 2 real workers ×2, clone + \`true\``,
          median: real.strider,
          baseline: "`git clone` + `sh -c true` ×N by hand at concurrency 4",
          baseline_median: real.direct,
          higherIsBetter: true,
          n: real.jobs,
          target: "≥ 80% of direct",
          check: (r) => r.ratio <= 1.25,
        }),
      ];
    } finally {
      watcher.stop();
      await queen.close();
      await tmp.cleanup();
    }
  },
};
