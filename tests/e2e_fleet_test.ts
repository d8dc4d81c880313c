/**
 * The fleet view of several queens on PostgreSQL, all real: any queen lists every live queen's
 * workers with the queen each is connected to, drains and disconnects a worker of another queen
 * (that queen does it), refuses unknown drones and rows that are no drones, and forgets the
 * workers of a queen that died.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  api,
  API_TOKEN,
  customJob,
  ENTRY,
  Proc,
  QUEEN_PERMISSIONS,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { postgresCluster } from "./helpers/postgres.ts";
import { freePort } from "./helpers/haproxy.ts";
import postgres from "postgres";
import { DroneListSchema } from "../protocol/mod.ts";
import type { DroneView } from "../protocol/mod.ts";

const SECRET_KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

const folders: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of folders) Deno.removeSync(dir, { recursive: true });
});

/** A queen on `database`, serving. */
async function queen(database: string): Promise<TestQueen> {
  const data = await Deno.makeTempDir({ prefix: "strider-fleet-queen-" });
  folders.push(data);
  const port = freePort();
  const proc = new Proc([
    "run",
    ...QUEEN_PERMISSIONS,
    ENTRY,
    "queen",
    "--port",
    String(port),
    "--data",
    data,
    "--worker-token",
    WORKER_TOKEN,
    "--api-token",
    API_TOKEN,
  ], { env: { STRIDER_DATABASE: database, STRIDER_SECRET_KEY: SECRET_KEY } });
  await proc.waitFor(/strider queen listening on/, 30_000);
  return { url: `http://127.0.0.1:${port}`, proc, data };
}

/** The drone list of `at`, validated by the protocol's schema. */
async function fleet(at: TestQueen): Promise<DroneView[]> {
  const response = await api(at, "/api/drones");
  equal(response.status, 200);
  return DroneListSchema.parse(await response.json()).drones;
}

async function droneNamed(at: TestQueen, name: string): Promise<DroneView | undefined> {
  return (await fleet(at)).find((d) => d.name === name);
}

/** The queen's id, as its own drones show it. */
async function queenId(at: TestQueen, own: string): Promise<string> {
  const drone = await droneNamed(at, own);
  ok(drone?.queen, `queen ${at.url} lists its drone ${own} with itself`);
  equal(drone.queen.url, at.url);
  return drone.queen.id;
}

Deno.test("any queen shows the whole fleet and drains or disconnects another queen's worker", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const qa = await queen(database);
  const qb = await queen(database);
  const admin = postgres(database, { max: 1, onnotice: () => {} });
  const workers: Proc[] = [];
  try {
    // fast-a: the drone the rule picks first, as long as it takes jobs.
    workers.push(await startWorker(qa, { name: "fast-a", args: ["--speed", "10"] }));
    workers.push(await startWorker(qa, { name: "other-a" }));
    workers.push(await startWorker(qb, { name: "on-b" }));
    const idA = await queenId(qa, "fast-a");
    const idB = await queenId(qb, "on-b");

    // Queen B lists A's workers, named with A; its own keep their plain ids.
    await waitUntil(async () => (await fleet(qb)).length === 3, 30_000, "B lists 3 drones");
    const fromB = await droneNamed(qb, "fast-a");
    match(fromB!.id, new RegExp(`^d\\d+@${idA}$`));
    equal(fromB!.queen?.url, qa.url);
    equal(fromB!.speed, 10);
    equal(fromB!.draining, false);
    const own = await droneNamed(qb, "on-b");
    ok(!own!.id.includes("@"), "B's own drone keeps its id");
    equal(own!.queen?.id, idB);
    // And A lists B's.
    equal((await droneNamed(qa, "on-b"))?.queen?.id, idB);

    // The dashboard of B: the list and A's drone's page.
    const overview = await (await api(qb, "/")).text();
    match(overview, /data-drone="fast-a"/);
    ok(overview.includes(idA), "the overview names A");
    const page = await api(qb, `/drones/${encodeURIComponent(fromB!.id)}`);
    equal(page.status, 200);
    const pageText = await page.text();
    ok(pageText.includes(qa.url), "the drone page names A's address");

    // /metrics: per queen, and the fleet.
    const metrics = await (await api(qb, "/metrics")).text();
    match(metrics, /^strider_drones_connected 1$/m);
    match(metrics, /^strider_fleet_drones_connected 3$/m);

    // Unknown drones: a clear 404, from any queen; no token: refused.
    for (const id of ["d999", `d999@${idA}`, "d1@q-0000000000000000"]) {
      const response = await api(qb, `/api/drones/${encodeURIComponent(id)}/drain`, {
        method: "POST",
      });
      equal(response.status, 404, id);
      match((await response.json()).error, /no connected drone/);
    }
    const anonymous = await api(qb, `/api/drones/${encodeURIComponent(fromB!.id)}/drain`, {
      method: "POST",
      token: null,
    });
    equal(anonymous.status, 401);
    equal((await droneNamed(qb, "fast-a"))?.draining, false, "a refused drain changes nothing");

    // A row that is no drone (another version, a hand-made insert) is left out, not trusted.
    await admin`INSERT INTO drones (id, queen, load)
      VALUES (${`${idA}/d77`}, ${idA}, ${JSON.stringify({ name: 5, capacity: -1 })})`;
    await admin`INSERT INTO drones (id, queen, load) VALUES (${`${idA}/d78`}, ${idA}, 'not json')`;
    const late = { ...fromB!, name: "from-the-far-future", active: 0, connectedAt: 1e20, jobs: [] };
    await admin`INSERT INTO drones (id, queen, load)
      VALUES (${`${idA}/d79`}, ${idA}, ${JSON.stringify(late)})`;
    equal((await fleet(qb)).length, 3);
    equal((await api(qb, `/api/drones/d77@${idA}/drain`, { method: "POST" })).status, 404);

    // A job keeps fast-a busy; drained through B, it takes nothing new though it has a free slot.
    const long = await submitJob(qa, customJob(repo.path, { test: "sleep 4; echo long-done" }));
    await waitUntil(
      async () => (await droneNamed(qb, "fast-a"))?.running === 1,
      30_000,
      "B sees fast-a running the job",
    );
    const drained = await api(qb, `/api/drones/${encodeURIComponent(fromB!.id)}/drain`, {
      method: "POST",
    });
    equal(drained.status, 200);
    equal((await drained.json()).queen, idA);
    await waitUntil(
      async () => (await droneNamed(qb, "fast-a"))?.draining === true,
      30_000,
      "B sees fast-a draining",
    );
    await qa.proc.waitFor(/drone d\d+: drain asked by another queen/);
    const next = await submitJob(qa, customJob(repo.path, { test: "echo next" }));
    const nextJob = await waitForJob(qb, next, 60_000);
    equal(nextJob.result, "passed", nextJob.error ?? "");
    ok(nextJob.attempts[0].drone !== "fast-a", `ran on ${nextJob.attempts[0].drone}, not fast-a`);
    // The drained worker finishes its job, then exits.
    equal((await waitForJob(qb, long, 60_000)).result, "passed");
    equal((await workers[0].exit(30_000)).code, 0);
    await waitUntil(async () => !(await droneNamed(qb, "fast-a")), 30_000, "fast-a gone");

    // Disconnect through B: A closes other-a's connection (its worker comes back as a new drone).
    const other = (await droneNamed(qb, "other-a"))!;
    const cut = await api(qb, `/api/drones/${encodeURIComponent(other.id)}/disconnect`, {
      method: "POST",
    });
    equal(cut.status, 200);
    await qa.proc.waitFor(/drone other-a disconnected/);
    await waitUntil(
      async () => (await droneNamed(qb, "other-a"))?.id !== other.id,
      30_000,
      "other-a's old connection gone from the list",
    );

    // A queen that dies: its workers leave every list at once.
    await waitUntil(async () => !!(await droneNamed(qb, "other-a")), 30_000, "other-a back");
    await qa.proc.stop("SIGKILL");
    await waitUntil(
      async () => (await fleet(qb)).every((d) => d.queen?.id !== idA),
      30_000,
      "A's drones gone from B's list",
    );
    equal((await droneNamed(qb, "on-b"))?.queen?.id, idB);
    match(await (await api(qb, "/metrics")).text(), /^strider_fleet_drones_connected 1$/m);
  } catch (error) {
    console.error(`--- queen A:\n${qa.proc.stdout}${qa.proc.stderr}`);
    console.error(`--- queen B:\n${qb.proc.stdout}${qb.proc.stderr}`);
    throw error;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await admin.end();
    await Promise.all([qa.proc.stop(), qb.proc.stop()]);
  }
});
