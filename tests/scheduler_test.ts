/**
 * The seed's scheduling rule: the fastest drone with open capacity that can run the job; if all
 * are full, the shortest queue relative to capacity; if none can run it, nowhere.
 */
import { equal, match, ok } from "node:assert/strict";
import { canRun, DroneLoadIndex, pickDrone, runnable, whyWaiting } from "../queen/scheduler.ts";
import fc from "fast-check";
import type { DroneLoad, JobNeeds } from "../queen/scheduler.ts";

/** A drone named `name` (its id too, unless given) with one slot, speed 1 and nothing to do. */
function drone(name: string, load: Partial<DroneLoad> = {}): DroneLoad {
  return {
    id: name,
    name,
    speed: 1,
    capacity: 1,
    active: 0,
    plugins: [],
    labels: [],
    draining: false,
    ...load,
  };
}

const anyJob: JobNeeds = { plugins: [], labels: [] };

interface Case {
  rule: string;
  needs?: JobNeeds;
  drones: DroneLoad[];
  /** The id of the drone that must be picked, or `undefined` when none may be. */
  picks: string | undefined;
}

const cases: Case[] = [
  {
    rule: "never queues a job at a full drone of the previous protocol, which cannot give it back",
    drones: [
      drone("old", { capacity: 2, active: 2, queues: false }),
      drone("new", { capacity: 2, active: 3 }),
    ],
    picks: "new",
  },
  {
    rule: "keeps a job at the queen when only full drones of the previous protocol could run it",
    drones: [drone("old", { capacity: 2, active: 2, queues: false })],
    picks: undefined,
  },
  {
    rule: "picks the fastest drone with open capacity",
    drones: [
      drone("slow", { speed: 1, capacity: 4 }),
      drone("fast", { speed: 3, capacity: 2, active: 1 }),
      drone("medium", { speed: 2, capacity: 8 }),
    ],
    picks: "fast",
  },
  {
    rule: "skips a faster full drone for a slower open one",
    drones: [
      drone("fast-full", { speed: 10, capacity: 2, active: 2 }),
      drone("slow-open", { speed: 1, capacity: 2, active: 1 }),
    ],
    picks: "slow-open",
  },
  {
    rule: "prefers any open drone over a full one with a shorter queue",
    drones: [
      drone("full", { speed: 5, capacity: 10, active: 10 }),
      drone("open", { speed: 0.5, capacity: 1, active: 0 }),
    ],
    picks: "open",
  },
  {
    rule: "sends a job to the shortest queue relative to capacity when all are full",
    drones: [
      // 1 queued for 1 slot: a relative queue of 1.
      drone("small", { speed: 10, capacity: 1, active: 2 }),
      // 2 queued for 4 slots: a relative queue of 0.5.
      drone("large", { speed: 1, capacity: 4, active: 6 }),
    ],
    picks: "large",
  },
  {
    rule: "counts a full drone with no queue as the shortest queue",
    drones: [
      drone("queued", { speed: 9, capacity: 2, active: 3 }),
      drone("just-full", { speed: 1, capacity: 2, active: 2 }),
    ],
    picks: "just-full",
  },
  {
    rule: "breaks a tie of equal relative queues among full drones by speed",
    drones: [
      drone("a-slow", { speed: 1, capacity: 4, active: 6 }),
      drone("b-fast", { speed: 2, capacity: 2, active: 3 }),
    ],
    picks: "b-fast",
  },
  {
    rule: "breaks a tie of equal queue and speed among full drones by name",
    drones: [
      drone("bravo", { capacity: 2, active: 3 }),
      drone("alpha", { capacity: 2, active: 3 }),
    ],
    picks: "alpha",
  },
  {
    rule: "breaks a tie of equal speed among open drones by load relative to capacity",
    drones: [
      // Half full.
      drone("alpha", { speed: 2, capacity: 4, active: 2 }),
      // A quarter full, though more jobs in absolute terms.
      drone("bravo", { speed: 2, capacity: 12, active: 3 }),
    ],
    picks: "bravo",
  },
  {
    rule: "breaks a tie of equal speed and load among open drones by name",
    drones: [
      drone("charlie", { speed: 2, capacity: 2, active: 1 }),
      drone("alpha", { speed: 2, capacity: 4, active: 2 }),
      drone("bravo", { speed: 2, capacity: 6, active: 3 }),
    ],
    picks: "alpha",
  },
  {
    rule: "breaks a tie of equal name by id",
    drones: [
      drone("same", { id: "d2" }),
      drone("same", { id: "d1" }),
      drone("same", { id: "d3" }),
    ],
    picks: "d1",
  },
  {
    rule: "never picks a draining drone, however fast and idle",
    drones: [
      drone("draining", { speed: 100, capacity: 8, draining: true }),
      drone("busy", { speed: 1, capacity: 1, active: 1 }),
    ],
    picks: "busy",
  },
  {
    rule: "keeps a job in the queen's queue when every able drone's own queue is at its bound",
    drones: [
      // One waiting job per slot is the bound (QUEUE_PER_SLOT).
      drone("small", { capacity: 1, active: 2 }),
      drone("large", { capacity: 4, active: 8 }),
    ],
    picks: undefined,
  },
  {
    rule: "queues at a full drone only while its queue is under the bound",
    drones: [
      drone("at-bound", { speed: 9, capacity: 2, active: 4 }),
      drone("under", { speed: 1, capacity: 2, active: 3 }),
    ],
    picks: "under",
  },
  {
    rule: "picks nothing when every drone is draining",
    drones: [drone("a", { draining: true }), drone("b", { draining: true })],
    picks: undefined,
  },
  {
    rule: "picks only among drones with every plugin the job names",
    needs: { plugins: ["node"], labels: [] },
    drones: [
      drone("no-node", { speed: 10, capacity: 4, plugins: ["env", "custom"] }),
      drone("with-node", { speed: 1, capacity: 1, active: 1, plugins: ["env", "node"] }),
    ],
    picks: "with-node",
  },
  {
    rule: "needs all the plugins the job names, not just one",
    needs: { plugins: ["node", "docker"], labels: [] },
    drones: [
      drone("node-only", { speed: 10, plugins: ["node"] }),
      drone("docker-only", { speed: 9, plugins: ["docker"] }),
      drone("both", { speed: 1, active: 1, plugins: ["docker", "node", "env"] }),
    ],
    picks: "both",
  },
  {
    rule: "picks only among drones with every label the job asks for",
    needs: { plugins: [], labels: ["linux", "gpu"] },
    drones: [
      drone("linux", { speed: 10, labels: ["linux"] }),
      drone("gpu-box", { speed: 1, labels: ["gpu", "linux", "x86_64"] }),
    ],
    picks: "gpu-box",
  },
  {
    rule: "picks nothing when no drone has the plugin",
    needs: { plugins: ["node"], labels: [] },
    drones: [drone("a", { plugins: ["env"] }), drone("b", { plugins: [] })],
    picks: undefined,
  },
  {
    rule: "picks nothing when no drone has the labels",
    needs: { plugins: [], labels: ["macos"] },
    drones: [drone("a", { labels: ["linux"] })],
    picks: undefined,
  },
  {
    rule: "picks nothing when no drone is connected",
    drones: [],
    picks: undefined,
  },
];

for (const { rule, needs = anyJob, drones, picks } of cases) {
  Deno.test(`scheduler ${rule}`, () => {
    equal(pickDrone(needs, drones)?.id, picks);
  });

  Deno.test(`scheduler ${rule}, whatever the order of the drones`, () => {
    const orders = [drones.toReversed(), [...drones.slice(1), ...drones.slice(0, 1)]];
    for (const order of orders) equal(pickDrone(needs, order)?.id, picks);
  });
}

Deno.test("scheduler does not change the drones it is given", () => {
  const drones = [drone("b", { speed: 1 }), drone("a", { speed: 2 })];
  const before = JSON.stringify(drones);
  pickDrone(anyJob, drones);
  equal(JSON.stringify(drones), before);
});

Deno.test("canRun needs every plugin and label and a drone that is not draining", () => {
  const node = drone("n", { plugins: ["env", "node"], labels: ["linux"] });
  ok(canRun(node, anyJob));
  ok(canRun(node, { plugins: ["node"], labels: ["linux"] }));
  ok(!canRun(node, { plugins: ["node", "python"], labels: [] }));
  ok(!canRun(node, { plugins: [], labels: ["linux", "arm64"] }));
  ok(!canRun({ ...node, draining: true }, anyJob));
});

Deno.test("canRun ignores load: a full drone can still run a job", () => {
  ok(canRun(drone("full", { capacity: 1, active: 9 }), anyJob));
});

Deno.test("whyWaiting says a job waits for a drone to connect when there are none", () => {
  equal(whyWaiting(anyJob, []), "waiting for a drone to connect");
});

Deno.test("whyWaiting names the plugins when no drone has them", () => {
  const message = whyWaiting(
    { plugins: ["node", "docker"], labels: [] },
    [drone("a", { plugins: ["node"] }), drone("b", { plugins: ["docker"] })],
  );
  match(message, /plugins/);
  match(message, /node/);
  match(message, /docker/);
});

Deno.test("whyWaiting names the labels when drones have the plugins but not the labels", () => {
  const message = whyWaiting(
    { plugins: ["node"], labels: ["gpu"] },
    [drone("a", { plugins: ["node"], labels: ["linux"] }), drone("b", { labels: ["gpu"] })],
  );
  match(message, /labels/);
  match(message, /gpu/);
});

Deno.test("whyWaiting says every able drone is draining when that is the reason", () => {
  match(
    whyWaiting(anyJob, [drone("a", { draining: true }), drone("b", { draining: true })]),
    /draining/,
  );
});

Deno.test("whyWaiting says the job waits for a free slot when able drones are all busy", () => {
  match(whyWaiting(anyJob, [drone("a", { capacity: 1, active: 2 })]), /free slot.*busy/);
});

Deno.test("runnable tells a busy able drone from none at all (what --queue-timeout ends)", () => {
  ok(runnable(anyJob, [drone("busy", { capacity: 1, active: 2 })]));
  ok(!runnable({ plugins: [], labels: ["gpu"] }, [drone("a")]));
  ok(!runnable(anyJob, []));
  ok(!runnable(anyJob, [drone("a", { draining: true })]));
});

Deno.test("the drone index picks what a scan of every drone picks, through any changes", () => {
  const names = ["a", "b", "c", "d", "e", "f", "g", "h"];
  const change = fc.record({
    drone: fc.constantFrom(...names),
    gone: fc.boolean(),
    // Few values, so that drones often tie on everything but load and identity.
    speed: fc.integer({ min: 1, max: 2 }),
    capacity: fc.integer({ min: 1, max: 2 }),
    active: fc.integer({ min: 0, max: 4 }),
    plugins: fc.subarray(["node"]),
    labels: fc.subarray(["gpu"]),
    draining: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    remaining: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined, freq: 5 }),
    queues: fc.boolean(),
  });
  const needs = fc.record({
    plugins: fc.subarray(["node"]),
    labels: fc.subarray(["gpu"]),
  });
  fc.assert(
    fc.property(fc.array(change, { maxLength: 60 }), fc.array(needs, { minLength: 1 }), (
      changes,
      asks,
    ) => {
      const index = new DroneLoadIndex();
      const fleet = new Map<string, DroneLoad>();
      for (const c of changes) {
        if (c.gone) {
          index.remove(c.drone);
          fleet.delete(c.drone);
        } else {
          // Two drones may share a name (a reconnect): identity is name, then id.
          const load = drone(c.drone.slice(0, 1) === "h" ? "a" : c.drone, { ...c, id: c.drone });
          index.update(load);
          fleet.set(c.drone, load);
        }
        for (const ask of asks) {
          equal(index.pick(ask)?.id, pickDrone(ask, [...fleet.values()])?.id);
        }
      }
    }),
    { numRuns: 300 },
  );
});
