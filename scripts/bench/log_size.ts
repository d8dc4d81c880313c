/**
 * `logsize`: five 100 MB logs of build output (`tests/helpers/build_log.ts`: compiler and test
 * lines, warnings, hashes) recorded through the SQLite store as a queen records them (64 KiB
 * output events, each job ended), then compressed by the store (`queen/log_blocks.ts`): the
 * space the database uses for them, beside their raw size. Also timed (in the notes): packing,
 * and a 1 MiB range read of a packed log.
 */
import { SqliteStore } from "../../queen/sqlite_store.ts";
import { Hub } from "../../queen/hub.ts";
import { Recorder } from "../../queen/recorder.ts";
import { packLog } from "../../queen/log_blocks.ts";
import { buildLog } from "../../tests/helpers/build_log.ts";
import { customJob, join, MB, round, row, stats, tempDir, timed, within } from "./lib.ts";
import type { BenchContext, Measure, Row } from "./lib.ts";
import { newRecord } from "./restart.ts";

const T = Date.now();
const yieldNow = () => new Promise((r) => setTimeout(r, 0));

export const logSize: Measure = {
  name: "logsize",
  async run(ctx: BenchContext): Promise<Row[]> {
    const jobs = 5;
    const size = ctx.quick ? 20 * MB : 100 * MB;
    const tmp = await tempDir("logsize");
    try {
      const dir = join(tmp.path, "data");
      const store = new SqliteStore(dir);
      const recorder = new Recorder(store, new Hub(), 1024 * 1024 * 1024);
      let raw = 0;
      const packMs: number[] = [];
      for (let j = 0; j < jobs; j++) {
        ctx.log(`logsize: job ${j + 1} of ${jobs}, ${size / MB} MB of build output`);
        const text = buildLog(size, j + 1);
        const record = newRecord(
          `log${j}`,
          customJob("/bench/repo", "true", { job_id: `log${j}` }),
        );
        await store.createJob(record);
        const id = record.id;
        recorder.record(record, {
          event: "job:dispatched",
          id,
          attempt: 1,
          drone: "w",
          timestamp: T,
        }, T);
        let seq = 0;
        recorder.record(
          record,
          { event: "job:started", id, attempt: 1, seq: ++seq, timestamp: T },
          T,
        );
        for (let at = 0; at < text.length; at += 65_536) {
          const piece = text.slice(at, at + 65_536);
          recorder.record(
            record,
            { event: "job:stdout", id, attempt: 1, seq: ++seq, text: piece },
            T,
          );
          if (seq % 16 === 0) await yieldNow();
        }
        recorder.record(record, {
          event: "job:done",
          id,
          attempt: 1,
          seq: ++seq,
          timestamp: T + 1,
          result: "passed",
        }, T + 1);
        raw += record.logBytes;
        const { promise, resolve } = Promise.withResolvers<void>();
        store.afterCommit(resolve);
        await within(promise, 120_000, "the store to commit");
        packMs.push(await timed(() => within(store.logsPacked(), 300_000, "packing")));
      }
      // Range reads: 1 MiB at 20 places of a packed log.
      const reads: number[] = [];
      for (let i = 0; i < 20; i++) {
        const start = Math.floor((i / 20) * (size - MB));
        reads.push(await timed(() => store.readLog("log0", start, start + 1024 * 1024)));
      }
      // The 100 MB log was `yes` output (lines of 100 `x`): its ratio, for comparison.
      const yes = new TextEncoder().encode(("x".repeat(100) + "\n").repeat(100_000));
      const yesPacked = await packLog(yes.length, (s, e) => yes.subarray(s, e), () => {});
      const packed = store.packedSize();
      const db = store.database;
      const pragma = (name: string) =>
        Number(Object.values(db.prepare(`PRAGMA ${name}`).get() as Record<string, number>)[0]);
      const used = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
      await store.close();
      const fileBytes = (await Deno.stat(join(dir, "strider.db"))).size;
      return [row({
        group: "logsize",
        measure: `${jobs} logs of ${size / MB} MB build output: database space used`,
        unit: "MB",
        median: used / MB,
        n: jobs,
        baseline: "the logs' raw size",
        baseline_median: raw / MB,
        target: "≥ 5× smaller",
        check: (r) => r.median * 5 <= r.baseline_median,
        notes: {
          packed_blocks_mb: round(packed.packedBytes / MB),
          packed_ratio: round(packed.bytes / packed.packedBytes),
          file_mb: round(fileBytes / MB),
          pack_mb_per_s: round(size / MB / (stats(packMs).median / 1000)),
          read_1mib_packed_ms_median: round(stats(reads).median),
          yes_output_ratio: round(yes.length / yesPacked),
        },
      })];
    } finally {
      await tmp.cleanup();
    }
  },
};
