/**
 * Job turnaround: `POST /api/jobs` to the queen recording `job:done` for a trivial job (fetch a
 * small local repository, run `true`) on one real worker, beside doing the same by hand: `git
 * init`, `git fetch`, `git checkout`, `sh -c true` into a fresh folder, then removing it. Samples
 * alternate between the two so that both see the same machine.
 */
import { startQueen } from "../../queen/mod.ts";
import {
  API_TOKEN,
  customJob,
  join,
  makeRepo,
  row,
  run,
  startWorkerProc,
  stats,
  submit,
  tempDir,
  timed,
  waitUntil,
  Watcher,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";

/** The worker's fetch, done directly: init, fetch the branch, check it out; then the test. */
async function direct(repo: string, dir: string): Promise<void> {
  await run("git", ["init", "-q", dir]);
  await run("git", [
    "-C",
    dir,
    "fetch",
    "--no-tags",
    "--",
    repo,
    "+refs/heads/main:refs/remotes/origin/main",
  ]);
  await run("git", ["-C", dir, "checkout", "-q", "--detach", "refs/remotes/origin/main"]);
  await run("sh", ["-c", "true"], dir);
  await Deno.remove(dir, { recursive: true });
}

export const turnaround: Measure = {
  name: "turnaround",
  async run(ctx: BenchContext): Promise<Row[]> {
    const count = ctx.quick ? 10 : 40;
    const tmp = await tempDir("turnaround");
    const repo = await makeRepo(tmp.path);
    const queen = await startQueen({
      port: 0,
      host: "127.0.0.1",
      data: join(tmp.path, "data"),
      workerTokens: [WORKER_TOKEN],
      apiTokens: [API_TOKEN],
      log: () => {},
    });
    const watcher = new Watcher(queen.core);
    let worker: Proc | undefined;
    try {
      worker = startWorkerProc(queen.url, "turnaround", join(tmp.path, "work"), [
        "--capacity",
        "1",
      ]);
      await waitUntil(() => queen.core.drones.size === 1, 60_000, "the worker to connect");
      const spec = customJob(repo, "true");
      const job = async (id: string) => {
        const begin = performance.now();
        await submit(queen.url, { ...spec, job_id: id });
        const done = await watcher.when(id, "job:done", 60_000);
        watcher.forget(id);
        return done - begin;
      };
      for (let i = 0; i < 3; i++) {
        await job(`warm-${i}`);
        await direct(repo, join(tmp.path, `warm-${i}`));
      }
      const strider: number[] = [];
      const baseline: number[] = [];
      const fetchStep: number[] = [];
      const testStep: number[] = [];
      for (let i = 0; i < count; i++) {
        strider.push(await job(`turn-${i}`));
        baseline.push(await timed(() => direct(repo, join(tmp.path, `direct-${i}`))));
        // Where the job's time went, by the worker's own timestamps: the fetch, then `true`.
        const events = (await queen.core.store.events(`turn-${i}`)).map((e) => e.data) as {
          event: string;
          timestamp?: number;
        }[];
        const starts = events.filter((e) => e.event === "job:cmd:start");
        const dones = events.filter((e) => e.event === "job:cmd:done");
        if (starts.length === 2 && dones.length === 2) {
          fetchStep.push(dones[0].timestamp! - starts[0].timestamp!);
          testStep.push(dones[1].timestamp! - starts[1].timestamp!);
        }
      }
      const s = stats(strider);
      const b = stats(baseline);
      return [row({
        group: "turnaround",
        measure: "turnaround POST→job:done, clone + `true`, real worker",
        unit: "ms",
        median: s.median,
        p99: s.p99,
        n: s.n,
        baseline: "git init + fetch + checkout + `sh -c true` directly",
        baseline_median: b.median,
        baseline_p99: b.p99,
        notes: {
          fetch_step_ms_p50: stats(fetchStep).median,
          test_step_ms_p50: stats(testStep).median,
        },
        target: "≤ 1.3× direct",
        check: (r) => r.ratio <= 1.3,
      })];
    } finally {
      watcher.stop();
      await worker?.stop();
      await queen.close();
      await tmp.cleanup();
    }
  },
};
