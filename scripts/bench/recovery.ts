/**
 * Recovery, with a queen in this process on a 2-second lease (`--lease 2`) and real workers:
 *
 * - `kill -9`: a worker running a job is killed; the time from the kill to the queen recording
 *   `job:started` of the job's next attempt on another worker, beside the configured lease (the
 *   queen waits out the lease, less the time the drone had already been silent, before it
 *   re-queues: a worker that merely lost its connection gets that long to come back);
 * - connection cut: the worker's connection runs through a TCP proxy, which drops it (both
 *   sides, as a network failure would); the time from the cut to the queen recording the job's
 *   next event over the worker's new connection (the same attempt, resumed), beside the
 *   worker's first reconnect delay (250 ms, the floor of its backoff).
 */
import { startQueen } from "../../queen/mod.ts";
import { TcpProxy } from "../../tests/helpers/tcp_proxy.ts";
import {
  API_TOKEN,
  customJob,
  join,
  makeRepo,
  reapUnder,
  row,
  sleep,
  startWorkerProc,
  stats,
  submit,
  tempDir,
  waitUntil,
  Watcher,
  within,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";

const LEASE_S = 2;
const RECONNECT_FLOOR_MS = 250;

export const recovery: Measure = {
  name: "recovery",
  async run(ctx: BenchContext): Promise<Row[]> {
    const samples = ctx.quick ? 1 : 3;
    const tmp = await tempDir("recovery");
    const repo = await makeRepo(tmp.path);
    const queen = await startQueen({
      port: 0,
      host: "127.0.0.1",
      data: join(tmp.path, "data"),
      workerTokens: [WORKER_TOKEN],
      apiTokens: [API_TOKEN],
      lease: LEASE_S,
      maxAttempts: 10,
      log: () => {},
    });
    const core = queen.core;
    const watcher = new Watcher(core);
    const procs: Proc[] = [];
    const holder = (id: string) => [...core.drones.values()].find((d) => d.jobs.has(id));
    const hasDrone = (name: string) => [...core.drones.values()].some((d) => d.info?.name === name);
    const finishJob = async (id: string) => {
      core.cancel(id);
      await watcher.when(id, "job:done", 30_000);
    };
    let proxy: TcpProxy | undefined;
    try {
      const rescuer = startWorkerProc(queen.url, "rescuer", join(tmp.path, "rescuer"), [
        "--capacity",
        "4",
        "--kill-grace",
        "1",
      ]);
      procs.push(rescuer);
      await waitUntil(() => hasDrone("rescuer"), 60_000, "the rescuer to connect");

      ctx.log("recovery: kill -9");
      const kills: number[] = [];
      for (let i = 0; i < samples; i++) {
        const name = `victim-${i}`;
        const workdir = join(tmp.path, name);
        const victim = startWorkerProc(queen.url, name, workdir, ["--speed", "10"]);
        procs.push(victim);
        await waitUntil(() => hasDrone(name), 60_000, `${name} to connect`);
        const id = await submit(queen.url, customJob(repo, "sleep 20", { job_id: `kill-${i}` }));
        await watcher.when(id, "job:started", 30_000, 1);
        if (holder(id)?.info?.name !== name) {
          throw new Error(`job ${id} went to ${holder(id)?.name}`);
        }
        // Let the job settle into its command, as a job killed mid-run would be.
        await sleep(300);
        victim.signal("SIGKILL");
        const killed = performance.now();
        const again = await watcher.when(id, "job:started", 30_000, 2);
        kills.push(again - killed);
        await victim.kill();
        reapUnder(workdir);
        await finishJob(id);
      }

      ctx.log("recovery: connection cut");
      proxy = new TcpProxy({ port: queen.port });
      const cutter = startWorkerProc(proxy.url, "cutter", join(tmp.path, "cutter"), [
        "--speed",
        "10",
      ]);
      procs.push(cutter);
      await waitUntil(() => hasDrone("cutter"), 60_000, "the cut worker to connect");
      const id = await submit(
        queen.url,
        customJob(
          repo,
          "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); sleep 0.01; done",
          {
            job_id: "cut",
          },
        ),
      );
      await watcher.when(id, "job:started", 30_000, 1);
      await sleep(500);
      const cuts: number[] = [];
      for (let i = 0; i < samples; i++) {
        const before = holder(id);
        if (before?.info?.name !== "cutter") throw new Error("the cut job is not on the cutter");
        const resumed = Promise.withResolvers<number>();
        watcher.onEvent = (event, at) => {
          if (event.id !== id) return;
          const now = holder(id);
          if (now && now !== before) resumed.resolve(at);
        };
        if (proxy.cut() < 1) throw new Error("no connection to cut");
        const cut = performance.now();
        cuts.push(await within(resumed.promise, 30_000, "the stream to resume") - cut);
        watcher.onEvent = undefined;
        const view = (await core.job(id))!.view;
        if (view.attempt !== 1 || view.status !== "started") {
          throw new Error(`the cut job moved on: attempt ${view.attempt}, ${view.status}`);
        }
        await sleep(500);
      }
      await finishJob(id);

      const k = stats(kills);
      const c = stats(cuts);
      return [
        row({
          group: "recovery",
          measure: "kill -9 of a worker → job:started on another worker",
          unit: "ms",
          median: k.median,
          p99: k.max,
          n: k.n,
          baseline: `the configured lease (--lease ${LEASE_S})`,
          baseline_median: LEASE_S * 1000,
        }),
        row({
          group: "recovery",
          measure: "connection cut (TCP proxy) → the job's stream resumed",
          unit: "ms",
          median: c.median,
          p99: c.max,
          n: c.n,
          baseline: "the worker's first reconnect delay",
          baseline_median: RECONNECT_FLOOR_MS,
        }),
      ];
    } finally {
      watcher.stop();
      for (const proc of procs) await proc.stop("SIGTERM", 5_000);
      reapUnder(tmp.path);
      await proxy?.close();
      await queen.close();
      await tmp.cleanup();
    }
  },
};
