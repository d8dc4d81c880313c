import { deepEqual, equal, ok } from "node:assert/strict";
import type { WorkerJobEvent } from "../protocol/mod.ts";
import { Outbox } from "../worker/outbox.ts";

function line(i: number) {
  return { event: "job:cmd:stdout" as const, num: 0, text: `line ${i} ${"x".repeat(100)}\n` };
}

const textOf = (e: WorkerJobEvent) =>
  "text" in e ? e.text.split(" ").slice(0, 2).join(" ") : e.event;

Deno.test("the outbox numbers events per attempt and forgets them once acknowledged", async () => {
  const sent: WorkerJobEvent[] = [];
  const outbox = new Outbox((e) => (sent.push(e), true), { spoolDir: await Deno.makeTempDir() });
  outbox.push("a", 1, line(1));
  outbox.push("a", 1, line(2));
  outbox.push("b", 2, line(1));
  deepEqual(sent.map((e) => [e.id, e.attempt, e.seq]), [["a", 1, 1], ["a", 1, 2], ["b", 2, 1]]);
  equal(outbox.pending(), 3);
  outbox.ack("a", 1, 2);
  equal(outbox.pending(), 1);
  deepEqual(outbox.running(), [{ id: "a", attempt: 1, seq: 2 }, { id: "b", attempt: 2, seq: 1 }]);
});

Deno.test("the outbox resends exactly the unacknowledged events after a reconnect", async () => {
  let connected = true;
  const sent: WorkerJobEvent[] = [];
  const outbox = new Outbox((e) => connected && (sent.push(e), true), {
    spoolDir: await Deno.makeTempDir(),
  });
  for (let i = 1; i <= 5; i++) outbox.push("a", 1, line(i));
  outbox.ack("a", 1, 2);
  connected = false;
  for (let i = 6; i <= 7; i++) outbox.push("a", 1, line(i));
  connected = true;
  sent.length = 0;
  outbox.resend();
  deepEqual(sent.map((e) => e.seq), [3, 4, 5, 6, 7]);
});

Deno.test("past its memory limit the outbox spools to disk and keeps the order", async () => {
  const dir = await Deno.makeTempDir();
  let connected = false;
  const sent: WorkerJobEvent[] = [];
  const outbox = new Outbox((e) => connected && (sent.push(e), true), {
    spoolDir: dir,
    memoryLimit: 2_000,
  });
  for (let i = 1; i <= 200; i++) outbox.push("job", 1, line(i));
  outbox.push("job", 1, { event: "job:done", timestamp: 1, result: "passed" });
  ok(outbox.memoryBytes() <= 2_000, `memory holds ${outbox.memoryBytes()} bytes`);
  equal(outbox.pending(), 201);
  ok([...Deno.readDirSync(dir)].length === 1, "one spool file");
  // Reconnected: the queen acknowledges whatever it receives, as it receives it.
  connected = true;
  outbox.resend();
  while (outbox.pending() > 0) {
    const last = sent[sent.length - 1];
    outbox.ack(last.id, last.attempt, last.seq);
  }
  deepEqual(sent.map((e) => e.seq), Array.from({ length: 201 }, (_, i) => i + 1));
  equal(textOf(sent[150]), "line 151");
  equal(sent[200].event, "job:done");
  deepEqual([...Deno.readDirSync(dir)], [], "the spool file is removed");
  deepEqual(outbox.running(), []);
});

Deno.test("a superseded attempt is dropped with its spool", async () => {
  const dir = await Deno.makeTempDir();
  const outbox = new Outbox(() => false, { spoolDir: dir, memoryLimit: 500 });
  for (let i = 1; i <= 50; i++) outbox.push("job", 1, line(i));
  outbox.drop("job", 1);
  equal(outbox.pending(), 0);
  deepEqual([...Deno.readDirSync(dir)], []);
  equal(await outbox.drained(10), true);
});

Deno.test("whenRoom holds a job's output back until the queen acknowledges, within a bound", async () => {
  const sent: WorkerJobEvent[] = [];
  const outbox = new Outbox((e) => (sent.push(e), true), {
    spoolDir: await Deno.makeTempDir(),
    memoryLimit: 1_000,
  });
  await outbox.whenRoom("job", 1, 10); // no events yet: room at once
  for (let i = 1; i <= 10; i++) outbox.push("job", 1, line(i));
  let released = false;
  const waiting = outbox.whenRoom("job", 1, 5_000).then(() => released = true);
  await new Promise((r) => setTimeout(r, 20));
  equal(released, false, "full: the output waits");
  while (outbox.pending() > 0) {
    const last = sent[sent.length - 1];
    outbox.ack(last.id, last.attempt, last.seq);
  }
  await waiting;
  equal(released, true);
  const started = Date.now();
  for (let i = 11; i <= 30; i++) outbox.push("job", 1, line(i));
  await outbox.whenRoom("job", 1, 50);
  ok(Date.now() - started < 2_000, "the wait is bounded when no acknowledgement comes");
});
