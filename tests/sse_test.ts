/**
 * The event stream's one loop (`queen/sse.ts`): a client far slower than the job, and live
 * events that skip some (a hole the store fills), still get every event once, in order.
 */
import { deepEqual, equal } from "node:assert/strict";
import type { RecordedEvent } from "../protocol/mod.ts";
import { JobSpecSchema } from "../protocol/mod.ts";
import { Hub } from "../queen/hub.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { newRecord, Recorder } from "../queen/recorder.ts";
import { jobEventStream } from "../queen/sse.ts";
import type { JobViews } from "../queen/sse.ts";

const T = Date.parse("2026-11-30T12:00:00Z");

function setup() {
  const store = new MemoryStore();
  const hub = new Hub();
  const recorder = new Recorder(store, hub);
  const spec = JobSpecSchema.parse({
    job_id: "s",
    repo: { url: "https://git.example/app.git" },
    ref: { branch: "main" },
  });
  const record = newRecord("s", spec, T);
  let finished = false;
  const views: JobViews = {
    hub,
    store,
    job: (id) => store.getJob(id),
    isFinished: () => finished,
  };
  let seq = 0;
  const output = (text: string) =>
    recorder.record(record, { event: "job:stdout", id: "s", attempt: 1, seq: ++seq, text }, T);
  const done = () => {
    finished = true;
    recorder.record(record, {
      event: "job:done",
      id: "s",
      attempt: 1,
      seq: 0,
      timestamp: T,
      result: "passed",
    }, T);
  };
  return { store, hub, record, views, output, done };
}

/** Every event of a finished stream, parsed. */
async function readAll(response: Response): Promise<RecordedEvent[]> {
  const text = await response.text();
  return text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
}

const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

Deno.test("a client reading nothing while 8 MB is published still gets every event once, in order", async () => {
  const { store, record, views, output, done } = setup();
  await store.createJob(record);
  output("first\n");
  const response = jobEventStream(views, record, 0);
  await turn();
  // Far more than a stream holds for a client (1 MiB): the rest is read from the store later.
  const chunk = "x".repeat(64 * 1024 - 1) + "\n";
  for (let i = 0; i < 128; i++) {
    output(chunk);
    if (i % 16 === 0) await turn();
  }
  done();
  const events = await readAll(response);
  deepEqual(events.map((e) => e.n), Array.from({ length: 130 }, (_, i) => i + 1));
  equal(events.at(-1)!.data.event, "job:done");
  const bytes = events.reduce((sum, e) => sum + ("text" in e.data ? e.data.text.length : 0), 0);
  equal(bytes, 6 + 128 * 64 * 1024);
});

Deno.test("a live event after a hole: the hole is read from the store, nothing twice", async () => {
  const { store, hub, record, views, output, done } = setup();
  await store.createJob(record);
  output("one\n");
  const response = jobEventStream(views, record, 0);
  await turn();
  // Recorded without reaching this hub (as if published elsewhere first), then one that does.
  const silent = new Recorder(store, new Hub());
  for (let i = 0; i < 3; i++) {
    silent.record(
      record,
      { event: "job:stdout", id: "s", attempt: 1, seq: 10 + i, text: "x\n" },
      T,
    );
  }
  output("after the hole\n");
  // A repeat of an old event from another path changes nothing.
  hub.publish("s", (await store.events("s", 0))[0], "remote");
  await turn();
  done();
  const events = await readAll(response);
  deepEqual(events.map((e) => e.n), [1, 2, 3, 4, 5, 6]);
});

Deno.test("a finished job's stream replays and ends; a resume past its end ends at once", async () => {
  const { store, record, views, output, done } = setup();
  await store.createJob(record);
  for (let i = 0; i < 40; i++) output(`line-${i}\n`);
  done();
  deepEqual(
    (await readAll(jobEventStream(views, record, 0))).map((e) => e.n),
    Array.from({ length: 41 }, (_, i) => i + 1),
  );
  deepEqual(await readAll(jobEventStream(views, record, 41)), []);
  deepEqual((await readAll(jobEventStream(views, record, 39))).map((e) => e.n), [40, 41]);
});
