/**
 * Dashboard: the overview (`GET /`) of a queen whose store holds 10,000 finished jobs, and the
 * project page that lists, filters and charts them, beside `/healthz` of the same queen (the
 * HTTP round trip alone). The target: the overview in under 300 ms.
 */
import { Hub } from "../../queen/hub.ts";
import { Recorder } from "../../queen/recorder.ts";
import { SqliteStore } from "../../queen/sqlite_store.ts";
import { newRecord } from "./restart.ts";
import { join, row, startQueenProc, stats, tempDir } from "./lib.ts";
import type { BenchContext, Measure, Row } from "./lib.ts";

/** Milliseconds per GET of `url`, `samples` times after two warm-ups. */
async function timeGet(url: string, samples: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < samples + 2; i++) {
    const begin = performance.now();
    const response = await fetch(url);
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
    if (i >= 2) times.push(performance.now() - begin);
  }
  return times;
}

export const dashboard: Measure = {
  name: "dashboard",
  async run(ctx: BenchContext): Promise<Row[]> {
    const jobs = ctx.quick ? 2000 : 10_000;
    const samples = ctx.quick ? 5 : 20;
    const tmp = await tempDir("dashboard");
    try {
      const data = join(tmp.path, "data");
      const store = new SqliteStore(data);
      const repo = "https://git.example/bench/repo.git";
      const now = Date.now() - jobs * 60_000;
      for (let i = 0; i < jobs; i++) {
        const record = newRecord(`d${i}`, {
          repo: { url: repo },
          ref: { branch: i % 5 === 0 ? "develop" : "main" },
          plugins: ["custom"],
          config: { custom: { test: "true" } },
        }, now + i * 60_000);
        const started = now + i * 60_000 + 1000;
        record.view.status = "done";
        record.view.result = i % 7 === 0 ? "failed" : "passed";
        record.view.startedAt = new Date(started).toISOString();
        record.view.finishedAt = new Date(started + 20_000 + (i % 13) * 1000).toISOString();
        await store.createJob(record);
      }
      // One job with a 50 MB log, a needle near its start, for find-in-log and the numbered page.
      const logMb = ctx.quick ? 10 : 50;
      const big = newRecord("biglog", {
        repo: { url: repo },
        ref: { branch: "main" },
        plugins: ["custom"],
        config: { custom: { test: "true" } },
      }, Date.now());
      await store.createJob(big);
      // Written as the queen writes it: through the recorder (log text, positions, fold).
      const recorder = new Recorder(store, new Hub(), Number.MAX_SAFE_INTEGER);
      let seq = 0;
      let rowNo = 0;
      while (big.logBytes < logMb * 1_000_000) {
        const lines: string[] = [];
        for (let i = 0; i < 4000; i++) {
          rowNo++;
          lines.push(
            rowNo === 17 ? "the NEEDLE line" : `row ${rowNo} of a long build log, some text`,
          );
        }
        const text = lines.join("\n") + "\n";
        recorder.record(
          big,
          { event: "job:stdout", id: big.id, attempt: 1, seq: ++seq, text },
          Date.now(),
        );
      }
      big.view.status = "done";
      big.view.result = "passed";
      store.saveJob(big);
      await store.close();
      ctx.log(`dashboard: ${jobs} finished jobs and a ${logMb} MB log written`);
      const queen = await startQueenProc(data, [], "dashboard queen");
      try {
        const overview = stats(await timeGet(`${queen.url}/`, samples));
        const project = stats(
          await timeGet(`${queen.url}/projects/git.example%2Fbench%2Frepo?result=failed`, samples),
        );
        const search = stats(
          await timeGet(`${queen.url}/jobs/biglog/log/search?q=needle`, ctx.quick ? 2 : 5),
        );
        const logPage = stats(await timeGet(`${queen.url}/jobs/biglog/log?line=17`, samples));
        const health = stats(await timeGet(`${queen.url}/healthz`, samples));
        const common = {
          group: "dashboard",
          unit: "ms",
          baseline: "GET /healthz of the same queen",
          baseline_median: health.median,
          baseline_p99: health.max,
        };
        return [
          row({
            ...common,
            measure: `dashboard overview (GET /) with ${jobs} jobs in history`,
            median: overview.median,
            p99: overview.max,
            n: overview.n,
            target: "< 300 ms",
            check: (r) => r.median < 300,
          }),
          row({
            ...common,
            measure: `project page, filtered, trend and branches, with ${jobs} jobs`,
            median: project.median,
            p99: project.max,
            n: project.n,
          }),
          row({
            ...common,
            measure: `find-in-log, first request (16 MiB) of a ${logMb} MB log`,
            median: search.median,
            p99: search.max,
            n: search.n,
          }),
          row({
            ...common,
            measure: `numbered log page around a line of a ${logMb} MB log (line index kept)`,
            median: logPage.median,
            p99: logPage.max,
            n: logPage.n,
          }),
        ];
      } finally {
        await queen.proc.kill();
      }
    } finally {
      await tmp.cleanup();
    }
  },
};
