/**
 * The worker's admission, local queue, draining, --max-jobs, leases and take-back answers,
 * driven frame by frame without a socket or a process: runs are fakes the test ends at will.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type {
  AttemptResult,
  DispatchedJob,
  DroneInfo,
  JobEventBody,
  QueenFrame,
  WorkerFrame,
  WorkerJobEvent,
} from "../protocol/mod.ts";
import { Outbox } from "../worker/outbox.ts";
import { type CoreRun, WorkerCore } from "../worker/worker_core.ts";

const LEASE = "lease-token-0123456789";

class FakeRun implements CoreRun {
  stopped: string | undefined;
  readonly #end = Promise.withResolvers<AttemptResult>();
  constructor(
    readonly id: string,
    readonly attempt: number,
    readonly emit: (body: JobEventBody) => void,
  ) {}
  run(): Promise<AttemptResult> {
    return this.#end.promise;
  }
  stop(reason: "cancelled" | "timeout"): void {
    this.stopped ??= reason;
  }
  end(result: AttemptResult = "passed"): void {
    this.#end.resolve(result);
  }
}

function harness(options: { capacity: number; maxJobs?: number }) {
  const spoolDir = Deno.makeTempDirSync();
  const sent: WorkerFrame[] = [];
  const events: WorkerJobEvent[] = [];
  const runs: FakeRun[] = [];
  let idle = 0;
  let clock = 1_000;
  const outbox = new Outbox((event) => {
    if (!core.ready) return false;
    events.push(event);
    return true;
  }, { spoolDir });
  const core: WorkerCore = new WorkerCore({
    ...options,
    identity: {
      name: "w1",
      version: "test",
      protocol: 2,
      speed: 1,
      plugins: [],
      labels: [],
    },
    events: outbox,
    send: (frame) => sent.push(frame),
    createRun: (job, attempt, emit) => {
      const run = new FakeRun(job.job_id, attempt, emit);
      runs.push(run);
      return run;
    },
    idle: () => idle++,
    log: () => {},
    now: () => clock,
  });
  core.receive({ event: "drone:query-info" });
  const dispatch = (id: string, attempt = 1) =>
    core.receive(
      {
        event: "queue:new",
        attempt,
        lease: `${LEASE}-${id}-${attempt}`,
        job: { job_id: id } as DispatchedJob,
      } as QueenFrame,
    );
  const run = (id: string, attempt = 1) => runs.find((r) => r.id === id && r.attempt === attempt);
  const infos = () => sent.filter((f): f is DroneInfo => f.event === "drone:info");
  return {
    core,
    outbox,
    sent,
    events,
    runs,
    dispatch,
    run,
    infos,
    idle: () => idle,
    tick: (ms: number) => clock += ms,
    cleanup: () => Deno.removeSync(spoolDir, { recursive: true }),
  };
}

/** Lets the runs' settled promises reach the core. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("past its capacity the worker queues jobs, says so, and starts them as slots free", async () => {
  const h = harness({ capacity: 2 });
  h.dispatch("a");
  h.dispatch("b");
  h.dispatch("c");
  deepEqual(h.runs.map((r) => r.id), ["a", "b"]);
  equal(h.core.running, 2);
  equal(h.core.waiting, 1);
  const queued = h.events.filter((e) => e.event === "job:queued");
  deepEqual(queued.map((e) => [e.id, e.attempt, e.seq, "timestamp" in e && e.timestamp]), [
    ["c", 1, 1, 1_000],
  ]);
  // The same dispatch again (a resend after a reconnect) is not a second job.
  h.dispatch("c");
  h.dispatch("a");
  equal(h.runs.length, 2);
  equal(h.core.waiting, 1);
  h.run("a")!.end();
  await settle();
  deepEqual(h.runs.map((r) => r.id), ["a", "b", "c"]);
  equal(h.core.waiting, 0);
  deepEqual(h.core.results(), { passed: 1 });
  equal(h.idle(), 0, "a worker not draining never stops on its own");
  h.cleanup();
});

Deno.test("queue:take gives back a waiting job and refuses a started one", () => {
  const h = harness({ capacity: 1 });
  h.dispatch("a");
  h.dispatch("b");
  h.run("a")!.emit({ event: "job:started", timestamp: 1 } as JobEventBody);
  h.core.receive({ event: "queue:take", id: "b", attempt: 1 });
  h.core.receive({ event: "queue:take", id: "a", attempt: 1 });
  // An attempt never seen here is not taken either.
  h.core.receive({ event: "queue:take", id: "zzz", attempt: 3 });
  deepEqual(h.sent.filter((f) => f.event === "queue:taken"), [
    { event: "queue:taken", id: "b", attempt: 1, taken: true },
    { event: "queue:taken", id: "a", attempt: 1, taken: false },
    { event: "queue:taken", id: "zzz", attempt: 3, taken: false },
  ]);
  equal(h.core.waiting, 0);
  // The given-back job is no longer claimed on reconnect: its events and lease are gone.
  deepEqual(h.core.info().running.map((r) => r.id), ["a"]);
  h.cleanup();
});

Deno.test("draining finishes running and waiting jobs, then says idle once", async () => {
  const h = harness({ capacity: 1 });
  h.dispatch("a");
  h.dispatch("b");
  h.core.receive({ event: "drone:drain" });
  equal(h.core.draining, true);
  equal(h.infos().at(-1)!.draining, true, "the queen is told at once");
  h.core.drain();
  equal(h.infos().filter((i) => i.draining).length, 1, "a second drain says nothing new");
  equal(h.idle(), 0);
  h.run("a")!.end("failed");
  await settle();
  equal(h.idle(), 0, "the waiting job still runs");
  ok(h.run("b"));
  h.run("b")!.end();
  await settle();
  equal(h.idle(), 1);
  deepEqual(h.core.results(), { failed: 1, passed: 1 });
  // Later run ends (none left) or drains do not say idle twice.
  h.core.drain();
  h.core.stop();
  equal(h.idle(), 1);
  h.cleanup();
});

Deno.test("an ephemeral worker drains as soon as it holds its last job", async () => {
  const h = harness({ capacity: 1, maxJobs: 2 });
  equal(h.core.info().accepts, 2);
  h.dispatch("a");
  equal(h.core.info().accepts, 1);
  equal(h.core.draining, false);
  h.dispatch("b");
  equal(h.core.draining, true, "it says so while the last job still waits");
  equal(h.infos().at(-1)!.accepts, 0);
  h.run("a")!.end();
  await settle();
  equal(h.idle(), 0);
  h.run("b")!.end();
  await settle();
  equal(h.idle(), 1);
  h.cleanup();
});

Deno.test("a dropped connection gives waiting jobs up; running ones are claimed with their lease", async () => {
  const h = harness({ capacity: 1 });
  h.dispatch("a");
  h.dispatch("b");
  h.run("a")!.emit({ event: "job:started", timestamp: 1 } as JobEventBody);
  h.core.disconnected();
  equal(h.core.ready, false);
  equal(h.core.waiting, 0);
  // Events made while away wait for the next connection's drone:info.
  h.run("a")!.emit({ event: "job:cmd:stdout", num: 0, text: "away\n" });
  const before = h.events.length;
  h.core.receive({ event: "drone:query-info" });
  const info = h.infos().at(-1)!;
  deepEqual(info.running, [{ id: "a", attempt: 1, seq: 2, lease: `${LEASE}-a-1` }]);
  ok(h.events.length > before, "the held events are resent once the queen has drone:info");
  // The waiting job went back to the queen: it does not start here when a slot frees.
  h.run("a")!.end();
  await settle();
  deepEqual(h.runs.map((r) => r.id), ["a"]);
  h.cleanup();
});

Deno.test("stop gives waiting jobs back unasked and cancels running ones", async () => {
  const h = harness({ capacity: 1 });
  h.dispatch("a");
  h.dispatch("b");
  h.core.stop();
  deepEqual(h.sent.filter((f) => f.event === "queue:taken"), [
    { event: "queue:taken", id: "b", attempt: 1, taken: true },
  ]);
  equal(h.run("a")!.stopped, "cancelled");
  equal(h.idle(), 0, "cleanup still runs");
  h.run("a")!.end("cancelled");
  await settle();
  equal(h.idle(), 1);
  h.cleanup();
});

Deno.test("a cancel reaches a running job, and ends a waiting one with the clock's time", () => {
  const h = harness({ capacity: 1 });
  h.dispatch("a");
  h.dispatch("b");
  h.core.receive({ event: "job:cancel", id: "a", attempt: 1, reason: "timeout" });
  equal(h.run("a")!.stopped, "timeout");
  h.tick(500);
  h.core.receive({ event: "job:cancel", id: "b", attempt: 1, reason: "cancelled" });
  equal(h.core.waiting, 0);
  const done = h.events.find((e) => e.id === "b" && e.event === "job:done");
  ok(done && done.event === "job:done");
  equal(done.result, "cancelled");
  equal(done.timestamp, 1_500);
  h.cleanup();
});

Deno.test("a newer attempt supersedes the running one, whose late events are dropped", async () => {
  const h = harness({ capacity: 2 });
  h.dispatch("a", 1);
  const first = h.run("a", 1)!;
  first.emit({ event: "job:started", timestamp: 1 } as JobEventBody);
  h.dispatch("a", 2);
  equal(first.stopped, "cancelled");
  ok(h.run("a", 2));
  first.emit({ event: "job:cmd:stdout", num: 0, text: "late\n" });
  ok(!h.events.some((e) => e.event === "job:cmd:stdout"), "a superseded run's output is not sent");
  // The old run ending must not free the new attempt's slot or workspace.
  first.end("cancelled");
  await settle();
  equal(h.core.running, 1);
  ok(h.core.inUse("a.2"));
  ok(!h.core.inUse("a.1"));
  deepEqual(h.core.info().running.map((r) => [r.id, r.attempt]), []);
  h.cleanup();
});

Deno.test("acks, pings and the queen's errors are answered without touching jobs", () => {
  const h = harness({ capacity: 1 });
  h.dispatch("a");
  h.run("a")!.emit({ event: "job:started", timestamp: 1 } as JobEventBody);
  h.core.receive({ event: "job:ack", id: "a", attempt: 1, seq: 1 });
  equal(h.outbox.pending(), 0);
  h.core.receive({ event: "ping", t: 42 });
  deepEqual(h.sent.at(-1), { event: "pong", t: 42 });
  h.core.receive({ event: "error", message: "x" });
  equal(h.core.running, 1);
  h.cleanup();
});
