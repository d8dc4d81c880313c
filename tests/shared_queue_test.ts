/**
 * The core's side of several queens sharing a queue (`SharedQueue`, implemented on PostgreSQL by
 * queen/postgres/cluster.ts): what a queen holds, gives back, fetches and hands over. Two cores
 * over one store stand for two queens; a fake clock, no database (tests/e2e_postgres_test.ts runs
 * the real thing).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { QueenFrame } from "../protocol/mod.ts";
import { JobSpecSchema, PROTOCOL_VERSION } from "../protocol/mod.ts";
import { FakeClock } from "../queen/clock.ts";
import type { Drone } from "../queen/drone.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import type { SharedQueue } from "../queen/queen.ts";
import type { DroneLoad } from "../queen/scheduler.ts";
import type { JobRecord, Store } from "../queen/store.ts";

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

/** A shared queue that records what the core asks of it. */
class FakeShared implements SharedQueue {
  queuedCalls = 0;
  released: string[] = [];
  fetched: string[] = [];
  cancelled: string[] = [];
  elsewhere: DroneLoad[] = [];
  queued() {
    this.queuedCalls++;
  }
  release(ids: string[]) {
    this.released.push(...ids);
  }
  fetch(id: string) {
    this.fetched.push(id);
  }
  cancel(id: string) {
    this.cancelled.push(id);
    return Promise.resolve(true);
  }
  freeElsewhere() {
    return this.elsewhere.map((d) => ({ ...d }));
  }
  describe() {}
  waiting() {
    return Promise.resolve([]);
  }
  depth() {
    return 0;
  }
}

const LEASE_KEY = "shared-lease-key";

function queen(store: Store, clock: FakeClock) {
  const shared = new FakeShared();
  const core = new QueenCore(store, {
    clock,
    leaseMs: 60_000,
    maxAttempts: 3,
    leaseKey: LEASE_KEY,
    log: () => {},
    shared,
  });
  const connect = (name: string, capacity = 1, running: unknown[] = []) => {
    const socket = new FakeSocket();
    const drone = core.connect(socket as unknown as WebSocket);
    core.receive(
      drone,
      JSON.stringify({
        event: "drone:info",
        name,
        version: "test",
        protocol: PROTOCOL_VERSION,
        speed: 1,
        capacity,
        plugins: ["env", "custom"],
        labels: [],
        running,
      }),
    );
    return { socket, drone };
  };
  const send = (drone: Drone, frame: Record<string, unknown>) =>
    core.receive(drone, JSON.stringify(frame));
  return { core, shared, connect, send };
}

/** What a claim hands the core: the stored record with its lagging events. */
async function claimed(store: Store, id: string): Promise<[JobRecord, []][]> {
  return [[(await store.getJob(id))!, []]];
}

const spec = () => JobSpecSchema.parse({ repo: { url: "/tmp/repo" }, ref: { branch: "main" } });
const event = (e: string, id: string, seq: number, extra = {}) => ({
  event: e,
  id,
  attempt: 1,
  seq,
  timestamp: Date.now(),
  ...extra,
});

Deno.test("a job submitted goes to the shared queue; one claimed but not placeable goes back", async () => {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const a = queen(store, clock);
  const id = (await a.core.submit(spec())).id;
  equal(a.shared.queuedCalls, 1, "the queens are woken to claim it");
  equal(a.core.liveJob(id), undefined, "not held by the queen it was submitted to");
  // Claimed with no drone to take it: forgotten here, given back.
  a.core.adopt(await claimed(store, id));
  deepEqual(a.shared.released, [id]);
  equal(a.core.liveJob(id), undefined);
  // Claimed again once a drone is here: sent.
  const { socket } = a.connect("w1");
  a.core.adopt(await claimed(store, id));
  deepEqual(socket.of("queue:new").map((f) => f.job.job_id), [id]);
  deepEqual(a.shared.released, [id], "nothing more given back");
  a.core.close();
});

Deno.test("a worker that moved to another queen: its events wait for the job, then it re-attaches", async () => {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const a = queen(store, clock);
  const b = queen(store, clock);
  const w = a.connect("w");
  const id = (await a.core.submit(spec())).id;
  a.core.adopt(await claimed(store, id));
  const lease = w.socket.of("queue:new")[0].lease;
  a.send(w.drone, event("job:started", id, 1));
  a.send(w.drone, event("job:stdout", id, 2, { text: "one\n" }));
  await new Promise((r) => setTimeout(r, 0));
  // The worker reconnects to B, which does not own the job: it asks for it, keeping what the
  // worker sends meanwhile instead of refusing it.
  const moved = b.connect("w", 1, [{ id, attempt: 1, seq: 2, lease }]);
  deepEqual(b.shared.fetched, [id]);
  b.send(moved.drone, event("job:stdout", id, 3, { text: "two\n" }));
  equal(moved.socket.of("error").length, 0, "nothing refused while the job is fetched");
  equal(moved.socket.of("job:cancel").length, 0);
  // A hands it over: it forgets the job; B adopts it and resumes the claim.
  ok(a.core.surrender(id));
  equal(a.core.liveJob(id), undefined);
  b.core.adopt(await claimed(store, id));
  b.core.resumeClaimed(id);
  b.send(moved.drone, event("job:done", id, 4, { result: "passed" }));
  await new Promise((r) => setTimeout(r, 0));
  const view = (await b.core.job(id))!.view;
  equal(view.result, "passed");
  equal(view.attempts.length, 1, "the same attempt went on");
  equal(view.output, "one\ntwo\n", "the events sent meanwhile were kept, once");
  equal(moved.socket.of("job:cancel").length, 0);
  a.core.close();
  b.core.close();
});

Deno.test("a claim the job cannot be fetched for is refused: the worker stops that attempt", () => {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const b = queen(store, clock);
  const lease = "0".repeat(64);
  const moved = b.connect("w", 1, [{ id: "gone", attempt: 1, seq: 1, lease }]);
  deepEqual(b.shared.fetched, ["gone"]);
  b.core.resumeClaimed("gone");
  deepEqual(moved.socket.of("job:cancel").map((f) => [f.id, f.reason]), [["gone", "superseded"]]);
  b.core.close();
});

Deno.test("a job waiting at a busy drone is given back for another queen's free slot", async () => {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const a = queen(store, clock);
  const w = a.connect("w1");
  const first = (await a.core.submit(spec())).id;
  const second = (await a.core.submit(spec())).id;
  a.core.adopt([...await claimed(store, first), ...await claimed(store, second)]);
  a.send(w.drone, event("job:started", first, 1));
  a.send(w.drone, { event: "job:queued", id: second, attempt: 1, seq: 1, timestamp: 0 });
  equal(w.socket.of("queue:take").length, 0, "no free slot anywhere yet");
  a.shared.elsewhere = [{
    id: "q-other/d1",
    name: "w2",
    speed: 1,
    capacity: 1,
    active: 0,
    plugins: ["env", "custom"],
    labels: [],
    draining: false,
  }];
  a.core.dispatch();
  deepEqual(w.socket.of("queue:take").map((f) => f.id), [second]);
  a.send(w.drone, { event: "queue:taken", id: second, attempt: 1, taken: true });
  deepEqual(a.shared.released, [second], "to the shared queue, for the other queen");
  equal(a.core.liveJob(second), undefined);
  equal(w.socket.of("queue:new").length, 2, "not sent to this drone again");
  a.core.close();
});

Deno.test("cancel of a job another queen owns goes through the shared queue", async () => {
  const store = new MemoryStore();
  const a = queen(store, new FakeClock());
  equal(await a.core.cancelAnywhere("elsewhere"), true);
  deepEqual(a.shared.cancelled, ["elsewhere"]);
  a.core.close();
});
