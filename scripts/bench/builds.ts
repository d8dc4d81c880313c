/**
 * Builds: the wall time of a suite split into 4 shards (`parallelism: 4`, each shard picking its
 * files with `strider shard`) on 4 real workers, from `POST /api/jobs` to the last shard's
 * `job:done`, beside the same suite in one job on the same fleet. The suite is 16 files of
 * `sleep 0.25`: 4 s of tests, so the ideal split is a quarter of the one job's test time.
 */
import { startQueen } from "../../queen/mod.ts";
import {
  api,
  API_TOKEN,
  customJob,
  join,
  MAIN,
  ROOT,
  row,
  run,
  startWorkerProc,
  stats,
  tempDir,
  waitUntil,
  Watcher,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";

const FILES = 16;
const SHARDS = 4;

/** A repository of `FILES` test files, each sleeping a quarter of a second. */
async function suiteRepo(dir: string): Promise<string> {
  const repo = join(dir, "suite");
  await Deno.mkdir(join(repo, "t"), { recursive: true });
  for (let i = 0; i < FILES; i++) {
    await Deno.writeTextFile(join(repo, "t", `test_${i}.sh`), "sleep 0.25\n");
  }
  const env = { GIT_AUTHOR_NAME: "b", GIT_AUTHOR_EMAIL: "b@b", GIT_COMMITTER_NAME: "b" };
  await run("git", ["init", "-q", "-b", "main", repo]);
  await run("git", ["-C", repo, "add", "-A"]);
  await new Deno.Command("git", {
    args: ["-C", repo, "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "suite"],
    env,
  }).output();
  return repo;
}

export const builds: Measure = {
  name: "builds",
  async run(ctx: BenchContext): Promise<Row[]> {
    const count = ctx.quick ? 2 : 5;
    const tmp = await tempDir("builds");
    const repo = await suiteRepo(tmp.path);
    const queen = await startQueen({
      port: 0,
      host: "127.0.0.1",
      data: join(tmp.path, "data"),
      workerTokens: [WORKER_TOKEN],
      apiTokens: [API_TOKEN],
      log: () => {},
    });
    const watcher = new Watcher(queen.core);
    const workers: Proc[] = [];
    try {
      for (let i = 0; i < SHARDS; i++) {
        workers.push(
          startWorkerProc(queen.url, `w${i}`, join(tmp.path, `work-${i}`), ["--capacity", "1"]),
        );
      }
      await waitUntil(() => queen.core.drones.size === SHARDS, 60_000, "the workers to connect");
      const shard = `"${Deno.execPath()}" run --quiet --config "${join(ROOT, "deno.json")}" ` +
        `--allow-env --allow-read "${MAIN}" shard`;
      const test = `for f in $(ls t/*.sh | ${shard}); do sh "$f"; done`;
      const denoDir = Deno.env.get("DENO_DIR") ??
        join(Deno.env.get("HOME") ?? "/root", ".cache/deno");
      const spec = customJob(repo, test, { plugins: ["env", "custom"] });
      (spec.config as Record<string, unknown>).env = { DENO_DIR: denoDir };
      /** Milliseconds from the POST to the last job's end. */
      const wall = async (body: Record<string, unknown>) => {
        const begin = performance.now();
        const response = await api(queen.url, "/api/jobs", {
          method: "POST",
          body: JSON.stringify(body),
        });
        const made = await response.json() as { jobs: string[] };
        if (response.status !== 201) throw new Error(`submit: ${JSON.stringify(made)}`);
        const ends = await Promise.all(
          made.jobs.map((id) => watcher.when(id, "job:done", 120_000)),
        );
        for (const id of made.jobs) watcher.forget(id);
        return Math.max(...ends) - begin;
      };
      await wall({ ...spec, parallelism: SHARDS });
      await wall(spec);
      const sharded: number[] = [];
      const single: number[] = [];
      for (let i = 0; i < count; i++) {
        sharded.push(await wall({ ...spec, parallelism: SHARDS }));
        single.push(await wall(spec));
      }
      const s = stats(sharded);
      const b = stats(single);
      return [row({
        group: "builds",
        measure: `build of ${SHARDS} shards on ${SHARDS} real workers, ${FILES} files × 0.25 s`,
        unit: "ms",
        median: s.median,
        p99: s.p99,
        n: s.n,
        baseline: "the same suite in one job",
        baseline_median: b.median,
        baseline_p99: b.p99,
      })];
    } finally {
      watcher.stop();
      await Promise.all(workers.map((w) => w.stop()));
      await queen.close();
      await tmp.cleanup();
    }
  },
};
