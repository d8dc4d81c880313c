/**
 * Dispatch latency: from `POST /api/jobs` to the queen recording the worker's `job:started`, with
 * 100 workers connected, beside a bare loopback WebSocket round trip (the least any push dispatch
 * can cost). Jobs go one at a time, each once the previous finished, so this is dispatch and not
 * queueing.
 *
 * Two runs: a real worker (a subprocess running the job: clone and `true`) among 99 idle
 * simulated workers; then 100 simulated workers (one of them faster, so it takes each job).
 * The queen is in this process (`startQueen`) so its recording is timed where it happens.
 */
import { startQueen } from "../../queen/mod.ts";
import {
  API_TOKEN,
  bareWebSocketRoundTrips,
  customJob,
  join,
  makeRepo,
  round,
  row,
  startWorkerProc,
  stats,
  tempDir,
  waitUntil,
  Watcher,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";
import { SimFleet } from "./sim_worker.ts";

type Core = Awaited<ReturnType<typeof startQueen>>["core"];

/** Submits `count` jobs one after another; returns POST → `job:started` recorded, in ms. */
async function sequentialDispatch(
  url: string,
  watcher: Watcher,
  spec: Record<string, unknown>,
  prefix: string,
  count: number,
  split?: { post: number; worker: number }[],
): Promise<number[]> {
  const body = JSON.stringify(spec);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}-${i}`;
    const begin = performance.now();
    const response = await fetch(`${url}/api/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
      body: body.replace("{", `{"job_id":"${id}",`),
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status !== 201) throw new Error(`submit failed: ${await response.text()}`);
    await response.body?.cancel();
    const started = await watcher.when(id, "job:started", 30_000);
    const dispatched = await watcher.when(id, "job:dispatched", 1_000);
    samples.push(started - begin);
    split?.push({ post: dispatched - begin, worker: started - dispatched });
    // The next job goes to an idle worker: dispatch, not contention with this job's clone.
    await watcher.when(id, "job:done", 60_000);
    watcher.forget(id);
  }
  return samples;
}

/** Where the time went: POST → `job:dispatched` recorded, and from there to `job:started`. */
function splitNotes(split: { post: number; worker: number }[]): Record<string, number> {
  const post = stats(split.map((s) => s.post));
  const worker = stats(split.map((s) => s.worker));
  return {
    post_to_dispatched_p50: round(post.median),
    post_to_dispatched_p99: round(post.p99),
    dispatched_to_started_p50: round(worker.median),
    dispatched_to_started_p99: round(worker.p99),
  };
}

async function readyDrones(core: Core, count: number): Promise<void> {
  await waitUntil(
    () => [...core.drones.values()].filter((d) => d.info).length === count,
    60_000,
    `${count} drones to be connected`,
  );
}

export const dispatch: Measure = {
  name: "dispatch",
  async run(ctx: BenchContext): Promise<Row[]> {
    const realJobs = ctx.quick ? 50 : 200;
    const simJobs = ctx.quick ? 200 : 1000;
    const tmp = await tempDir("dispatch");
    const repo = await makeRepo(tmp.path);
    const queen = await startQueen({
      port: 0,
      host: "127.0.0.1",
      data: join(tmp.path, "data"),
      workerTokens: [WORKER_TOKEN],
      apiTokens: [API_TOKEN],
      log: () => {},
    });
    const watcher = new Watcher(queen.core, ["job:dispatched", "job:started", "job:done"]);
    let idle: SimFleet | undefined;
    let fast: SimFleet | undefined;
    let worker: Proc | undefined;
    try {
      idle = await SimFleet.start({ url: queen.url, token: WORKER_TOKEN, count: 99 });
      worker = startWorkerProc(queen.url, "real", join(tmp.path, "work"), [
        "--speed",
        "2",
        "--capacity",
        "4",
      ]);
      await readyDrones(queen.core, 100);
      const spec = customJob(repo, "true");
      ctx.log("dispatch: real worker among 99 simulated");
      // Warm-up: the worker's mirror cache, the JIT on both sides.
      await sequentialDispatch(queen.url, watcher, spec, "warm", 5);
      const realSplit: { post: number; worker: number }[] = [];
      const real = stats(
        await sequentialDispatch(queen.url, watcher, spec, "real", realJobs, realSplit),
      );
      await worker.stop();
      worker = undefined;
      await readyDrones(queen.core, 99);
      fast = await SimFleet.start({
        url: queen.url,
        token: WORKER_TOKEN,
        count: 1,
        prefix: "fast",
        speed: 2,
      });
      await readyDrones(queen.core, 100);
      ctx.log("dispatch: 100 simulated workers");
      await sequentialDispatch(queen.url, watcher, spec, "simwarm", 50);
      const simSplit: { post: number; worker: number }[] = [];
      const sim = stats(
        await sequentialDispatch(queen.url, watcher, spec, "sim", simJobs, simSplit),
      );
      const bare = stats(await bareWebSocketRoundTrips(simJobs));
      const target = "p50 ≤ 3 ms, p99 ≤ 15 ms";
      const common = {
        group: "dispatch",
        unit: "ms",
        baseline: "bare WebSocket round trip",
        baseline_median: bare.median,
        baseline_p99: bare.p99,
        target,
        check: (r: Row) => r.median <= 3 && (r.p99 ?? 0) <= 15,
      };
      return [
        row({
          ...common,
          measure: "dispatch POST→job:started, real worker + 99 simulated",
          median: real.median,
          p99: real.p99,
          n: real.n,
          notes: splitNotes(realSplit),
        }),
        row({
          ...common,
          measure: "dispatch POST→job:started, 100 simulated workers",
          median: sim.median,
          p99: sim.p99,
          n: sim.n,
          notes: splitNotes(simSplit),
        }),
      ];
    } finally {
      watcher.stop();
      await worker?.stop();
      await idle?.close();
      await fast?.close();
      await queen.close();
      await tmp.cleanup();
    }
  },
};
