/**
 * The queen's core without sockets: dispatch order, fencing, duplicate drops, re-attach, leases
 * and serialization, driven with frames as a worker would send them.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import type { JobSpecInput, QueenFrame } from "../protocol/mod.ts";
import { JobSpecSchema, PROTOCOL_VERSION } from "../protocol/mod.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { ConflictError } from "../queen/errors.ts";
import type { Drone } from "../queen/drone.ts";
import { SqliteStore } from "../queen/sqlite_store.ts";
import type { Store } from "../queen/store.ts";
import { FakeClock } from "../queen/clock.ts";

/** Stands in for a worker's WebSocket: records what the queen sends. */
class FakeSocket {
  readyState: number = WebSocket.OPEN;
  sent: QueenFrame[] = [];
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = WebSocket.CLOSED;
  }
  of<E extends QueenFrame["event"]>(event: E) {
    return this.sent.filter((f): f is Extract<QueenFrame, { event: E }> => f.event === event);
  }
}

function setup(
  options: {
    leaseMs?: number;
    maxAttempts?: number;
    store?: Store;
    maxLogBytes?: number;
    leaseKey?: string;
    defaultTimeout?: number;
    queueTimeoutMs?: number;
    /** What a restarted queen takes over (`QueenCore.unfinished`). */
    unfinished?: Awaited<ReturnType<typeof QueenCore.unfinished>>;
  } = {},
) {
  // Time moves only when a test advances it: leases of a minute run out without sleeping.
  const clock = new FakeClock();
  const core = new QueenCore(options.store ?? new MemoryStore(), {
    clock,
    leaseMs: options.leaseMs ?? 60_000,
    maxAttempts: options.maxAttempts ?? 3,
    maxLogBytes: options.maxLogBytes,
    leaseKey: options.leaseKey,
    defaultTimeout: options.defaultTimeout,
    queueTimeoutMs: options.queueTimeoutMs,
    log: () => {},
  }, options.unfinished);
  const connect = (
    name: string,
    info: {
      capacity?: number;
      speed?: number;
      plugins?: string[];
      labels?: string[];
      running?: unknown[];
    } = {},
  ) => {
    const socket = new FakeSocket();
    const drone = core.connect(socket as unknown as WebSocket);
    core.receive(
      drone,
      JSON.stringify({
        event: "drone:info",
        name,
        version: "test",
        protocol: PROTOCOL_VERSION,
        speed: info.speed ?? 1,
        capacity: info.capacity ?? 1,
        plugins: info.plugins ?? ["env", "custom"],
        labels: info.labels ?? [],
        running: info.running ?? [],
      }),
    );
    return { socket, drone };
  };
  const submit = async (extra: Partial<JobSpecInput> = {}) =>
    (await core.submit(
      JobSpecSchema.parse({ repo: { url: "/tmp/repo" }, ref: { branch: "main" }, ...extra }),
    )).id;
  const send = (drone: Drone, frame: Record<string, unknown>) =>
    core.receive(drone, JSON.stringify(frame));
  return { core, connect, submit, send, clock };
}

/** Resolves once the acknowledgements a drone gathered went out (its timer of 0 ms fired). */
const acksSent = () => new Promise((r) => setTimeout(r, 0));

/** The lease token the queen sent `socket` with the dispatch of `id` (the latest one). */
function leaseOf(socket: FakeSocket, id: string): string {
  const frame = socket.of("queue:new").findLast((f) => f.job.job_id === id);
  if (!frame) throw new Error(`job ${id} was not dispatched to this socket`);
  return frame.lease;
}

const started = (id: string, attempt: number, seq: number) => ({
  event: "job:started",
  id,
  attempt,
  seq,
  timestamp: Date.now(),
});
const done = (id: string, attempt: number, seq: number, result = "passed") => ({
  event: "job:done",
  id,
  attempt,
  seq,
  timestamp: Date.now(),
  result,
});

Deno.test("the queue goes out by priority, then age, as drones free up", async () => {
  const { core, connect, submit, send } = setup();
  const low = await submit({ priority: -1 });
  const normal = await submit();
  const high = await submit({ priority: 5 });
  const { socket, drone } = connect("w1", { capacity: 1 });
  // A full drone still gets jobs (the seed's rule), up to one waiting per slot; the order of
  // dispatch is the queue's order.
  deepEqual(socket.of("queue:new").map((f) => f.job.job_id), [high, normal]);
  match((await core.job(low))!.view.waiting ?? "", /free slot/);
  send(drone, started(high, 1, 1));
  send(drone, done(high, 1, 2));
  equal((await core.job(high))?.view.result, "passed");
  deepEqual(socket.of("queue:new").map((f) => f.job.job_id), [high, normal, low]);
  core.close();
});

Deno.test("a job event from a drone that does not hold the attempt is refused", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const a = connect("a");
  const b = connect("b");
  const holder = a.socket.of("queue:new").length ? a : b;
  const other = holder === a ? b : a;
  send(other.drone, started(id, 1, 1));
  match(other.socket.of("error")[0].message, /does not hold that attempt/);
  equal((await core.store.events(id)).filter((e) => e.data.event === "job:started").length, 0);
  send(holder.drone, started(id, 1, 1));
  equal((await core.job(id))?.view.status, "started");
  core.close();
});

Deno.test("duplicate events are dropped and acknowledged again; gaps are refused", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const { socket, drone } = connect("w");
  send(drone, started(id, 1, 1));
  send(drone, started(id, 1, 1));
  send(drone, { event: "job:stdout", id, attempt: 1, seq: 3, text: "skipped a seq" });
  equal((await core.store.events(id)).filter((e) => e.data.event === "job:started").length, 1);
  match(socket.of("error")[0].message, /expected seq 2, got 3/);
  await acksSent();
  deepEqual(socket.of("job:ack").map((a) => a.seq), [1]);
  core.close();
});

Deno.test("a worker back within the lease re-attaches its attempt; no second run", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const first = connect("w");
  send(first.drone, started(id, 1, 1));
  core.disconnect(first.drone);
  const lease = leaseOf(first.socket, id);
  const second = connect("w", { running: [{ id, attempt: 1, seq: 1, lease }] });
  equal(second.socket.of("queue:new").length, 0);
  equal(second.socket.of("job:cancel").length, 0);
  send(second.drone, done(id, 1, 2));
  const view = (await core.job(id))!.view;
  equal(view.result, "passed");
  equal(view.attempts.length, 1);
  core.close();
});

Deno.test("a reconnect seen before the old socket closed replaces the stale connection", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const first = connect("w");
  send(first.drone, started(id, 1, 1));
  const lease = leaseOf(first.socket, id);
  const second = connect("w", { running: [{ id, attempt: 1, seq: 1, lease }] });
  equal(first.socket.readyState, WebSocket.CLOSED);
  equal(core.drones.size, 1);
  send(second.drone, done(id, 1, 2));
  equal((await core.job(id))!.view.result, "passed");
  core.close();
});

Deno.test("past the lease an attempt is re-queued, and the stale worker is fenced off", async () => {
  const { core, connect, submit, send, clock } = setup({ leaseMs: 30_000 });
  const id = await submit();
  const stale = connect("stale");
  send(stale.drone, started(id, 1, 1));
  core.disconnect(stale.drone);
  clock.advance(29_000);
  equal((await core.job(id))!.view.status, "started", "still within the lease");
  clock.advance(2_000);
  equal((await core.job(id))!.view.status, "queued");
  match((await core.job(id))!.view.waiting ?? "", /past its lease/);
  const fresh = connect("fresh");
  equal(fresh.socket.of("queue:new")[0].attempt, 2);
  send(fresh.drone, started(id, 2, 1));
  // The stale worker comes back, still running attempt 1: it is told to abort it.
  const back = connect("stale", {
    running: [{ id, attempt: 1, seq: 5, lease: leaseOf(stale.socket, id) }],
  });
  deepEqual(back.socket.of("job:cancel").map((c) => [c.attempt, c.reason]), [[1, "superseded"]]);
  send(back.drone, done(id, 1, 2, "failed"));
  send(fresh.drone, done(id, 2, 2));
  const view = (await core.job(id))!.view;
  equal(view.result, "passed");
  deepEqual(view.attempts.map((a) => [a.attempt, a.drone, a.result]), [[1, "stale", null], [
    2,
    "fresh",
    "passed",
  ]]);
  core.close();
});

Deno.test("a job whose attempts are used up ends lost", async () => {
  const { core, connect, submit, send, clock } = setup({ leaseMs: 10_000, maxAttempts: 1 });
  const id = await submit();
  const w = connect("w");
  send(w.drone, started(id, 1, 1));
  core.disconnect(w.drone);
  clock.advance(10_001);
  const view = (await core.job(id))!.view;
  equal(view.result, "lost");
  match(view.error ?? "", /no attempts left/);
  core.close();
});

Deno.test("serialized jobs of one branch never run at once; other branches go ahead", async () => {
  const { core, connect, submit, send } = setup();
  const first = await submit({ serialize: true });
  const second = await submit({ serialize: true });
  const otherBranch = await submit({ serialize: true, ref: { branch: "dev" } });
  const { socket, drone } = connect("w", { capacity: 4 });
  deepEqual(socket.of("queue:new").map((f) => f.job.job_id), [first, otherBranch]);
  match((await core.job(second))!.view.waiting ?? "", new RegExp(`waiting for job ${first}`));
  send(drone, started(first, 1, 1));
  send(drone, done(first, 1, 2));
  deepEqual(socket.of("queue:new").map((f) => f.job.job_id), [first, otherBranch, second]);
  core.close();
});

Deno.test("a job needing a plugin waits until a drone with it connects", async () => {
  const { core, connect, submit } = setup();
  const id = await submit({ plugins: ["node"] });
  const plain = connect("plain");
  equal(plain.socket.of("queue:new").length, 0);
  match((await core.job(id))!.view.waiting ?? "", /plugins: node/);
  const able = connect("able", { plugins: ["env", "custom", "node"] });
  equal(able.socket.of("queue:new")[0].job.job_id, id);
  core.close();
});

Deno.test("cancelling a queued job ends it at once; a running one is told to stop", async () => {
  const { core, connect, submit, send } = setup();
  const queued = await submit({ labels: ["nowhere"] });
  ok(core.cancel(queued));
  equal((await core.job(queued))!.view.result, "cancelled");
  const running = await submit();
  const { socket, drone } = connect("w");
  send(drone, started(running, 1, 1));
  ok(core.cancel(running));
  deepEqual(socket.of("job:cancel").map((c) => [c.id, c.reason]), [[running, "cancelled"]]);
  send(drone, done(running, 1, 2, "cancelled"));
  equal(core.cancel(running), false);
  core.close();
});

Deno.test("a drone speaking another protocol version is refused", () => {
  const { core } = setup();
  const socket = new FakeSocket();
  const drone = core.connect(socket as unknown as WebSocket);
  core.receive(
    drone,
    JSON.stringify({
      event: "drone:info",
      name: "future",
      version: "9",
      protocol: PROTOCOL_VERSION + 1,
      speed: 1,
      capacity: 1,
      plugins: [],
      labels: [],
      running: [],
    }),
  );
  match(socket.of("error")[0].message, /protocol/);
  equal(core.drones.size, 0);
  core.close();
});

Deno.test("a drone flooding frames is cut off; the others carry on", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const honest = connect("honest");
  const flood = connect("flood");
  for (let i = 0; i < 300_000 && !flood.drone.closed; i++) {
    send(flood.drone, { event: "pong", t: i });
  }
  ok(flood.drone.closed, "the flooding drone was disconnected");
  match(flood.socket.of("error").at(-1)?.message ?? "", /too many frames/);
  equal(core.drones.size, 1);
  const holder = honest.socket.of("queue:new").length ? honest : undefined;
  ok(holder, "the job went to the honest drone");
  send(honest.drone, started(id, 1, 1));
  send(honest.drone, done(id, 1, 2));
  equal((await core.job(id))!.view.result, "passed");
  core.close();
});

Deno.test("--allow-repo refuses jobs for other repositories, naming the field", async () => {
  const core = new QueenCore(new MemoryStore(), {
    leaseMs: 1000,
    maxAttempts: 1,
    log: () => {},
    allowRepo: ["https://git.example/ours/*", "/srv/repos/*"],
  });
  try {
    const spec = (url: string) => JobSpecSchema.parse({ repo: { url }, ref: { branch: "main" } });
    ok((await core.submit(spec("https://git.example/ours/app.git"))).id);
    ok((await core.submit(spec("/srv/repos/tool"))).id);
    await rejects(
      () => core.submit(spec("https://git.example/theirs/app.git")),
      /repo\.url: .* not allowed/,
    );
    await rejects(() => core.submit(spec("https://git.example/oursX/app.git")), /not allowed/);
  } finally {
    core.close();
  }
});

Deno.test("a cancel whose frame was lost still stops the job: resent on reconnect", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const first = connect("w");
  send(first.drone, started(id, 1, 1));
  first.socket.close(); // the connection is dying: the cancel frame goes nowhere
  ok(core.cancel(id));
  equal(first.socket.of("job:cancel").length, 0);
  core.disconnect(first.drone);
  const back = connect("w", {
    running: [{ id, attempt: 1, seq: 1, lease: leaseOf(first.socket, id) }],
  });
  deepEqual(back.socket.of("job:cancel").map((c) => [c.id, c.reason]), [[id, "cancelled"]]);
  core.close();
});

Deno.test("a cancelled job whose drone never returns ends cancelled, not retried", async () => {
  const { core, connect, submit, send, clock } = setup({ leaseMs: 20_000 });
  const id = await submit();
  const first = connect("w");
  send(first.drone, started(id, 1, 1));
  first.socket.close();
  core.cancel(id);
  core.disconnect(first.drone);
  clock.advance(20_001);
  const view = (await core.job(id))!.view;
  equal(view.result, "cancelled");
  equal(view.attempts.length, 1);
  core.close();
});

Deno.test("after a restart, output past the log cap does not open a gap in seq", async () => {
  const dir = await Deno.makeTempDir();
  let store = new SqliteStore(dir);
  const leaseKey = "restart-test-lease-key";
  let { core, connect, submit, send } = setup({ store, maxLogBytes: 50, leaseKey });
  const id = await submit();
  let w = connect("w");
  send(w.drone, started(id, 1, 1));
  for (let seq = 2; seq <= 6; seq++) {
    send(w.drone, { event: "job:stdout", id, attempt: 1, seq, text: "x".repeat(30) + "\n" });
  }
  await new Promise((r) => store.afterCommit(() => r(undefined))); // committed
  await acksSent();
  deepEqual(w.socket.of("job:ack").at(-1)?.seq, 6);
  core.close();
  await store.close();
  store = new SqliteStore(dir);
  const lease = leaseOf(w.socket, id);
  const unfinished = await QueenCore.unfinished(store);
  ({ core, connect, send } = setup({ store, maxLogBytes: 50, leaseKey, unfinished }));
  w = connect("w", { running: [{ id, attempt: 1, seq: 6, lease }] });
  send(w.drone, done(id, 1, 7));
  equal(w.socket.of("error").length, 0, JSON.stringify(w.socket.of("error")));
  equal((await core.job(id))!.view.result, "passed");
  match(new TextDecoder().decode(await core.store.readLog(id, 0, 1000)), /output truncated/);
  core.close();
  await store.close();
});

Deno.test("a job waiting at a drone that goes away returns to the queue uncharged, at its place", async () => {
  const { core, connect, submit, send } = setup();
  const first = await submit();
  const second = await submit();
  const busy = connect("busy", { capacity: 1 });
  send(busy.drone, started(first, 1, 1));
  send(busy.drone, { event: "job:queued", id: second, attempt: 2 - 1, seq: 1, timestamp: 1 });
  const third = await submit();
  // `third` is in the queen's queue (the drone's queue is at its bound), behind `second`.
  core.disconnect(busy.drone);
  const view = (await core.job(second))!.view;
  equal(view.status, "queued");
  deepEqual(view.attempts, [], "the attempt that never started is not charged or shown");
  equal(view.result, null);
  ok(!/lost|lease/.test(view.waiting ?? ""), view.waiting ?? "");
  deepEqual(core.queue(), [second, third]);
  // The next drone gets it as a new attempt, with its own lease token.
  const next = connect("next", { capacity: 2 });
  const frames = next.socket.of("queue:new");
  deepEqual(frames.map((f) => [f.job.job_id, f.attempt]), [[second, 2], [third, 1]]);
  send(next.drone, started(second, 2, 1));
  send(next.drone, done(second, 2, 2));
  const after = (await core.job(second))!.view;
  equal(after.result, "passed");
  deepEqual(after.attempts.map((a) => [a.attempt, a.drone, a.result]), [[2, "next", "passed"]]);
  core.close();
});

Deno.test("a job never started is not charged however often its drones go away", async () => {
  const { core, connect, submit, send } = setup({ maxAttempts: 1 });
  const blocker = await submit();
  const id = await submit();
  for (let i = 0; i < 5; i++) {
    const w = connect(`w${i}`, { capacity: 1 });
    const held = w.socket.of("queue:new").map((f) => [f.job.job_id, f.attempt] as const);
    for (const [job, attempt] of held) {
      if (job === blocker && i === 0) send(w.drone, started(job, attempt, 1));
    }
    core.disconnect(w.drone);
  }
  const view = (await core.job(id))!.view;
  equal(view.status, "queued");
  equal(view.result, null, view.error ?? "");
  deepEqual(view.attempts, []);
  core.close();
});

Deno.test("a slot freeing on one drone takes the oldest job waiting at another (queue:take)", async () => {
  const { core, connect, submit, send } = setup();
  const a = connect("a", { capacity: 1 });
  const long = await submit();
  const waiting = await submit();
  deepEqual(a.socket.of("queue:new").map((f) => f.job.job_id), [long, waiting]);
  send(a.drone, started(long, 1, 1));
  send(a.drone, { event: "job:queued", id: waiting, attempt: 1, seq: 1, timestamp: 1 });
  // A second drone with a free slot arrives: the queen asks `a` for its waiting job back.
  const b = connect("b", { capacity: 1 });
  deepEqual(a.socket.of("queue:take").map((f) => [f.id, f.attempt]), [[waiting, 1]]);
  equal(b.socket.of("queue:new").length, 0, "nothing is sent before the job is given back");
  send(a.drone, { event: "queue:taken", id: waiting, attempt: 1, taken: true });
  deepEqual(b.socket.of("queue:new").map((f) => [f.job.job_id, f.attempt]), [[waiting, 2]]);
  send(b.drone, started(waiting, 2, 1));
  send(b.drone, done(waiting, 2, 2));
  const view = (await core.job(waiting))!.view;
  equal(view.result, "passed");
  deepEqual(view.attempts.map((x) => [x.attempt, x.drone]), [[2, "b"]]);
  // The old attempt is fenced off: `a` cannot write to the job any more.
  send(a.drone, started(waiting, 1, 2));
  match(a.socket.of("error").at(-1)?.message ?? "", /does not hold that attempt/);
  core.close();
});

Deno.test("a job the worker already started stays there when the queen asks it back", async () => {
  const { core, connect, submit, send } = setup();
  const a = connect("a", { capacity: 1 });
  const long = await submit();
  const second = await submit();
  send(a.drone, started(long, 1, 1));
  send(a.drone, { event: "job:queued", id: second, attempt: 1, seq: 1, timestamp: 1 });
  const b = connect("b", { capacity: 1 });
  equal(a.socket.of("queue:take").length, 1);
  // Meanwhile `long` finished and `second` started on `a`.
  send(a.drone, done(long, 1, 2));
  send(a.drone, started(second, 1, 2));
  send(a.drone, { event: "queue:taken", id: second, attempt: 1, taken: false });
  equal(b.socket.of("queue:new").length, 0);
  send(a.drone, done(second, 1, 3));
  deepEqual((await core.job(second))!.view.attempts.map((x) => [x.attempt, x.drone]), [[1, "a"]]);
  core.close();
});

Deno.test("orphan claim: another worker name with a valid token cannot take or touch an attempt", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const owner = connect("owner");
  send(owner.drone, started(id, 1, 1));
  send(owner.drone, { event: "job:stdout", id, attempt: 1, seq: 2, text: "honest line\n" });
  core.disconnect(owner.drone); // frozen, or its connection cut: the attempt is an orphan
  const before = (await core.store.events(id)).length;
  // The thief knows the job id and attempt (from the API), but not the lease token.
  for (const lease of [undefined, "guessed-lease-token-0123456789"]) {
    const thief = connect(`thief-${lease ? "guess" : "none"}`, {
      running: [{ id, attempt: 1, seq: 2, ...(lease ? { lease } : {}) }],
    });
    match(thief.socket.of("error")[0]?.message ?? "", /lease token is missing or wrong/);
    send(thief.drone, { event: "job:stdout", id, attempt: 1, seq: 3, text: "stolen line\n" });
    send(thief.drone, done(id, 1, 4));
    match(thief.socket.of("error").at(-1)?.message ?? "", /does not hold that attempt/);
    equal(thief.socket.of("job:ack").length, 0);
  }
  equal((await core.store.events(id)).length, before, "nothing was recorded");
  equal((await core.job(id))!.view.status, "started");
  // The owner comes back with its token and carries on.
  const back = connect("owner", {
    running: [{ id, attempt: 1, seq: 2, lease: leaseOf(owner.socket, id) }],
  });
  equal(back.socket.of("error").length, 0);
  send(back.drone, done(id, 1, 3));
  const view = (await core.job(id))!.view;
  equal(view.result, "passed");
  ok(!JSON.stringify(await core.store.events(id)).includes("stolen"));
  ok(!JSON.stringify(view).includes(leaseOf(owner.socket, id)), "the lease never shows");
  core.close();
});

Deno.test("a dispatch the worker refuses ends errored with the worker's reason, not retried", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit();
  const w = connect("w");
  send(w.drone, {
    event: "error",
    message: "✖ Invalid input\n  → at job.config",
    id,
    attempt: 1,
  });
  const view = (await core.job(id))!.view;
  equal(view.status, "done");
  equal(view.result, "errored");
  match(view.error ?? "", /worker w refused the job: .*Invalid input/s);
  equal(w.socket.of("queue:new").length, 1, "no retry");
  equal(core.cancel(id), false);
  core.close();
});

Deno.test("cancel ends a job waiting at its drone at once; the worker is told to drop it", async () => {
  const { core, connect, submit, send } = setup();
  const a = connect("a", { capacity: 1 });
  const first = await submit();
  const second = await submit();
  send(a.drone, started(first, 1, 1));
  ok(core.cancel(second));
  equal((await core.job(second))!.view.result, "cancelled");
  deepEqual(a.socket.of("job:cancel").map((c) => [c.id, c.reason]), [[second, "superseded"]]);
  core.close();
});

Deno.test("the queen ends a started job past its timeout when its worker stays silent", async () => {
  const { core, connect, submit, send, clock } = setup({ leaseMs: 60_000 });
  const id = await submit({ timeout: 600 });
  const w = connect("w");
  send(w.drone, started(id, 1, 1));
  // The worker stays connected (it answers pings) but says nothing more of the job.
  const wait = (ms: number) => {
    for (let left = ms; left > 0; left -= 10_000) {
      clock.advance(Math.min(10_000, left));
      send(w.drone, { event: "pong", t: clock.now() });
    }
  };
  wait(600_000 + 20_000);
  deepEqual(w.socket.of("job:cancel").map((c) => c.reason), ["timeout"], "asked to stop");
  equal((await core.job(id))!.view.status, "started", "a lease to answer");
  wait(60_000);
  const view = (await core.job(id))!.view;
  equal(view.result, "timeout");
  match(view.error ?? "", /past its 600 s timeout/);
  deepEqual(w.socket.of("job:cancel").map((c) => c.reason), ["timeout", "superseded"]);
  core.close();
});

Deno.test("--queue-timeout ends a job no drone can run, errored, saying why", async () => {
  const { core, connect, submit, send, clock } = setup({
    leaseMs: 60_000,
    queueTimeoutMs: 300_000,
  });
  const plain = connect("plain", { capacity: 1 });
  const never = await submit({ labels: ["gpu"] });
  const busy = [await submit(), await submit(), await submit()]; // runnable, only waiting for a slot
  for (let i = 0; i < 30; i++) {
    clock.advance(10_000);
    send(plain.drone, { event: "pong", t: clock.now() });
  }
  equal((await core.job(never))!.view.status, "queued", "not before --queue-timeout");
  for (let i = 0; i < 3; i++) {
    clock.advance(10_000);
    send(plain.drone, { event: "pong", t: clock.now() });
  }
  const view = (await core.job(never))!.view;
  equal(view.result, "errored");
  match(view.error ?? "", /labels: gpu.*--queue-timeout/);
  equal((await core.job(busy[2]))!.view.status, "queued", "a busy-only wait is not ended");
  core.close();
});

Deno.test("a cancel its connected worker never answers ends the job after a lease", async () => {
  const { core, connect, submit, send, clock } = setup({ leaseMs: 60_000 });
  const id = await submit();
  const w = connect("w");
  send(w.drone, started(id, 1, 1));
  ok(core.cancel(id));
  for (let i = 0; i < 8; i++) {
    clock.advance(10_000);
    send(w.drone, { event: "pong", t: clock.now() }); // alive, but silent about the job
  }
  const view = (await core.job(id))!.view;
  equal(view.result, "cancelled");
  match(view.error ?? "", /did not confirm/);
  deepEqual(w.socket.of("job:cancel").map((c) => c.reason), ["cancelled", "superseded"]);
  core.close();
});

Deno.test("a job id is taken once, by a finished job too, and by the first of two at once", async () => {
  const { core, connect, submit, send } = setup();
  const id = await submit({ job_id: "fixed-1" });
  const w = connect("w");
  send(w.drone, started(id, 1, 1));
  send(w.drone, done(id, 1, 2));
  equal((await core.job(id))!.view.status, "done");
  const taken = (error: unknown) =>
    error instanceof ConflictError &&
    /already taken/.test(error.message);
  await rejects(submit({ job_id: "fixed-1" }), taken);
  const both = await Promise.allSettled([submit({ job_id: "twin" }), submit({ job_id: "twin" })]);
  deepEqual(both.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
  const listed = (await core.store.listJobs({ limit: 10 })).records.map((r) => r.id);
  deepEqual(listed.filter((x) => x === "twin"), ["twin"], "one job, not two");
  core.close();
});
