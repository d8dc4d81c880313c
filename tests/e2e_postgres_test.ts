/**
 * Queens on PostgreSQL behind HAProxy, all real: a PostgreSQL cluster of the test's own, queens
 * sharing one database (each serves and schedules; the survivors adopt a dead one's jobs),
 * workers connected to them directly or through the load balancer.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  API_TOKEN,
  customJob,
  ENTRY,
  getJob,
  jobLog,
  ownDroneNames,
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
import { TcpProxy } from "./helpers/tcp_proxy.ts";
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

/** Every queen a test started, to show what they said when it fails. */
const started: Proc[] = [];

/** `Deno.test`, printing the queens' output when the test fails (seen on a loaded machine). */
function clusterTest(name: string, fn: () => Promise<void>): void {
  Deno.test(name, async () => {
    const from = started.length;
    try {
      await fn();
    } catch (error) {
      for (const [i, proc] of started.slice(from).entries()) {
        console.error(`--- queen ${i + 1}:\n${proc.stdout}${proc.stderr}`);
      }
      throw error;
    }
  });
}

/** A queen on `database` at a fixed port; it prints "listening" only once it serves. */
async function queenProc(database: string, port: number, args: string[] = []): Promise<Proc> {
  const data = await Deno.makeTempDir({ prefix: "strider-pg-queen-" });
  folders.push(data);
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
    ...args,
  ], { env: { STRIDER_DATABASE: database, STRIDER_SECRET_KEY: SECRET_KEY } });
  started.push(proc);
  return proc;
}

const serving = (proc: Proc, timeoutMs = 30_000) =>
  proc.waitFor(/strider queen listening on/, timeoutMs);

/** Queens on `database` at fresh ports, each serving; with their URLs. */
async function queens(
  database: string,
  n: number,
  args: string[] = [],
): Promise<{ ports: number[]; procs: Proc[]; at: TestQueen[] }> {
  const ports = Array.from({ length: n }, () => freePort());
  const procs = await Promise.all(ports.map((port) => queenProc(database, port, args)));
  await Promise.all(procs.map((proc) => serving(proc)));
  const at = ports.map((port, i) => ({
    url: `http://127.0.0.1:${port}`,
    proc: procs[i],
    data: "",
  }));
  return { ports, procs, at };
}

/** The queen (index) whose drone list holds the worker `name`. */
async function queenOf(at: TestQueen[], name: string): Promise<number> {
  for (let i = 0; i < at.length; i++) {
    try {
      if ((await ownDroneNames(at[i])).includes(name)) return i;
    } catch {
      // A killed queen.
    }
  }
  return -1;
}

/** Lines `line-1`.. of a log. */
const linesOf = (log: string) => log.split("\n").filter((l) => l.startsWith("line-"));
const numbered = (n: number) => Array.from({ length: n }, (_, i) => `line-${i + 1}`);

clusterTest(
  "kill -9 of the queen owning a running job: its worker reconnects through HAProxy to another, no line lost or doubled",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const { ports, procs, at } = await queens(database, 2, ["--lease", "20"]);
    const lb = await startHaproxy(ports);
    const front: TestQueen = { url: lb.url, proc: procs[0], data: "" };
    const worker = await startWorker(front, { name: "through-lb", connect: lb.url });
    try {
      const id = await submitJob(
        front,
        customJob(repo.path, { test: "for i in $(seq 1 150); do echo line-$i; sleep 0.02; done" }),
      );
      await waitUntil(async () => (await jobLog(front, id)).includes("line-40"), 30_000, "line-40");
      // The queen the worker is connected to owns the job: it is the one killed.
      const owner = await queenOf(at, "through-lb");
      ok(owner >= 0, "the worker is on a queen");
      await procs[owner].stop("SIGKILL");
      const survivor = at[1 - owner];
      const job = await waitForJob(survivor, id, 60_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts.length, 1, "the worker re-attached to the survivor; no second run");
      deepEqual(linesOf(await jobLog(survivor, id)), numbered(150));
      match(procs[1 - owner].stderr, /is gone: adopting its 1 unfinished jobs/);
    } finally {
      await worker.stop();
      await Promise.all(procs.map((q) => q.stop()));
      await lb.stop();
    }
  },
);

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

clusterTest(
  "any queen serves anything: submit to one, run on a worker of another, read from a third",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const { procs, at: [qa, qb, qc] } = await queens(database, 3);
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
      const job = await waitForJob(qa, id);
      equal(job.result, "passed");
      equal(job.attempts[0].drone, "on-c", "it ran on the worker of queen C");
      // The same stream from every queen, from the database: no gap, no duplicate.
      const [fromA, fromB, fromC] = await Promise.all([qa, qb, qc].map((q) => follow(q.url, id)));
      deepEqual(fromB.map((e) => e.n), fromB.map((_, i) => i + 1), "no gap, no duplicate");
      deepEqual(fromA.map((e) => e.n), fromB.map((e) => e.n));
      deepEqual(fromC.map((e) => e.n), fromB.map((e) => e.n));
      const lines = fromB.filter((e) => (e.data as { event: string }).event === "job:cmd:stdout")
        .map((e) => String((e.data as { text: string }).text)).join("").split("\n")
        .filter((l) => l.startsWith("line-"));
      deepEqual(lines, numbered(60));
      // The artifact went up through C and comes down from B, byte for byte (chunked in the DB).
      const sha = (await jobLog(qa, id)).match(/([0-9a-f]{64}) {2}out\.bin/)![1];
      const file = await api(qb, `/api/jobs/${id}/artifacts/out.bin`);
      equal(file.status, 200);
      const bytes = new Uint8Array(await file.arrayBuffer());
      equal(bytes.length, 2_500_000);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      equal(Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""), sha);
      // The dashboard's login on any queen: same-origin, and a page elsewhere refused.
      const login = (origin: string) =>
        fetch(`${qb.url}/login`, {
          method: "POST",
          headers: { origin, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: API_TOKEN, next: "/" }),
          redirect: "manual",
        });
      const ours = await login(qb.url);
      await ours.body?.cancel();
      equal(ours.status, 303, "logged in on another queen");
      ok(ours.headers.get("set-cookie")?.includes("strider_session="));
      const theirs = await login("http://evil.example");
      await theirs.body?.cancel();
      equal(theirs.status, 403);
    } finally {
      await worker.stop();
      await Promise.all(procs.map((q) => q.stop()));
    }
  },
);

clusterTest(
  "a worker given two queens fails over when the one it is connected to is killed",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const { procs: [a, b], at: [qa, qb] } = await queens(database, 2, ["--lease", "20"]);
    // Connected to B first, A as its fallback; the job is submitted to A and runs on B's worker.
    const worker = await startWorker(qb, { name: "two-urls", connect: `${qb.url},${qa.url}` });
    try {
      const id = await submitJob(
        qa,
        customJob(repo.path, { test: "for i in $(seq 1 120); do echo line-$i; sleep 0.02; done" }),
      );
      await waitUntil(async () => (await jobLog(qa, id)).includes("line-30"), 30_000, "line-30");
      await b.stop("SIGKILL");
      const job = await waitForJob(qa, id, 60_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts.length, 1, "the same attempt went on through A");
      deepEqual(linesOf(await jobLog(qa, id)), numbered(120));
      match(worker.stdout + worker.stderr, new RegExp(`connected to ${qa.url}`));
    } finally {
      await worker.stop();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
);

clusterTest(
  "a worker that moves to another queen while its job's owner lives: the job is handed over, no line lost",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const { procs: [a, b], at: [qa, qb], ports } = await queens(database, 2, ["--lease", "20"]);
    // The worker reaches A through a proxy whose connections the test cuts (a network blip);
    // its next try goes to B, while A lives on.
    const proxy = new TcpProxy({ port: ports[0] });
    const worker = await startWorker(qa, { name: "mover", connect: `${proxy.url},${qb.url}` });
    try {
      const id = await submitJob(
        qa,
        customJob(repo.path, { test: "for i in $(seq 1 120); do echo line-$i; sleep 0.02; done" }),
      );
      await waitUntil(async () => (await jobLog(qa, id)).includes("line-30"), 30_000, "line-30");
      proxy.cut();
      await waitUntil(async () => (await ownDroneNames(qb)).includes("mover"), 30_000, "on B");
      const job = await waitForJob(qb, id, 60_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts.length, 1, "the same attempt went on through B");
      deepEqual(linesOf(await jobLog(qb, id)), numbered(120));
      match(a.stderr, /handed over to queen/);
      ok(!a.exited && !b.exited, "both queens live on");
    } finally {
      await worker.stop();
      await proxy.close();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
);

clusterTest(
  "a queen whose liveness lock is lost stops, and another adopts its running job",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const { procs: [a, b], at: [qa, qb] } = await queens(database, 2, ["--lease", "20"]);
    const worker = await startWorker(qa, { name: "cut", connect: `${qa.url},${qb.url}` });
    const admin = postgres(database, { max: 1, onnotice: () => {} });
    try {
      const id = await submitJob(
        qb,
        customJob(repo.path, { test: "for i in $(seq 1 100); do echo line-$i; sleep 0.02; done" }),
      );
      await waitUntil(async () => (await jobLog(qb, id)).includes("line-20"), 30_000, "line-20");
      // As a network cut would: the connection holding A's lock ends (its pool lives on). A
      // must stop, for B may adopt its jobs at once.
      const [{ owner }] = await admin`SELECT owner FROM jobs WHERE id = ${id}`;
      const [{ lock }] = await admin`SELECT lock FROM queens WHERE id = ${owner}`;
      await admin`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
      AND granted AND ((classid::bigint << 32) | objid::bigint) = ${lock}::bigint`;
      const status = await a.exit(30_000);
      equal(status.code, 1, "A stops with an error, for its service manager to restart it");
      // Whichever A sees first: its lock gone, or the fence (B adopted the job, and A's next
      // write to it was refused: nothing of that batch was acknowledged).
      match(
        a.stderr,
        /lost the database connection that holds this queen's lock|owned by another queen now/,
      );
      const job = await waitForJob(qb, id, 60_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts.length, 1);
      deepEqual(linesOf(await jobLog(qb, id)), numbered(100));
    } finally {
      await admin.end();
      await worker.stop();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
);

clusterTest(
  "a queen frozen (SIGSTOP) with a running job: a survivor ends it and adopts the job, no line lost",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const { procs: [a, b], at: [qa, qb] } = await queens(database, 2, ["--lease", "5"]);
    const worker = await startWorker(qa, { name: "thawed", connect: `${qa.url},${qb.url}` });
    try {
      const id = await submitJob(
        qb,
        customJob(repo.path, { test: "for i in $(seq 1 400); do echo line-$i; sleep 0.02; done" }),
      );
      await waitUntil(async () => (await jobLog(qb, id)).includes("line-20"), 30_000, "line-20");
      // To PostgreSQL A is alive (its connections are open, its lock held), but it does nothing:
      // its worker's watchdog moves it to B, and B ends A's connections past the lease.
      a.signal("SIGSTOP");
      const job = await waitForJob(qb, id, 90_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts.length, 1, "the same attempt went on through B");
      deepEqual(linesOf(await jobLog(qb, id)), numbered(400));
      match(b.stderr, /silent for \d+ s: ending its database connections/);
      // Woken, A finds its lock gone (or its next write fenced) and stops.
      a.signal("SIGCONT");
      const status = await a.exit(30_000);
      ok(status.code !== 0, "A stops rather than go on");
    } finally {
      a.signal("SIGCONT");
      await worker.stop();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
);

clusterTest(
  "a queen killed while three serve a busy queue: every job ends passed, each attempt run once",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const marks = await Deno.makeTempDir({ prefix: "strider-marks-" });
    const { procs, at } = await queens(database, 3, ["--lease", "10"]);
    const urls = at.map((q) => q.url);
    // Each worker knows every queen, its own first.
    const workers = await Promise.all(at.map((q, i) =>
      startWorker(q, {
        name: `k${i + 1}`,
        connect: [...urls.slice(i), ...urls.slice(0, i)].join(","),
        args: ["--capacity", "2"],
      })
    ));
    try {
      // An attempt that ran twice would find its mark.
      const ids = await Promise.all(Array.from({ length: 24 }, (_, i) =>
        submitJob(
          at[i % 3],
          customJob(repo.path, {
            test: `set -o noclobber; echo run > ${marks}/$STRIDER_JOB_ID.$STRIDER_ATTEMPT; ` +
              "for i in $(seq 1 40); do echo line-$i; sleep 0.02; done",
          }),
        )));
      await waitUntil(
        async () => {
          const page = await (await api(at[1], "/api/jobs?status=started&limit=100")).json();
          return page.jobs.length >= 4;
        },
        30_000,
        "jobs running on several queens",
      );
      await procs[0].stop("SIGKILL");
      for (const id of ids) {
        const job = await waitForJob(at[1], id, 120_000);
        equal(job.result, "passed", `${id}: ${job.error}`);
        if (job.attempts.length === 1) {
          // From the queen that said it ended: read there, the log is complete (another queen
          // reads the database, which the owner's last batch may reach a moment later).
          const log = await jobLog(at[1], id);
          deepEqual(linesOf(log), numbered(40), `${id}: every line once:\n${log}`);
        }
      }
      match(procs[1].stderr + procs[2].stderr, /is gone: adopting its \d+ unfinished jobs/);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await Promise.all(procs.map((q) => q.stop()));
      await Deno.remove(marks, { recursive: true });
    }
  },
);

clusterTest(
  "three queens racing over one queue: every job runs once, on drones of several queens",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const marks = await Deno.makeTempDir({ prefix: "strider-marks-" });
    // Started at once on a new database: one migrates, all serve.
    const { procs, at } = await queens(database, 3);
    const workers = await Promise.all(
      at.map((q, i) => startWorker(q, { name: `w${i + 1}`, args: ["--capacity", "2"] })),
    );
    try {
      // Each run leaves a file named for its job and attempt; a second run would find it there.
      const specs = Array.from({ length: 60 }, () =>
        customJob(repo.path, {
          test: `set -o noclobber; echo run > ${marks}/$STRIDER_JOB_ID; sleep 0.1`,
        }));
      const ids = await Promise.all(specs.map((spec, i) => submitJob(at[i % 3], spec)));
      const drones = new Set<string>();
      for (const id of ids) {
        const job = await waitForJob(at[0], id, 120_000);
        equal(job.result, "passed", job.error ?? "");
        equal(job.attempts.length, 1);
        drones.add(job.attempts[0].drone);
      }
      const files = [];
      for await (const entry of Deno.readDir(marks)) files.push(entry.name);
      equal(files.length, ids.length, "one run per job");
      ok(drones.size >= 2, `work spread over the queens' drones: ${[...drones]}`);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await Promise.all(procs.map((q) => q.stop()));
      await Deno.remove(marks, { recursive: true });
    }
  },
);

clusterTest("per-branch serialization and priorities hold across queens", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const dir = await Deno.makeTempDir({ prefix: "strider-serial-" });
  const { procs, at } = await queens(database, 2);
  const workers = await Promise.all(
    at.map((q, i) => startWorker(q, { name: `s${i + 1}`, args: ["--capacity", "2"] })),
  );
  try {
    // Four jobs of one branch through both queens, with four free slots over two queens' drones:
    // never two at once (the lock directory would exist).
    const serial = await Promise.all([0, 1, 2, 3].map((i) =>
      submitJob(
        at[i % 2],
        customJob(repo.path, {
          test: `mkdir ${dir}/held && echo ${i} >> ${dir}/order && sleep 0.4 && rmdir ${dir}/held`,
        }, { serialize: true }),
      )
    ));
    for (const id of serial) {
      const job = await waitForJob(at[0], id, 60_000);
      equal(job.result, "passed", job.error ?? "");
    }
    equal((await Deno.readTextFile(`${dir}/order`)).trim().split("\n").length, 4);
    // Priorities: jobs submitted to either queen wait in the shared queue while the one worker
    // that may run them (label "ranked", on B) is busy; they go out highest priority first.
    const ranker = await startWorker(at[1], {
      name: "ranker",
      args: ["--capacity", "1", "--labels", "ranked"],
    });
    workers.push(ranker);
    const gated = { labels: ["ranked"] };
    const blockers = await Promise.all([0, 1].map(() =>
      submitJob(
        at[1],
        customJob(repo.path, { test: `while [ ! -e ${dir}/go ]; do sleep 0.05; done` }, gated),
      )
    ));
    const queued = async () =>
      (await (await api(at[0], "/api/jobs?status=queued&limit=100")).json()).jobs.length;
    await waitUntil(async () => await queued() === 0, 30_000, "the blockers out of the queue");
    const ranked: string[] = [];
    for (const [i, priority] of [0, 0, 0, 0, 5, 5, 5, 5].entries()) {
      ranked.push(
        await submitJob(
          at[i % 2],
          customJob(repo.path, { test: `echo p${priority} >> ${dir}/ranks` }, {
            priority,
            ...gated,
          }),
        ),
      );
    }
    equal(await queued(), 8, "the ranked jobs wait in the shared queue");
    await Deno.writeTextFile(`${dir}/go`, "");
    for (const id of [...blockers, ...ranked]) {
      const job = await waitForJob(at[0], id, 60_000);
      equal(job.result, "passed", job.error ?? "");
      equal(job.attempts[0].drone, "ranker");
    }
    const ranks = (await Deno.readTextFile(`${dir}/ranks`)).trim().split("\n");
    deepEqual(ranks, ["p5", "p5", "p5", "p5", "p0", "p0", "p0", "p0"]);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(procs.map((q) => q.stop()));
    await Deno.remove(dir, { recursive: true });
  }
});

clusterTest(
  "a job waiting in a busy worker's queue moves to a free slot of another queen's worker",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const dir = await Deno.makeTempDir({ prefix: "strider-gates-" });
    const { procs, at } = await queens(database, 2);
    const workers = await Promise.all(
      at.map((q, i) => startWorker(q, { name: `one${i + 1}`, args: ["--capacity", "1"] })),
    );
    try {
      // One slot per worker, each held by a job that waits for its gate.
      const held = await Promise.all([1, 2].map((gate) =>
        submitJob(
          at[gate - 1],
          customJob(repo.path, {
            test: `echo holding; while [ ! -e ${dir}/gate${gate} ]; do sleep 0.05; done`,
          }),
        )
      ));
      for (const id of held) {
        await waitUntil(async () => (await jobLog(at[0], id)).includes("holding"), 30_000);
      }
      // Both busy: the next job waits in one worker's own queue (the seed's rule).
      const next = await submitJob(at[0], customJob(repo.path, { test: "echo moved" }));
      let waitingAt = "";
      await waitUntil(
        async () => {
          const job = await getJob(at[0], next);
          waitingAt = job.drone ?? "";
          return job.status === "dispatched";
        },
        30_000,
        "the job in a worker's queue",
      );
      const blockers = await Promise.all(held.map((id) => getJob(at[0], id)));
      // The other worker's slot frees; the one the job waits at stays busy.
      const other = blockers.findIndex((job) => job.drone !== waitingAt);
      ok(other >= 0, `the held jobs ran on both workers: ${blockers.map((j) => j.drone)}`);
      await Deno.writeTextFile(`${dir}/gate${other + 1}`, "");
      const moved = await waitForJob(at[1], next, 30_000);
      equal(moved.result, "passed", moved.error ?? "");
      equal(moved.attempts.length, 1, "given back uncharged");
      equal(moved.attempts[0].drone, blockers[other].drone, "it ran where the slot freed");
      equal((await getJob(at[0], held[1 - other])).status, "started", "its first worker is busy");
      await Deno.writeTextFile(`${dir}/gate${2 - other}`, "");
      for (const id of held) equal((await waitForJob(at[0], id, 30_000)).result, "passed");
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await Promise.all(procs.map((q) => q.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** A build as a queen shows it. */
async function buildOn(queen: TestQueen, id: string): Promise<{ status: string; result: string }> {
  return await (await api(queen, `/api/builds/${id}`)).json();
}

clusterTest(
  "a build's jobs run on another queen's worker; a build whose queen dies is adopted",
  async () => {
    const database = await (await postgresCluster()).newDatabase();
    const repo = await makeRepo({ "a.txt": "a\n" });
    const dir = await Deno.makeTempDir({ prefix: "strider-builds-" });
    const { procs: [a, b], at: [qa, qb] } = await queens(database, 2, ["--lease", "20"]);
    // The only worker is B's: every job of A's builds runs there.
    const worker = await startWorker(qb, { name: "b-only", args: ["--capacity", "4"] });
    try {
      const submitBuild = async (test: string) => {
        const response = await api(qa, "/api/jobs", {
          method: "POST",
          body: JSON.stringify(customJob(repo.path, { test }, { matrix: { n: ["1", "2"] } })),
        });
        equal(response.status, 201);
        return (await response.json()).build as string;
      };
      const first = await submitBuild("echo n=$STRIDER_MATRIX_N");
      await waitUntil(async () => (await buildOn(qa, first)).status === "done", 60_000, "build");
      equal((await buildOn(qa, first)).result, "passed", "A followed its build to the end");
      // A build the repository's strider.json asks for: its plan job runs on B (with the job's
      // secrets there, B queues the jobs), A adds them to the build it follows.
      const planned = await makeRepo({
        "strider.json": JSON.stringify({
          plugins: ["custom"],
          config: { custom: { test: 'echo "node=$STRIDER_MATRIX_NODE"' } },
          matrix: { node: ["18", "20"] },
        }),
      });
      const plan = await submitJob(qa, {
        repo: { url: planned.path },
        ref: { branch: "main" },
        secrets: { TOKEN: "kept-for-the-jobs" },
      });
      await waitUntil(async () => (await buildOn(qa, plan)).status === "done", 60_000, "planned");
      const grown = await (await api(qa, `/api/builds/${plan}`)).json();
      equal(grown.result, "passed", JSON.stringify(grown.jobs));
      deepEqual(grown.jobs.map((j: { name: string }) => j.name), ["plan", "node-18", "node-20"]);
      // Cancelled through B, which does not follow it: A does, and ends it cancelled.
      const held = await submitBuild(`while true; do sleep 0.05; done`);
      await waitUntil(
        async () => {
          const page = await (await api(qb, "/api/jobs?status=started&limit=10")).json();
          return page.jobs.length === 2;
        },
        30_000,
        "both jobs running on B",
      );
      const cancel = await api(qb, `/api/builds/${held}/cancel`, { method: "POST" });
      equal(cancel.status, 202);
      await cancel.body?.cancel();
      await waitUntil(async () => (await buildOn(qa, held)).status === "done", 60_000, "cancelled");
      equal((await buildOn(qa, held)).result, "cancelled");
      // A second build of A's, its jobs held on B; A dies; B adopts the build and ends it.
      const second = await submitBuild(
        `echo holding; while [ ! -e ${dir}/go ]; do sleep 0.05; done`,
      );
      await waitUntil(
        async () => {
          const page = await (await api(qb, "/api/jobs?status=started&limit=10")).json();
          return page.jobs.length === 2;
        },
        30_000,
        "both jobs running on B",
      );
      await a.stop("SIGKILL");
      await Deno.writeTextFile(`${dir}/go`, "");
      await waitUntil(async () => (await buildOn(qb, second)).status === "done", 60_000, "build 2");
      equal((await buildOn(qb, second)).result, "passed");
      match(b.stderr, /queen q-[0-9a-f]+ is gone/);
    } finally {
      await worker.stop();
      await Promise.all([a.stop(), b.stop()]);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

clusterTest("cancel through a queen that does not own the job", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const { procs, at: [qa, qb] } = await queens(database, 2);
  const worker = await startWorker(qb, { name: "runs-it" });
  try {
    const running = await submitJob(
      qb,
      customJob(repo.path, { test: "echo started; sleep 60" }),
    );
    await waitUntil(async () => (await jobLog(qa, running)).includes("started"), 30_000);
    // A owns nothing of it: the worker is on B, which claimed it.
    const answer = await api(qa, `/api/jobs/${running}/cancel`, { method: "POST" });
    equal(answer.status, 202);
    await answer.body?.cancel();
    const job = await waitForJob(qa, running, 30_000);
    equal(job.result, "cancelled", job.error ?? "");
    // A job no drone can run waits in the shared queue, owned by none: cancelled there.
    const waiting = await submitJob(
      qb,
      customJob(repo.path, { test: "true" }, { labels: ["gpu"] }),
    );
    const again = await api(qa, `/api/jobs/${waiting}/cancel`, { method: "POST" });
    equal(again.status, 202);
    await again.body?.cancel();
    equal((await waitForJob(qb, waiting, 30_000)).result, "cancelled");
    const late = await api(qa, `/api/jobs/${waiting}/cancel`, { method: "POST" });
    equal(late.status, 409, "a finished job cannot be cancelled again");
    await late.body?.cancel();
  } finally {
    await worker.stop();
    await Promise.all(procs.map((q) => q.stop()));
  }
});

clusterTest(
  "a queen started on a database with 10,000 queued jobs serves them in order",
  async () => {
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
  },
);
