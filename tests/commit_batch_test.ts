/**
 * Commit batching apart from SQL (queen/commit_batch.ts), with a `write` that takes its time as a
 * server database's would: acknowledgements wait for the commit, reads see what is in flight,
 * and a state saved during a write is not lost.
 */
import { deepEqual, equal } from "node:assert/strict";
import { CommitBatcher } from "../queen/commit_batch.ts";
import type { Batch } from "../queen/commit_batch.ts";
import { newRecord } from "../queen/recorder.ts";
import { JobSpecSchema } from "../protocol/mod.ts";
import type { RecordedEvent } from "../protocol/mod.ts";

const spec = JobSpecSchema.parse({ repo: { url: "/tmp/repo" }, ref: { branch: "main" } });
const output = (n: number, text: string): RecordedEvent => ({
  n,
  at: 0,
  data: { event: "job:stdout", id: "j", attempt: 1, seq: n, text },
});

Deno.test("an asynchronous write: callbacks wait for it, reads see what is in flight", async () => {
  const writes: { batch: Batch; states: string[]; finish: () => void }[] = [];
  const batcher = new CommitBatcher((batch) => {
    const { promise, resolve } = Promise.withResolvers<void>();
    // Serialized at once, as a network store must: the records change while the write waits.
    writes.push({ batch, states: batch.states.map((r) => r.view.status), finish: resolve });
    return promise;
  }, { batchMs: 1 });
  const record = newRecord("j", spec, 0);
  batcher.append({ id: "j", event: output(1, "a\n"), log: { start: 0, text: "a\n", bytes: 2 } });
  batcher.save(record);
  const acked: number[] = [];
  batcher.afterCommit(() => acked.push(1));
  const first = batcher.flush();
  equal(writes.length, 1);
  deepEqual(writes[0].states, ["queued"]);
  // While the first write waits: more arrives, and a second flush queues behind it.
  record.view.status = "started";
  batcher.append({ id: "j", event: output(2, "b\n"), log: { start: 2, text: "b\n", bytes: 2 } });
  batcher.save(record);
  batcher.afterCommit(() => acked.push(2));
  deepEqual(batcher.pending("j").map((p) => p.event.n), [1, 2], "reads see both");
  const second = batcher.flush();
  deepEqual(acked, [], "nothing acknowledged before its commit");
  equal(writes.length, 1, "one write at a time");
  writes[0].finish();
  await first;
  deepEqual(acked, [1]);
  // The second batch goes out once the first is done.
  await new Promise((r) => setTimeout(r, 0));
  equal(writes.length, 2);
  deepEqual(writes[1].batch.events.map((p) => p.event.n), [2]);
  deepEqual(writes[1].states, ["started"], "the state saved during the first write");
  writes[1].finish();
  await second;
  deepEqual(acked, [1, 2]);
  deepEqual(batcher.pending("j"), []);
  await batcher.close();
});

Deno.test("a synchronous write commits before flush returns; a quiet state waits its turn", () => {
  const batches: Batch[] = [];
  const batcher = new CommitBatcher((batch) => void batches.push(batch), {
    batchMs: 1,
    stateEveryMs: 60_000,
  });
  const record = newRecord("j", spec, 0);
  batcher.save(record);
  batcher.flush();
  equal(batches.length, 1, "a new state is written at once");
  record.view.waiting = "waiting for a drone to connect";
  batcher.save(record);
  batcher.flush();
  equal(batches.length, 1, "the same status again waits for stateEveryMs");
  equal(batcher.isDirty("j"), true);
  batcher.flush(true);
  equal(batches.length, 2, "unless every state is asked for (close, a read of it)");
  void batcher.close();
});

Deno.test("a commit asked for soon (a dispatch) does not wait for the batch timer, and is one write", async () => {
  let writes = 0;
  // A batch timer no test would wait for: only "soon" can commit before it.
  const batcher = new CommitBatcher(() => {
    writes++;
  }, { batchMs: 60_000 });
  const sent: number[] = [];
  for (let i = 1; i <= 3; i++) {
    batcher.append({ id: "j", event: output(i, `${i}\n`) });
    batcher.afterCommit(() => sent.push(i), true);
  }
  const late: number[] = [];
  batcher.append({ id: "j", event: output(4, "4\n") });
  equal(sent.length, 0, "nothing is sent before the synchronous step ends");
  await Promise.resolve();
  deepEqual(sent, [1, 2, 3]);
  equal(writes, 1, "one commit for the whole pass");
  batcher.afterCommit(() => late.push(4));
  await Promise.resolve();
  deepEqual(late, [], "an ordinary callback waits for the timer");
  await batcher.close();
  deepEqual(late, [4]);
});
