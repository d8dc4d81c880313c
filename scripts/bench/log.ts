/**
 * Log throughput.
 *
 * `log`: a job printing 200 MB (lines of 100 `x`, from `yes`) on a real worker, through the
 * queen (a subprocess) and its store, to a live SSE follower in this process: MB/s from the
 * follower's first output event to the stream's end (after `job:done`), median of three jobs,
 * beside the same command writing to /dev/null; and the queen's peak resident memory
 * (`VmHWM`), beside its resident memory when idle; its resident memory 15 s after the jobs
 * (beside idle again); and its peak while the last log is read back through `GET /log` and
 * replayed to a late SSE follower (each beside its memory just before).
 *
 * `store`: the same output, in the 64 KiB chunks the worker sends, appended to the SQLite store
 * (`SqliteStore.appendEvent`, committed), beside a bare `node:sqlite` loop inserting the same
 * chunks (WAL, one transaction per 16 chunks).
 */
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../queen/sqlite_store.ts";
import {
  api,
  cpuSecondsOf,
  customJob,
  healthz,
  join,
  makeRepo,
  MB,
  memoryOf,
  round,
  row,
  run,
  sampleMemory,
  startQueenProc,
  startWorkerProc,
  stats,
  submit,
  tempDir,
  timed,
  waitUntil,
  within,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, QueenProc, Row } from "./lib.ts";
import { newRecord } from "./restart.ts";
import { utf8Length } from "../../queen/recorder.ts";

const LINE = 100;

/**
 * The job's command for `bytes` of output plus a newline every 100: lines of 100 `x`. (`head -c
 * N /dev/zero | tr '\0' x | fold -w 100` prints the same, but `fold` alone tops out near 135 MB/s
 * on the bench machine: it would be the bound, not strider.)
 */
const command = (bytes: number) => `yes ${"x".repeat(LINE)} | head -c ${printed(bytes)}`;
/** Bytes the command prints: the payload and `fold`'s newlines. */
const printed = (bytes: number) => bytes + Math.ceil(bytes / LINE);

/**
 * Follows a job's SSE stream to its end, as `strider logs --follow` does: a stream the queen
 * cuts (a follower too far behind) is resumed with `Last-Event-ID`. Returns when output started
 * and ended, the bytes received, and how many times the stream was resumed.
 */
async function follow(url: string, id: string) {
  const decoder = new TextDecoder();
  let firstOutput: number | undefined;
  let bytes = 0;
  let after = 0;
  let resumes = 0;
  while (true) {
    const response = await api(url, `/api/jobs/${id}/events`, {
      headers: { "last-event-id": String(after) },
    }, 600_000);
    if (!response.ok || !response.body) throw new Error(`SSE: ${response.status}`);
    let tail = "";
    let done = false;
    for await (const chunk of response.body) {
      bytes += chunk.length;
      const text = tail + decoder.decode(chunk, { stream: true });
      if (firstOutput === undefined && text.includes("\nevent: job:cmd:stdout\n")) {
        firstOutput = performance.now();
      }
      if (text.includes("\nevent: job:done\n")) done = true;
      // The last frame that started: resuming after the one before it resends it whole.
      const ids = [...text.matchAll(/(?:^|\n)id: (\d+)\n/g)];
      if (ids.length) after = Math.max(after, Number(ids[ids.length - 1][1]) - 1);
      tail = text.slice(-256);
    }
    if (done) break;
    if (++resumes > 20) throw new Error("the SSE stream was cut more than 20 times");
  }
  return { firstOutput: firstOutput ?? NaN, end: performance.now(), bytes, resumes };
}

export const logThroughput: Measure = {
  name: "log",
  async run(ctx: BenchContext): Promise<Row[]> {
    const payload = ctx.quick ? 50 * MB : 200 * MB;
    const runs = ctx.quick ? 1 : 3;
    const tmp = await tempDir("log");
    const repo = await makeRepo(tmp.path);
    let queen: QueenProc | undefined;
    let worker: Proc | undefined;
    try {
      queen = await startQueenProc(join(tmp.path, "data"), ["--max-log-mib", "1024"]);
      worker = startWorkerProc(queen.url, "logger", join(tmp.path, "work"), [
        "--capacity",
        "1",
        "--output-limit",
        "1024",
      ]);
      await waitUntil(async () => (await healthz(queen!.url))?.drones === 1, 60_000, "worker");
      // Warm-up: the mirror cache, the JIT on every side.
      const warm = await submit(queen.url, customJob(repo, command(5 * MB), { job_id: "warm" }));
      await within(follow(queen.url, warm), 120_000, "the warm-up job");
      const idle = memoryOf(queen.proc.pid).rss;
      const rates: number[] = [];
      const queenCpu: number[] = [];
      const workerCpu: number[] = [];
      let sampledPeak = 0;
      let resumes = 0;
      for (let i = 0; i < runs; i++) {
        ctx.log(`log: a job printing ${payload / MB} MB (${i + 1} of ${runs})`);
        const sampler = sampleMemory(queen.proc.pid);
        const cpu0 = [cpuSecondsOf(queen.proc.pid), cpuSecondsOf(worker.pid)];
        const id = await submit(
          queen.url,
          customJob(repo, command(payload), { job_id: `big${i}` }),
        );
        const followed = await within(follow(queen.url, id), 600_000, "the log job");
        sampledPeak = Math.max(sampledPeak, sampler.stop());
        resumes += followed.resumes;
        queenCpu.push((cpuSecondsOf(queen.proc.pid) - cpu0[0]) * 1000 / (printed(payload) / MB));
        workerCpu.push((cpuSecondsOf(worker.pid) - cpu0[1]) * 1000 / (printed(payload) / MB));
        const job = await (await api(queen.url, `/api/jobs/${id}`)).json();
        if (job.result !== "passed") {
          throw new Error(`the log job ended ${job.result}: ${job.error}`);
        }
        if (followed.bytes < printed(payload)) {
          throw new Error(`the follower got ${followed.bytes} bytes of ${printed(payload)}`);
        }
        rates.push(printed(payload) / MB / ((followed.end - followed.firstOutput) / 1000));
      }
      const peak = memoryOf(queen.proc.pid).peak;
      // After the jobs: the queen compresses their logs once output stops (log_blocks.ts), then
      // should be back near idle. Then one whole log read back through GET /log (streamed).
      await new Promise((resolve) => setTimeout(resolve, ctx.quick ? 5_000 : 15_000));
      const after = memoryOf(queen.proc.pid).rss;
      const readSampler = sampleMemory(queen.proc.pid, 10);
      const logUrl = `/api/jobs/big${runs - 1}/log`;
      const response = await api(queen.url, logUrl, {}, 300_000);
      let readBytes = 0;
      const readMs = await timed(async () => {
        for await (const chunk of response.body!) readBytes += chunk.length;
      });
      const readPeak = readSampler.stop();
      if (readBytes < printed(payload)) {
        throw new Error(`GET ${logUrl} gave ${readBytes} bytes of ${printed(payload)}`);
      }
      // A late follower of the same finished job, from its first event: the queen replays the
      // stored events a page at a time (queen/sse.ts), the log never held whole.
      const beforeReplay = memoryOf(queen.proc.pid).rss;
      const replaySampler = sampleMemory(queen.proc.pid, 10);
      const replayed = await within(follow(queen.url, `big${runs - 1}`), 300_000, "the replay");
      const replayPeak = replaySampler.stop();
      if (replayed.bytes < printed(payload)) {
        throw new Error(`the replay gave ${replayed.bytes} bytes of ${printed(payload)}`);
      }
      const bareRates: number[] = [];
      for (let i = 0; i < runs; i++) {
        const bareMs = await timed(() => run("sh", ["-c", `${command(payload)} > /dev/null`]));
        bareRates.push(printed(payload) / MB / (bareMs / 1000));
      }
      const rate = stats(rates).median;
      const bare = stats(bareRates).median;
      return [
        row({
          group: "log",
          measure: `log ${payload / MB} MB job → queen → store → live SSE follower`,
          unit: "MB/s",
          median: rate,
          n: runs,
          baseline: "the same command > /dev/null",
          baseline_median: round(bare),
          higherIsBetter: true,
          target: "≥ 150 MB/s",
          check: (r) => r.median >= 150,
          notes: {
            runs: rates.map(round).join(", "),
            queen_cpu_ms_per_mb: round(stats(queenCpu).median),
            worker_cpu_ms_per_mb: round(stats(workerCpu).median),
            sse_resumes: resumes,
          },
        }),
        row({
          group: "log",
          measure: "queen peak RSS during the log job",
          unit: "MB",
          median: peak / MB,
          n: runs,
          baseline: "the queen's RSS when idle",
          baseline_median: idle / MB,
          target: "< 200 MB",
          check: (r) => r.median < 200,
          notes: { sampled_peak_mb: round(sampledPeak / MB) },
        }),
        row({
          group: "log",
          measure: "queen RSS 15 s after the log jobs (logs compressed)",
          unit: "MB",
          median: after / MB,
          n: 1,
          baseline: "the queen's RSS when idle",
          baseline_median: idle / MB,
          target: "near idle (≤ 1.25×)",
          check: (r) => r.median <= 1.25 * r.baseline_median,
        }),
        row({
          group: "log",
          measure: `queen peak RSS reading a ${payload / MB} MB log back through GET /log`,
          unit: "MB",
          median: readPeak / MB,
          n: 1,
          baseline: "the queen's RSS before the read",
          baseline_median: after / MB,
          target: `grows < ${payload / MB / 10} MB`,
          check: (r) => r.median - r.baseline_median < payload / MB / 10,
          notes: { read_mb_per_s: round(readBytes / MB / (readMs / 1000)) },
        }),
        row({
          group: "log",
          measure: `queen peak RSS replaying a ${payload / MB} MB log to a late SSE follower`,
          unit: "MB",
          median: replayPeak / MB,
          n: 1,
          baseline: "the queen's RSS before the replay",
          baseline_median: beforeReplay / MB,
          target: `grows < ${payload / MB / 5} MB`,
          check: (r) => r.median - r.baseline_median < payload / MB / 5,
          notes: {
            replay_mb_per_s: round(
              replayed.bytes / MB / ((replayed.end - replayed.firstOutput) / 1000),
            ),
            sse_resumes: replayed.resumes,
          },
        }),
      ];
    } finally {
      await worker?.stop();
      await queen?.proc.stop();
      await tmp.cleanup();
    }
  },
};

/** The chunks a worker sends for the command's output: 64 KiB of lines. */
function chunks(payload: number): { text: string; count: number; last: string } {
  const line = "x".repeat(LINE) + "\n";
  const all = line.repeat(Math.ceil(65536 / line.length) + 1).slice(0, 65536);
  const total = printed(payload);
  const count = Math.floor(total / all.length);
  return { text: all, count, last: all.slice(0, total - count * all.length) };
}

/** Lets timers (the store's commit timer) run, as a socket read between frames would. */
const yieldNow = () => new Promise((r) => setTimeout(r, 0));

export const storeThroughput: Measure = {
  name: "store",
  async run(ctx: BenchContext): Promise<Row[]> {
    const payload = ctx.quick ? 50 * MB : 200 * MB;
    const tmp = await tempDir("store");
    try {
      const { text, count, last } = chunks(payload);
      const pieces = [...Array(count).fill(text), ...(last ? [last] : [])] as string[];

      ctx.log(`store: ${payload / MB} MB through SqliteStore`);
      const store = new SqliteStore(join(tmp.path, "store"));
      const record = newRecord("big", customJob("/bench/repo", "true"));
      await store.createJob(record);
      const striderMs = await timed(async () => {
        for (let i = 0; i < pieces.length; i++) {
          // Positions as the recorder keeps them; only the store is measured.
          const bytes = utf8Length(pieces[i]);
          store.appendEvent(record.id, {
            n: ++record.lastN,
            at: Date.now(),
            data: {
              event: "job:cmd:stdout",
              id: record.id,
              attempt: 1,
              seq: i + 1,
              num: 1,
              text: pieces[i],
            },
          }, { start: record.logBytes, text: pieces[i], bytes });
          record.logBytes += bytes;
          store.saveJob(record);
          if (i % 16 === 15) await yieldNow();
        }
        const { promise, resolve } = Promise.withResolvers<void>();
        store.afterCommit(resolve);
        await within(promise, 120_000, "the store to commit");
      });
      await store.close();

      ctx.log(`store: ${payload / MB} MB through a bare node:sqlite loop`);
      const db = new DatabaseSync(join(tmp.path, "bare.db"));
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec(
        "CREATE TABLE log_chunks (job_id TEXT NOT NULL, start INTEGER NOT NULL, " +
          "bytes INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (job_id, start)) WITHOUT ROWID",
      );
      const insert = db.prepare(
        "INSERT INTO log_chunks (job_id, start, bytes, text) VALUES (?, ?, ?, ?)",
      );
      const bareMs = await timed(async () => {
        let start = 0;
        for (let i = 0; i < pieces.length; i += 16) {
          db.exec("BEGIN");
          for (const piece of pieces.slice(i, i + 16)) {
            insert.run("big", start, piece.length, piece);
            start += piece.length;
          }
          db.exec("COMMIT");
          await yieldNow();
        }
      });
      db.close();
      const mb = printed(payload) / MB;
      return [row({
        group: "store",
        measure: `log ${payload / MB} MB into the store (SqliteStore, 64 KiB events)`,
        unit: "MB/s",
        median: mb / (striderMs / 1000),
        n: 1,
        baseline: "bare node:sqlite insert loop, same chunks",
        baseline_median: mb / (bareMs / 1000),
        higherIsBetter: true,
      })];
    } finally {
      await tmp.cleanup();
    }
  },
};
