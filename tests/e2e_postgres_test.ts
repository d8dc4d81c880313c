/**
 * Queens on PostgreSQL behind HAProxy, all real: a PostgreSQL cluster of the test's own, queens
 * sharing one database (one serves, the others stand by and take over), workers connected
 * through the load balancer.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  API_TOKEN,
  customJob,
  droneNames,
  ENTRY,
  jobLog,
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
import { freePort, startHaproxy } from "./helpers/haproxy.ts";
import postgres from "postgres";
import { PostgresStore } from "../queen/postgres/store.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { parseSecretKey } from "../queen/secret_key.ts";
import { newRecord } from "../queen/recorder.ts";
import { JobSpecSchema } from "../protocol/mod.ts";

/** The key every queen of a cluster shares. */
const SECRET_KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

/** The queens' data folders, removed when the file's tests end. */
const folders: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of folders) Deno.removeSync(dir, { recursive: true });
});

/** A queen on `database` at a fixed port; it prints "listening" only once it serves. */
async function queenProc(database: string, port: number, args: string[] = []): Promise<Proc> {
  const data = await Deno.makeTempDir({ prefix: "strider-pg-queen-" });
  folders.push(data);
  return new Proc([
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
    ...args,
  ], { env: { STRIDER_DATABASE: database, STRIDER_SECRET_KEY: SECRET_KEY } });
}

const serving = (proc: Proc, timeoutMs = 30_000) =>
  proc.waitFor(/strider queen listening on/, timeoutMs);

Deno.test("kill -9 of the serving queen: the standby takes over through HAProxy, no line lost or doubled", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const ports = [freePort(), freePort()];
  const a = await queenProc(database, ports[0], ["--lease", "20"]);
  await serving(a);
  const b = await queenProc(database, ports[1], ["--lease", "20"]);
  await b.waitFor(/standby: another queen serves this database/);
  const lb = await startHaproxy(ports);
  const front: TestQueen = { url: lb.url, proc: a, data: "" };
  const worker = await startWorker(front, { name: "through-lb", connect: lb.url });
  try {
    const id = await submitJob(
      front,
      customJob(repo.path, { test: "for i in $(seq 1 150); do echo line-$i; sleep 0.02; done" }),
    );
    await waitUntil(async () => (await jobLog(front, id)).includes("line-40"), 30_000, "line-40");
    await a.stop("SIGKILL");
    await serving(b);
    const job = await waitForJob(front, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the worker re-attached to the new queen; no second run");
    const lines = (await jobLog(front, id)).split("\n").filter((l) => l.startsWith("line-"));
    deepEqual(lines, Array.from({ length: 150 }, (_, i) => `line-${i + 1}`));
  } finally {
    await worker.stop();
    await Promise.all([a.stop(), b.stop()]);
    await lb.stop();
  }
});

/** Reads a job's event stream from `queen` to its end: the `n` and data of every event. */
async function follow(
  url: string,
  id: string,
): Promise<{ n: number; data: Record<string, unknown> }[]> {
  const response = await fetch(`${url}/api/jobs/${id}/events`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
    signal: AbortSignal.timeout(60_000),
  });
  equal(response.status, 200);
  const text = await response.text();
  return text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
}

Deno.test("any queen serves anything: submit to one, run on a worker of another, follow from a third", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const ports = [freePort(), freePort(), freePort()];
  const a = await queenProc(database, ports[0]);
  await serving(a);
  const b = await queenProc(database, ports[1]);
  const c = await queenProc(database, ports[2]);
  await Promise.all([b, c].map((q) => q.waitFor(/forwarding to it from port/)));
  const [qa, qb, qc] = ports.map((port, i) => ({
    url: `http://127.0.0.1:${port}`,
    proc: [a, b, c][i],
    data: "",
  }));
  // The worker knows only queen C; the job is submitted to queen B.
  const worker = await startWorker(qc, { name: "on-c" });
  try {
    const id = await submitJob(
      qb,
      customJob(repo.path, {
        test: "head -c 2500000 /dev/urandom > out.bin && sha256sum out.bin && " +
          "for i in $(seq 1 60); do echo line-$i; sleep 0.01; done",
      }, { artifacts: ["out.bin"] }),
    );
    // Followed live from B and from A at once, from the start.
    const [fromB, fromA] = await Promise.all([follow(qb.url, id), follow(qa.url, id)]);
    deepEqual(fromB.map((e) => e.n), fromA.map((e) => e.n), "the same stream everywhere");
    deepEqual(fromB.map((e) => e.n), fromB.map((_, i) => i + 1), "no gap, no duplicate");
    const lines = fromB.filter((e) => (e.data as { event: string }).event === "job:cmd:stdout")
      .map((e) => String((e.data as { text: string }).text)).join("").split("\n")
      .filter((l) => l.startsWith("line-"));
    deepEqual(lines, Array.from({ length: 60 }, (_, i) => `line-${i + 1}`));
    const job = await waitForJob(qc, id);
    equal(job.result, "passed");
    equal(job.attempts[0].drone, "on-c");
    // The artifact went up through C and comes down from B, byte for byte (chunked in the DB).
    const sha = (await jobLog(qa, id)).match(/([0-9a-f]{64}) {2}out\.bin/)![1];
    const file = await api(qb, `/api/jobs/${id}/artifacts/out.bin`);
    equal(file.status, 200);
    const bytes = new Uint8Array(await file.arrayBuffer());
    equal(bytes.length, 2_500_000);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    equal(Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""), sha);
    // A late joiner on C catches up from the database.
    deepEqual((await follow(qc.url, id)).map((e) => e.n), fromB.map((e) => e.n));
    // The dashboard's login through a standby: same-origin as the browser saw it, and a page
    // elsewhere still refused.
    const login = (origin: string) =>
      fetch(`${qb.url}/login`, {
        method: "POST",
        headers: { origin, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: API_TOKEN, next: "/" }),
        redirect: "manual",
      });
    const ours = await login(qb.url);
    await ours.body?.cancel();
    equal(ours.status, 303, "logged in through the standby");
    ok(ours.headers.get("set-cookie")?.includes("strider_session="));
    const theirs = await login("http://evil.example");
    await theirs.body?.cancel();
    equal(theirs.status, 403);
    // A worker killed behind a forwarding queen is gone from the serving one at once (its
    // socket closes through C), not after a ping timeout.
    await worker.stop("SIGKILL");
    await waitUntil(async () => (await droneNames(qa)).length === 0, 5_000, "the drone to go");
  } finally {
    await worker.stop();
    await Promise.all([a, b, c].map((q) => q.stop()));
  }
});

Deno.test("a worker given two queens fails over when the one it is connected to is killed", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const ports = [freePort(), freePort()];
  const a = await queenProc(database, ports[0], ["--lease", "20"]);
  await serving(a);
  const b = await queenProc(database, ports[1], ["--lease", "20"]);
  await b.waitFor(/forwarding to it from port/);
  const [qa, qb] = ports.map((port) => `http://127.0.0.1:${port}`);
  const front: TestQueen = { url: qa, proc: a, data: "" };
  // Connected to the standby B first (which forwards to A), A as its fallback.
  const worker = await startWorker(front, { name: "two-urls", connect: `${qb},${qa}` });
  try {
    const id = await submitJob(
      front,
      customJob(repo.path, { test: "for i in $(seq 1 120); do echo line-$i; sleep 0.02; done" }),
    );
    await waitUntil(async () => (await jobLog(front, id)).includes("line-30"), 30_000, "line-30");
    await b.stop("SIGKILL");
    const job = await waitForJob(front, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the same attempt went on through A");
    const lines = (await jobLog(front, id)).split("\n").filter((l) => l.startsWith("line-"));
    deepEqual(lines, Array.from({ length: 120 }, (_, i) => `line-${i + 1}`));
    match(worker.stdout + worker.stderr, new RegExp(`connected to ${qa}`));
  } finally {
    await worker.stop();
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("a serving queen whose database connections are cut stops, and the standby serves", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const ports = [freePort(), freePort()];
  const a = await queenProc(database, ports[0]);
  await serving(a);
  const b = await queenProc(database, ports[1]);
  await b.waitFor(/forwarding to it from port/);
  const admin = postgres(database, { max: 1, onnotice: () => {} });
  try {
    // As a database failover or a network cut would: every connection of queen A ends. B's
    // connections go too; it reconnects and takes over, and A must not go on serving.
    const [{ pid }] = await admin`SELECT pg_backend_pid() AS pid`;
    await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND pid != ${pid}`;
    const status = await a.exit(30_000);
    equal(status.code, 1, "A stops with an error, for its service manager to restart it");
    match(a.stderr, /lost the database connection that holds the lead/);
    await serving(b);
    const response = await api(
      { url: `http://127.0.0.1:${ports[1]}`, proc: b, data: "" },
      "/healthz",
    );
    equal(response.status, 200);
    await response.body?.cancel();
  } finally {
    await admin.end();
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("two queens started at once on a new database: one migrates, one serves, no job runs twice", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const marks = await Deno.makeTempDir({ prefix: "strider-marks-" });
  const ports = [freePort(), freePort()];
  const queens = await Promise.all(ports.map((port) => queenProc(database, port)));
  const lb = await startHaproxy(ports);
  const front: TestQueen = { url: lb.url, proc: queens[0], data: "" };
  await waitUntil(
    async () => {
      try {
        return (await api(front, "/healthz")).ok;
      } catch {
        return false;
      }
    },
    30_000,
    "a queen serving",
  );
  const workers = await Promise.all(
    ["w1", "w2"].map((name) =>
      startWorker(front, { name, connect: lb.url, args: ["--capacity", "3"] })
    ),
  );
  try {
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      // Each run leaves a file named for its job; a second run of a job would find it there.
      ids.push(
        await submitJob(
          front,
          customJob(repo.path, {
            test: `set -o noclobber; echo run > ${marks}/$STRIDER_JOB_ID`,
          }),
        ),
      );
    }
    for (const id of ids) {
      const job = await waitForJob(front, id, 120_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts.length, 1);
    }
    const files = [];
    for await (const entry of Deno.readDir(marks)) files.push(entry.name);
    equal(files.length, ids.length, "one run per job");
    const standing = queens.filter((q) => /standby: another queen/.test(q.stderr + q.stdout));
    equal(standing.length, 1, "exactly one queen waited");
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(queens.map((q) => q.stop()));
    await lb.stop();
    await Deno.remove(marks, { recursive: true });
  }
});

Deno.test("a queen started on a database with 10,000 queued jobs serves them in order", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  // The jobs go in as another queen would have left them: straight through the store.
  const store = await PostgresStore.open(
    { url: database, max: 8 },
    new SecretBox(parseSecretKey(SECRET_KEY, "test key"), []),
  );
  const t = Date.now();
  const ids = Array.from({ length: 10_000 }, (_, i) => `bulk-${String(i).padStart(5, "0")}`);
  for (let i = 0; i < ids.length; i += 500) {
    await Promise.all(
      ids.slice(i, i + 500).map((id, j) =>
        store.createJob(newRecord(
          id,
          JobSpecSchema.parse({
            ...customJob(repo.path, { test: `echo ran-${id}` }),
            job_id: id,
            secrets: { TOKEN: "kept-sealed" },
            trigger: {
              type: "manual",
              timestamp: new Date(t + i + j).toISOString(),
              source: { type: "API", app: "api" },
            },
          }),
          t + i + j,
        ))
      ),
    );
  }
  await store.close();
  const port = freePort();
  const queen = await queenProc(database, port);
  await serving(queen, 120_000);
  const front: TestQueen = { url: `http://127.0.0.1:${port}`, proc: queen, data: "" };
  const worker = await startWorker(front, { name: "bulk", args: ["--max-jobs", "3"] });
  try {
    const queued = await (await api(front, "/api/jobs?status=queued&limit=1")).json();
    ok(queued.next, "more than one page of queued jobs");
    for (const id of ids.slice(0, 3)) {
      const job = await waitForJob(front, id, 60_000);
      equal(job.result, "passed", job.error ?? "");
      ok((await jobLog(front, id)).includes(`ran-${id}`));
    }
    const last = await (await api(front, `/api/jobs/${ids[ids.length - 1]}`)).json();
    equal(last.status, "queued", "the newest waits its turn");
  } finally {
    await worker.stop();
    await queen.stop();
  }
});
