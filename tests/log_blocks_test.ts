/**
 * Finished logs kept compressed (queen/log_blocks.ts, and the SQLite store's use of it): range
 * reads give the raw bytes, typical build output packs at least 5×, and a crash or a deletion
 * half way through packing loses nothing and leaves nothing behind.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { JobSpecSchema } from "../protocol/mod.ts";
import { Hub } from "../queen/hub.ts";
import { LOG_BLOCK_BYTES, PackedLogReader, packLog, readPacked } from "../queen/log_blocks.ts";
import type { PackedBlock } from "../queen/log_blocks.ts";
import { newRecord, Recorder } from "../queen/recorder.ts";
import { logResponse } from "../queen/log_response.ts";
import { SqliteStore } from "../queen/sqlite_store.ts";
import type { JobRecord } from "../queen/store.ts";
import { buildLog } from "./helpers/build_log.ts";

const T = Date.parse("2026-11-30T12:00:00Z");
const B = LOG_BLOCK_BYTES;

function job(id: string): JobRecord {
  return newRecord(
    id,
    JobSpecSchema.parse({
      job_id: id,
      repo: { url: "https://git.example/app.git" },
      ref: { branch: "main" },
      trigger: {
        type: "manual",
        timestamp: new Date(T).toISOString(),
        source: { type: "API", app: "api" },
      },
    }),
    T,
  );
}

/** Records a job printing `text` in 64 KiB pieces; `done` ends it. */
function run(recorder: Recorder, record: JobRecord, text: string, done: boolean) {
  const id = record.id;
  recorder.record(record, { event: "job:dispatched", id, attempt: 1, drone: "w", timestamp: T }, T);
  let seq = 0;
  recorder.record(record, { event: "job:started", id, attempt: 1, seq: ++seq, timestamp: T }, T);
  for (let at = 0; at < text.length; at += 65_536) {
    const piece = text.slice(at, at + 65_536);
    recorder.record(record, { event: "job:stdout", id, attempt: 1, seq: ++seq, text: piece }, T);
  }
  if (done) {
    recorder.record(record, {
      event: "job:done",
      id,
      attempt: 1,
      seq: ++seq,
      timestamp: T + 1,
      result: "passed",
    }, T + 1);
  }
}

const committed = (store: SqliteStore) =>
  new Promise<void>((resolve) => store.afterCommit(resolve));

async function withStore(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "strider-blocks-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("packed blocks give back any range of the raw bytes", async () => {
  const raw = new TextEncoder().encode(buildLog(2.5 * B, 3));
  const blocks: PackedBlock[] = [];
  const packed = await packLog(raw.length, (s, e) => raw.subarray(s, e), (b) => {
    blocks.push(b);
  });
  equal(blocks.length, 3);
  equal(packed, blocks.reduce((sum, b) => sum + b.data.length, 0));
  const get = (first: number, last: number) => blocks.filter((b) => b.n >= first && b.n <= last);
  const reader = new PackedLogReader(raw.length, (n) => blocks[n]?.data);
  for (
    const [s, e] of [[0, 0], [0, 10], [B - 3, B + 3], [0, raw.length], [2 * B, raw.length + 100]]
  ) {
    deepEqual(await readPacked(s, e, raw.length, get), raw.subarray(s, e), `${s}-${e}`);
    deepEqual(reader.read(s, e), raw.subarray(s, e), `reader ${s}-${e}`);
  }
});

Deno.test("typical build output packs at least 5× (and `yes` output far more)", async () => {
  const build = new TextEncoder().encode(buildLog(2 * B, 11));
  const buildPacked = await packLog(build.length, (s, e) => build.subarray(s, e), () => {});
  ok(build.length / buildPacked >= 5, `build output packed ${build.length / buildPacked}×`);
  const yes = new TextEncoder().encode(("x".repeat(100) + "\n").repeat(20_000));
  const yesPacked = await packLog(yes.length, (s, e) => yes.subarray(s, e), () => {});
  ok(yes.length / yesPacked >= 100, `yes output packed ${yes.length / yesPacked}×`);
});

Deno.test("SQLite: a finished log is packed, its raw text dropped; a running one is not", async () => {
  await withStore(async (dir) => {
    const store = new SqliteStore(dir);
    const recorder = new Recorder(store, new Hub());
    const text = buildLog(2.2 * B, 5);
    const done = job("done");
    const running = job("running");
    await store.createJob(done);
    await store.createJob(running);
    run(recorder, done, text, true);
    run(recorder, running, text, false);
    await committed(store);
    await store.logsPacked();
    const db = store.database;
    const rawLeft = (id: string) =>
      Number(
        (db.prepare("SELECT SUM(LENGTH(text)) AS n FROM log_chunks WHERE job_id = ?").get(id) as {
          n: number;
        }).n,
      );
    equal(rawLeft("done"), 0, "the finished job's raw text is gone");
    ok(rawLeft("running") > 2 * B, "the running job's log stays raw");
    // Raw ranges starting inside a chunk read from that chunk on.
    const bytes = new TextEncoder().encode(text);
    for (const [s, e] of [[B - 10, B + 70_000], [65_000, 66_000], [0, bytes.length]]) {
      deepEqual(await store.readLog("running", s, e), bytes.subarray(s, e), `raw ${s}-${e}`);
    }
    const size = store.packedSize();
    equal(size.jobs, 1);
    equal(size.bytes, new TextEncoder().encode(text).length);
    ok(size.bytes / size.packedBytes >= 5, `packed ${size.bytes / size.packedBytes}×`);
    equal(new TextDecoder().decode(await store.readLog("done", 0, size.bytes)), text);
    // The saved view (the first MiB of output) is packed too, and reads back whole.
    const state = db.prepare("SELECT state FROM jobs WHERE id = 'done'").get() as {
      state: unknown;
    };
    ok(state.state instanceof Uint8Array, "the finished job's view is stored packed");
    const view = (await store.getJob("done"))!.view;
    equal(view.result, "passed");
    const shown = view.output.split("\n[strider: the rest of the output")[0];
    ok(shown.length > 100_000 && text.startsWith(shown), "the view's output");
    equal((await store.listJobs({ limit: 5 })).records.length, 2);
    // Deleting the job takes its blocks along.
    equal(await store.deleteJob("done"), true);
    equal(
      (db.prepare("SELECT COUNT(*) AS n FROM log_blocks").get() as { n: number }).n,
      0,
    );
    equal(store.packedSize().jobs, 0);
    await store.close();
  });
});

Deno.test("SQLite: packing cut short by a crash is redone on restart, reading stays right", async () => {
  await withStore(async (dir) => {
    const text = buildLog(1.5 * B, 9);
    let store = new SqliteStore(dir);
    const record = job("cut");
    await store.createJob(record);
    run(new Recorder(store, new Hub()), record, text, true);
    await committed(store);
    await store.logsPacked();
    // As if the queen died after writing a wrong first block and before the transaction that
    // marks the log packed and empties its raw chunks.
    const db = store.database;
    db.exec("DELETE FROM log_packed");
    db.prepare("UPDATE log_blocks SET data = ? WHERE n = 0").run(new Uint8Array([1, 2, 3]));
    const restore = db.prepare("UPDATE log_chunks SET text = ? WHERE job_id = 'cut' AND start = ?");
    for (let at = 0, start = 0; at < text.length; at += 65_536) {
      const piece = text.slice(at, at + 65_536);
      restore.run(piece, start);
      start += new TextEncoder().encode(piece).length;
    }
    // Nothing is marked: the raw chunks are read, not the broken block.
    deepEqual(
      await store.readLog("cut", 0, 100_000),
      new TextEncoder().encode(text).subarray(0, 100_000),
    );
    await store.close();
    store = new SqliteStore(dir);
    await store.logsPacked();
    equal(store.packedSize().jobs, 1, "packed again on restart");
    const total = new TextEncoder().encode(text).length;
    equal(new TextDecoder().decode(await store.readLog("cut", 0, total)), text);
    const events = await store.events("cut");
    equal(
      events.map((e) => "text" in e.data && e.data.event === "job:stdout" ? e.data.text : "")
        .join(""),
      text,
    );
    await store.close();
  });
});

Deno.test("SQLite: a job deleted while its log is packed leaves no blocks", async () => {
  await withStore(async (dir) => {
    const store = new SqliteStore(dir);
    const record = job("gone");
    await store.createJob(record);
    run(new Recorder(store, new Hub()), record, buildLog(3 * B, 2), true);
    await committed(store);
    // Packing has started (the commit queued it); delete before it ends.
    equal(await store.deleteJob("gone"), true);
    await store.logsPacked();
    equal(
      (store.database.prepare("SELECT COUNT(*) AS n FROM log_blocks").get() as { n: number }).n,
      0,
    );
    equal(store.packedSize().jobs, 0);
    await store.close();
  });
});

Deno.test("SQLite: GET /log of a packed log streams it whole, and a Range gives 206 with its bytes", async () => {
  await withStore(async (dir) => {
    const store = new SqliteStore(dir);
    const record = job("served");
    await store.createJob(record);
    const text = buildLog(2.5 * B, 4);
    run(new Recorder(store, new Hub()), record, text, true);
    await committed(store);
    await store.logsPacked();
    equal(store.packedSize().jobs, 1);
    const bytes = new TextEncoder().encode(text);
    const loaded = (await store.getJob("served"))!;
    const whole = logResponse(store, loaded);
    equal(whole.status, 200);
    deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    const part = logResponse(store, loaded, `bytes=${B - 5}-${2 * B + 4}`);
    equal(part.status, 206);
    equal(part.headers.get("content-range"), `bytes ${B - 5}-${2 * B + 4}/${bytes.length}`);
    deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(B - 5, 2 * B + 5));
    const tail = logResponse(store, loaded, "bytes=-100");
    deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(bytes.length - 100));
    await store.close();
  });
});
