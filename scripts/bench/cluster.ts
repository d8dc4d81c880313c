/**
 * Several queens on PostgreSQL (README, "Several queens"), beside one queen on SQLite, on a
 * PostgreSQL cluster of the bench's own (tests/helpers/postgres.ts) on this machine:
 *
 * - dispatch latency, `POST` → `job:started` recorded, one job at a time, a simulated worker: one
 *   queen on SQLite; one queen on PostgreSQL; three queens on PostgreSQL with the job submitted to
 *   one queen and the worker connected to another (cross-queen dispatch: NOTIFY, claim);
 * - throughput of trivial jobs (simulated workers doing nothing: the queens alone) in the same
 *   three set-ups, submissions and workers spread over every queen;
 * - failover: `kill -9` of the queen owning a running job (a subprocess) while a real worker
 *   streams output through HAProxy; the time from the kill to the job's log growing again, read
 *   through HAProxy. Beside: the worker's first reconnect delay (the floor of its backoff).
 */
import { startQueen } from "../../queen/mod.ts";
import type { RunningQueen } from "../../queen/mod.ts";
import { postgresCluster } from "../../tests/helpers/postgres.ts";
import { freePort, startHaproxy } from "../../tests/helpers/haproxy.ts";
import {
  api,
  API_TOKEN,
  customJob,
  denoProc,
  join,
  MAIN,
  makeRepo,
  pool,
  QUEEN_PERMISSIONS,
  round,
  row,
  sleep,
  startWorkerProc,
  stats,
  submit,
  tempDir,
  timed,
  waitUntil,
  Watcher,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";
import { SimFleet } from "./sim_worker.ts";
import postgres from "postgres";

const SECRET_KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
const RECONNECT_FLOOR_MS = 250;

/** A queen subprocess on `database` at `port`. */
async function queenProc(
  dir: string,
  database: string,
  port: number,
  name: string,
): Promise<Proc> {
  // Inside the measure's own folder, which it removes at the end.
  const data = await Deno.makeTempDir({ dir, prefix: `queen-${name}-` });
  return denoProc(`queen ${name}`, QUEEN_PERMISSIONS, MAIN, [
    "queen",
    "--port",
    String(port),
    "--data",
    data,
    "--worker-token",
    WORKER_TOKEN,
    "--api-token",
    API_TOKEN,
    "--lease",
    "10",
  ], { env: { STRIDER_DATABASE: database, STRIDER_SECRET_KEY: SECRET_KEY } });
}

interface Setup {
  label: string;
  /** The queen in this process: the latency's worker connects to it, and it is watched. */
  leader: RunningQueen;
  /** Where jobs are submitted (the latency's to the first), and where workers connect. */
  submitTo: string[];
  workersTo: string[];
  /** Jobs finished so far, wherever they ran. */
  done(): Promise<number>;
  close(): Promise<void>;
}

/** Counts `job:done` events on `leader`'s hub: all jobs, with one queen. */
function doneOn(leader: RunningQueen): { done: () => Promise<number>; stop: () => void } {
  let done = 0;
  const stop = leader.core.hub.followAll((event) => {
    if (event.data.event === "job:done") done++;
  });
  return { done: () => Promise.resolve(done), stop };
}

async function sqliteSetup(dir: string): Promise<Setup> {
  const leader = await startQueen({
    port: 0,
    host: "127.0.0.1",
    data: join(dir, "sqlite"),
    workerTokens: [WORKER_TOKEN],
    apiTokens: [API_TOKEN],
    log: () => {},
  });
  const counter = doneOn(leader);
  return {
    label: "1 queen, SQLite",
    leader,
    submitTo: [leader.url],
    workersTo: [leader.url],
    done: counter.done,
    close: () => {
      counter.stop();
      return leader.close();
    },
  };
}

async function postgresSetup(dir: string, queens: 1 | 3): Promise<Setup> {
  const database = await (await postgresCluster()).newDatabase();
  const leader = await startQueen({
    port: 0,
    host: "127.0.0.1",
    data: join(dir, `pg${queens}`),
    database,
    secretKey: SECRET_KEY,
    workerTokens: [WORKER_TOKEN],
    apiTokens: [API_TOKEN],
    log: () => {},
  });
  const others: Proc[] = [];
  const urls: string[] = [];
  for (let i = 1; i < queens; i++) {
    const port = freePort();
    const proc = await queenProc(dir, database, port, `q${i + 1}`);
    others.push(proc);
    await proc.waitForLine(/strider queen listening on/, 60_000);
    urls.push(`http://127.0.0.1:${port}`);
  }
  // Jobs end on whichever queen owns them: counted in the database.
  const sql = postgres(database, { max: 1, onnotice: () => {} });
  return {
    label: queens === 1 ? "1 queen, PostgreSQL" : "3 queens, PostgreSQL",
    leader,
    submitTo: [...urls, leader.url],
    workersTo: [leader.url, ...urls],
    async done() {
      const [row] = await sql`SELECT count(*) AS n FROM jobs WHERE status = 'done'`;
      return Number(row.n);
    },
    async close() {
      await sql.end();
      await Promise.all(others.map((p) => p.stop()));
      await leader.close();
    },
  };
}

/** One job at a time, each once the previous finished: POST → `job:started` recorded, in ms. */
async function latency(setup: Setup, count: number): Promise<number[]> {
  const watcher = new Watcher(setup.leader.core, ["job:started", "job:done"]);
  const fleet = await SimFleet.start({
    url: setup.leader.url,
    token: WORKER_TOKEN,
    count: 1,
    prefix: "lat",
  });
  try {
    await waitUntil(() => setup.leader.core.drones.size === 1, 30_000, "the worker");
    const spec = {
      repo: { url: "/nonexistent/bench.git" },
      ref: { branch: "main" },
      config: { custom: { test: "true" } },
    };
    const samples: number[] = [];
    for (let i = 0; i < count + 10; i++) {
      const id = `lat-${i}`;
      const begin = performance.now();
      await submit(setup.submitTo[0], { ...spec, plugins: ["custom"], job_id: id });
      const started = await watcher.when(id, "job:started", 30_000);
      if (i >= 10) samples.push(started - begin);
      await watcher.when(id, "job:done", 30_000);
      watcher.forget(id);
    }
    return samples;
  } finally {
    watcher.stop();
    await fleet.close();
    await waitUntil(() => setup.leader.core.drones.size === 0, 30_000, "the worker to leave");
  }
}

/** `jobs` trivial jobs, 16 submissions in flight spread over the queens: jobs per second. */
async function rate(setup: Setup, jobs: number): Promise<number> {
  // 20 workers × 4 slots, spread over the queens.
  const urls = setup.workersTo;
  const fleets = await Promise.all(urls.map((url, i) =>
    SimFleet.start({
      url,
      token: WORKER_TOKEN,
      count: Math.floor(20 / urls.length) + (i < 20 % urls.length ? 1 : 0),
      capacity: 4,
      mode: "instant",
      prefix: `rate${i}-`,
    })
  ));
  const before = await setup.done();
  const spec = {
    repo: { url: "/nonexistent/bench.git" },
    ref: { branch: "main" },
    config: { custom: { test: "true" } },
  };
  try {
    const ms = await timed(async () => {
      await pool(jobs, 16, (i) =>
        submit(setup.submitTo[i % setup.submitTo.length], {
          ...spec,
          plugins: ["custom"],
          job_id: `rate-${i}`,
        }));
      await waitUntil(
        async () => await setup.done() - before >= jobs,
        300_000,
        `${jobs} jobs to finish`,
        2,
      );
    });
    return jobs / (ms / 1000);
  } finally {
    await Promise.all(fleets.map((fleet) => fleet.close()));
  }
}

/** `kill -9` of the queen owning a running job → its log grows again, read through HAProxy. */
async function failover(dir: string, samples: number, ctx: BenchContext): Promise<number[]> {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo(dir);
  const ports = [freePort(), freePort()];
  const queens: Proc[] = await Promise.all(
    ports.map((port, i) => queenProc(dir, database, port, `q${i + 1}`)),
  );
  await Promise.all(queens.map((q) => q.waitForLine(/strider queen listening on/, 60_000)));
  const lb = await startHaproxy(ports);
  const worker = startWorkerProc(lb.url, "failover", join(dir, "work"));
  const times: number[] = [];
  const logBytes = async (id: string) => {
    try {
      const response = await api(lb.url, `/api/jobs/${id}/log`, {}, 2_000);
      return response.ok ? (await response.arrayBuffer()).byteLength : -1;
    } catch {
      return -1;
    }
  };
  /** The queen the worker is connected to (it owns the worker's job), or -1. */
  const holder = async () => {
    for (const [i, port] of ports.entries()) {
      const response = await api(`http://127.0.0.1:${port}`, "/api/drones", {}, 2_000)
        .catch(() => undefined);
      const drones: { id: string }[] = (await response?.json().catch(() => undefined))?.drones ??
        [];
      // Every queen lists the whole fleet; another queen's drones have ids `DRONE@QUEEN`.
      if (drones.filter((d) => !d.id.includes("@")).length === 1) return i;
    }
    return -1;
  };
  try {
    await waitUntil(async () => await holder() >= 0, 60_000, "the worker through HAProxy");
    for (let i = 0; i < samples; i++) {
      const id = await submit(
        lb.url,
        customJob(repo, "for i in $(seq 1 3000); do echo line-$i; sleep 0.01; done"),
      );
      await waitUntil(async () => (await logBytes(id)) > 2000, 60_000, "output");
      const owner = await holder();
      const killedAt = performance.now();
      queens[owner].signal("SIGKILL");
      await queens[owner].kill();
      // All the killed queen committed is in the log now: growth past it is the survivor's.
      let before = -1;
      await waitUntil(async () => (before = await logBytes(id)) >= 0, 60_000, "a survivor", 5);
      await waitUntil(async () => (await logBytes(id)) > before, 60_000, "the stream to resume", 5);
      times.push(performance.now() - killedAt);
      ctx.log(`cluster: failover ${i + 1}: ${round(times[times.length - 1])} ms`);
      // The killed queen comes back for the next sample.
      queens[owner] = await queenProc(dir, database, ports[owner], `again${i}`);
      await queens[owner].waitForLine(/strider queen listening on/, 60_000);
      await api(lb.url, `/api/jobs/${id}/cancel`, { method: "POST" }).catch(() => {});
      await sleep(500);
    }
    return times;
  } finally {
    await worker.stop();
    await Promise.all(queens.map((q) => q.stop()));
    await lb.stop();
  }
}

export const cluster: Measure = {
  name: "cluster",
  async run(ctx: BenchContext): Promise<Row[]> {
    const latencyJobs = ctx.quick ? 50 : 200;
    const rateJobs = ctx.quick ? 400 : 2000;
    const tmp = await tempDir("cluster");
    const rows: Row[] = [];
    try {
      const results: { label: string; lat: ReturnType<typeof stats>; rate: number }[] = [];
      for (
        const make of [
          () => sqliteSetup(tmp.path),
          () => postgresSetup(tmp.path, 1),
          () => postgresSetup(tmp.path, 3),
        ]
      ) {
        const setup = await make();
        try {
          ctx.log(`cluster: ${setup.label}`);
          const lat = stats(await latency(setup, latencyJobs));
          results.push({ label: setup.label, lat, rate: await rate(setup, rateJobs) });
        } finally {
          await setup.close();
        }
      }
      const [sqlite] = results;
      for (const result of results) {
        rows.push(row({
          group: "cluster",
          measure: `cluster dispatch POST→job:started, ${result.label}`,
          unit: "ms",
          median: result.lat.median,
          p99: result.lat.p99,
          n: result.lat.n,
          baseline: "1 queen, SQLite",
          baseline_median: sqlite.lat.median,
          baseline_p99: sqlite.lat.p99,
        }));
      }
      for (const result of results) {
        rows.push(row({
          group: "cluster",
          measure: `cluster throughput ${rateJobs} jobs, ${result.label}`,
          unit: "jobs/s",
          median: round(result.rate),
          n: rateJobs,
          baseline: "1 queen, SQLite",
          baseline_median: round(sqlite.rate),
          higherIsBetter: true,
        }));
      }
      ctx.log("cluster: failover");
      const fail = stats(await failover(tmp.path, ctx.quick ? 1 : 3, ctx));
      rows.push(row({
        group: "cluster",
        measure: "failover: kill -9 of the job's queen → the job's log grows again (HAProxy)",
        unit: "ms",
        median: fail.median,
        p99: fail.max,
        n: fail.n,
        baseline: "worker's first reconnect delay",
        baseline_median: RECONNECT_FLOOR_MS,
      }));
      return rows;
    } finally {
      await tmp.cleanup();
    }
  },
};
