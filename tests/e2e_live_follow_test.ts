/**
 * Live output from any queen of a PostgreSQL cluster, all real: the test's own PostgreSQL,
 * two active queens sharing one database, workers, the CLI. A job owned by one queen (its only
 * worker is connected there) is followed through the other, whose streams are fed from the
 * database over LISTEN/NOTIFY (`queen/postgres/bus.ts`): every event once, in order, the log
 * rebuilt from them byte for byte the stored one, through dropped LISTEN connections, garbage
 * notifications, kill -9 of the owner (the other adopts the job) and a 54 MB log.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  API_TOKEN,
  CLIENT_PERMISSIONS,
  customJob,
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
import { freePort } from "./helpers/haproxy.ts";
import postgres from "postgres";
import type { RecordedEvent } from "../protocol/mod.ts";
import { JobSpecSchema } from "../protocol/mod.ts";
import { LogBuilder } from "../queen/job_log.ts";
import { Hub } from "../queen/hub.ts";
import { newRecord, Recorder } from "../queen/recorder.ts";
import { PostgresStore } from "../queen/postgres/store.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { parseSecretKey } from "../queen/secret_key.ts";

/** The key every queen of a cluster shares. */
const SECRET_KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

const folders: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of folders) Deno.removeSync(dir, { recursive: true });
});

async function queenProc(database: string, port: number, deno: string[] = []): Promise<Proc> {
  const data = await Deno.makeTempDir({ prefix: "strider-live-queen-" });
  folders.push(data);
  return new Proc([
    "run",
    ...QUEEN_PERMISSIONS,
    ...deno,
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
}

/**
 * Two active queens A and B (`deno` flags for B's runtime) on a new database, each serving and
 * scheduling. A job is owned by the queen whose worker claims it; the other follows it through
 * the cluster bus.
 */
async function twoQueens(deno: string[] = []) {
  const database = await (await postgresCluster()).newDatabase();
  const ports = [freePort(), freePort()];
  const a = await queenProc(database, ports[0]);
  const b = await queenProc(database, ports[1], deno);
  await Promise.all([a, b].map((proc) => proc.waitFor(/strider queen listening on/, 30_000)));
  const [qa, qb]: TestQueen[] = ports.map((port, i) => ({
    url: `http://127.0.0.1:${port}`,
    proc: [a, b][i],
    data: "",
  }));
  return { database, a, b, qa, qb };
}

/** The address of the queen owning job `id` (null: none), and how many jobs each queen owns. */
async function ownership(database: string, id: string) {
  const sql = postgres(database, { max: 1, onnotice: () => {} });
  try {
    const [job] = await sql`SELECT q.url FROM jobs j LEFT JOIN queens q ON q.id = j.owner
      WHERE j.id = ${id}`;
    const rows = await sql`SELECT q.url, count(j.id)::int AS jobs FROM queens q
      LEFT JOIN jobs j ON j.owner = q.id GROUP BY q.url`;
    return {
      owner: (job?.url ?? null) as string | null,
      jobs: Object.fromEntries(rows.map((r) => [r.url as string, r.jobs as number])),
    };
  } finally {
    await sql.end();
  }
}

/**
 * Reads a job's event stream from `url` to its end. `slow` waits that long after each chunk (a
 * client slower than the job). Keeps only what `keep` returns per event (a 54 MB log is not
 * kept twice).
 */
async function follow<T = RecordedEvent>(
  url: string,
  id: string,
  options: { slow?: number; keep?: (event: RecordedEvent) => T; connected?: () => void } = {},
): Promise<T[]> {
  const response = await fetch(`${url}/api/jobs/${id}/events`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
    signal: AbortSignal.timeout(180_000),
  });
  equal(response.status, 200);
  options.connected?.();
  const keep = options.keep ?? ((event) => event as T);
  const kept: T[] = [];
  let buffer = "";
  for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").find((line) => line.startsWith("data: "));
      if (data) kept.push(keep(JSON.parse(data.slice(6))));
    }
    if (options.slow) await new Promise((resolve) => setTimeout(resolve, options.slow));
  }
  return kept;
}

/** The job's log as the queen builds it, from its events. */
function logOf(events: RecordedEvent[]): string {
  const builder = LogBuilder.resume(0, true);
  return events.map((event) => builder.append(event.data)).join("");
}

/** Event numbers 1..N, each once and in order. */
function assertComplete(events: { n: number }[], what: string): void {
  deepEqual(events.map((e) => e.n), events.map((_, i) => i + 1), `${what}: no gap, no duplicate`);
}

/** The `follower` sockets a queen counts (its hub's listeners). */
async function followers(queen: TestQueen): Promise<number> {
  const text = await (await api(queen, "/metrics")).text();
  return Number(text.match(/^strider_sockets\{kind="follower"\} (\d+)/m)?.[1]);
}

/** A `/ws/browser` client that keeps the frames it gets. */
async function browserSocket(url: string) {
  const ws = new WebSocket(url.replace(/^http/, "ws") + "/ws/browser");
  const frames: Record<string, unknown>[] = [];
  ws.onmessage = (message) => frames.push(JSON.parse(message.data));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("the browser socket did not open"));
  });
  const closed = new Promise((resolve) => ws.onclose = resolve);
  return { ws, frames, close: async () => (ws.close(), await closed) };
}

/** What a browser socket got for `id`: `job:info`'s n, then the events after it. */
function browserEvents(frames: Record<string, unknown>[], id: string) {
  const info = frames.find((f) => f.event === "job:info" && f.id === id) as { n: number };
  ok(info, "job:info came");
  const events = frames.filter((f) => f.event === "browser")
    .map((f) => (f.args as RecordedEvent[])[0]).filter((e) => e.data.id === id);
  return { n: info.n, events };
}

const lines = (text: string) => text.split("\n").filter((l) => l.startsWith("line-"));
const range = (count: number) => Array.from({ length: count }, (_, i) => `line-${i + 1}`);

Deno.test("follow from another queen: SSE, logs --follow and a late joiner on queen B follow a job queen A owns, every line once, byte for byte the stored log", async () => {
  const { database, a, b, qa, qb } = await twoQueens();
  const repo = await makeRepo({ "a.txt": "a\n" });
  let worker: Proc | undefined;
  try {
    // Queued before any worker is there: the followers start before the job does.
    const id = await submitJob(
      qa,
      customJob(repo.path, { test: "for i in $(seq 1 200); do echo line-$i; sleep 0.01; done" }),
    );
    const baseline = await followers(qa);
    const bBaseline = await followers(qb);
    const early = Promise.withResolvers<void>();
    const fromStart = follow(qb.url, id, { connected: early.resolve });
    const logsFollow = new Proc([
      "run",
      ...CLIENT_PERMISSIONS,
      ENTRY,
      "logs",
      id,
      "--follow",
      "--queen",
      qb.url,
    ], { env: { STRIDER_API_TOKEN: API_TOKEN } });
    await early.promise;
    equal(await followers(qa), baseline, "B serves the stream itself, not through A");
    ok(await followers(qb) > bBaseline, "B counts its follower");
    // The only worker is A's: A claims the job and owns it.
    worker = await startWorker(qa, { name: "on-a" });
    await waitUntil(async () => (await jobLog(qa, id)).includes("line-60"), 60_000, "line-60");
    // A late joiner, mid-run, from the beginning.
    const late = await follow(qb.url, id);
    const streamed = await fromStart;
    const job = await waitForJob(qa, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts[0].drone, "on-a");
    const stored = await jobLog(qa, id);
    for (const [what, events] of [["from the start", streamed], ["late joiner", late]] as const) {
      assertComplete(events, what);
      equal(events.at(-1)!.data.event, "job:done", `${what}: ends with the job`);
      equal(logOf(events), stored, `${what}: the log rebuilt from the stream is the stored log`);
    }
    deepEqual(lines(stored), range(200));
    const status = await logsFollow.exit(60_000);
    equal(status.code, 0, logsFollow.stderr);
    const stdout = streamed.filter((e) => e.data.event === "job:cmd:stdout")
      .map((e) => (e.data as { text: string }).text).join("");
    equal(logsFollow.stdout, stdout, "logs --follow printed each line once, in order");
    deepEqual(lines(logsFollow.stdout), range(200));
    // A owned and ran the job; B, which streamed it, owns none.
    const { owner, jobs } = await ownership(database, id);
    equal(owner, qa.url, "A owns the job");
    equal(jobs[qb.url] ?? 0, 0, "B owns no job");
    // And B's own reads of the finished job.
    equal(await jobLog(qb, id), stored);
    const list = await (await api(qb, "/api/jobs?limit=5")).json();
    equal(list.jobs[0].id, id);
  } finally {
    await worker?.stop();
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("hostile: the LISTEN connections killed mid-job and garbage notifications: every line once, no crash", async () => {
  const { database, a, b, qa, qb } = await twoQueens();
  const repo = await makeRepo({ "a.txt": "a\n" });
  const admin = postgres(database, { max: 1, onnotice: () => {} });
  const worker = await startWorker(qa, { name: "on-a" });
  try {
    const id = await submitJob(
      qa,
      customJob(repo.path, { test: "for i in $(seq 1 300); do echo line-$i; sleep 0.01; done" }),
    );
    const streams = [follow(qb.url, id), follow(qa.url, id)];
    const socket = await browserSocket(qb.url);
    socket.ws.send(JSON.stringify({ event: "job:query-info", id }));
    await waitUntil(async () => (await jobLog(qa, id)).includes("line-40"), 60_000, "line-40");
    const kill = () =>
      admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'strider-bus' AND datname = current_database()`;
    const killed = await kill();
    ok(killed.length >= 2, `both queens' LISTEN connections were killed (${killed.length})`);
    // Garbage on the channel: unknown ids, bad numbers, a stranger's text, a huge number for
    // the real job, a payload near PostgreSQL's limit.
    for (
      const payload of [
        "",
        "garbage",
        "no-such-job 5 zz",
        `${id} -3 zz`,
        `${id} 99999999 zz`,
        `${id} NaN zz`,
        "x".repeat(7_900),
        `../../${id} 1 zz`,
      ]
    ) {
      await admin`SELECT pg_notify('strider_events', ${payload})`;
    }
    await waitUntil(async () => (await jobLog(qa, id)).includes("line-150"), 60_000, "line-150");
    await kill();
    const [onB, onA] = await Promise.all(streams);
    const job = await waitForJob(qa, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    const stored = await jobLog(qa, id);
    deepEqual(lines(stored), range(300));
    for (const [what, events] of [["B, following", onB], ["A, the owner", onA]] as const) {
      assertComplete(events, what);
      equal(logOf(events), stored, `${what}: byte for byte the stored log`);
    }
    equal((await ownership(database, id)).owner, qa.url, "A owned the job throughout");
    // The browser socket (through B) got the rest after its job:info, once each.
    await waitUntil(
      () =>
        socket.frames.some((f) => f.event === "browser" && JSON.stringify(f).includes("job:done")),
      30_000,
      "the browser's job:done",
    );
    const seen = browserEvents(socket.frames, id);
    deepEqual(
      seen.events.map((e) => e.n),
      Array.from({ length: onB.length - seen.n }, (_, i) => seen.n + i + 1),
    );
    await socket.close();
    match(b.stderr, /cluster bus: the LISTEN connection dropped/);
    // Both queens still answer.
    for (const queen of [qa, qb]) equal((await api(queen, `/api/jobs/${id}/log`)).status, 200);
    ok(!a.exited && !b.exited);
  } finally {
    await admin.end();
    await worker.stop();
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("logs --follow on queen B goes on through kill -9 of queen A, which owns the job: B adopts it, the worker reconnects to B, every line once", async () => {
  const { database, a, b, qa, qb } = await twoQueens();
  const repo = await makeRepo({ "a.txt": "a\n" });
  // The worker knows both queens and connects to the first, A (so A claims and owns its job);
  // it moves to B once A is gone.
  const worker = await startWorker(qa, { name: "both", connect: `${qa.url},${qb.url}` });
  try {
    const id = await submitJob(
      qa,
      customJob(repo.path, { test: "for i in $(seq 1 250); do echo line-$i; sleep 0.02; done" }),
    );
    const logsFollow = new Proc([
      "run",
      ...CLIENT_PERMISSIONS,
      ENTRY,
      "logs",
      id,
      "--follow",
      "--queen",
      qb.url,
    ], { env: { STRIDER_API_TOKEN: API_TOKEN } });
    await waitUntil(() => logsFollow.stdout.includes("line-40\n"), 60_000, "line-40 on B");
    equal((await ownership(database, id)).owner, qa.url, "A owns the running job");
    await a.stop("SIGKILL");
    await b.waitFor(/is gone: adopting its 1 unfinished jobs/, 60_000);
    const status = await logsFollow.exit(120_000);
    equal(status.code, 0, logsFollow.stderr);
    deepEqual(
      lines(logsFollow.stdout),
      range(250),
      "every line once, in order, across the adoption",
    );
    const job = await waitForJob(qb, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    equal(job.attempts.length, 1, "the worker re-attached the same attempt on B");
    equal((await ownership(database, id)).owner, qb.url, "B owns the job it adopted");
    ok(!b.exited, "B is still up");
  } finally {
    await worker.stop();
    await Promise.all([a.stop(), b.stop()]);
  }
});

async function procKib(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))![1]);
}

Deno.test("a 54 MB log followed through queen B by a slow client: B holds none of it", async () => {
  // B's JavaScript heap may not exceed 32 MiB (and 2 MiB per young semi-space), less than the
  // log: holding it would end B, and the heap cannot hide a growth of the process past it.
  const { database, a, b, qa, qb } = await twoQueens([
    "--v8-flags=--max-old-space-size=32,--max-semi-space-size=2",
  ]);
  const repo = await makeRepo({ "a.txt": "a\n" });
  const worker = await startWorker(qa, { name: "on-a" });
  const bigJob = (bytes: number) =>
    submitJob(qa, customJob(repo.path, { test: `head -c ${bytes} /dev/urandom | base64 -w 100` }));
  const keepSize = (counter: { bytes: number }) => (event: RecordedEvent) => {
    if ("text" in event.data) counter.bytes += new TextEncoder().encode(event.data.text).length;
    return { n: event.n, event: event.data.event };
  };
  try {
    // A first job of 11 MB through the same path and as slowly: what any stream costs once (B's
    // heap grown to its working size, under the cap above) is paid before the baseline is taken.
    const small = { bytes: 0 };
    assertComplete(
      await follow(qb.url, await bigJob(8_000_000), { slow: 2, keep: keepSize(small) }),
      "11 MB",
    );
    // B's peak resident size so far (the kernel's high-water mark: no sample can miss a peak).
    const before = await procKib(b.pid, "VmHWM");
    const big = { bytes: 0 };
    const id = await bigJob(40_000_000);
    const events = await follow(qb.url, id, { slow: 2, keep: keepSize(big) });
    const peak = await procKib(b.pid, "VmHWM");
    const job = await waitForJob(qa, id, 120_000);
    equal(job.result, "passed", job.error ?? "");
    assertComplete(events, "the slow client's stream");
    equal((await ownership(database, id)).owner, qa.url, "A owned the job B streamed");
    const log = await (await api(qa, `/api/jobs/${id}/log`)).arrayBuffer();
    ok(log.byteLength > 50_000_000, `a 54 MB log (${log.byteLength})`);
    ok(big.bytes >= 50_000_000, `every byte of output streamed (${big.bytes})`);
    const grew = (peak - before) * 1024;
    ok(
      grew < log.byteLength * 0.8,
      `B grew by ${grew} bytes following a ${log.byteLength}-byte log`,
    );
    ok(!b.exited, "B is still up");
  } finally {
    await worker.stop();
    await Promise.all([a.stop(), b.stop()]);
  }
});

const T = Date.parse("2026-11-30T12:00:00Z");

Deno.test("a job another queen records reaches this queen's browser socket and SSE live (how active queens see each other's jobs)", async () => {
  const { database, a, b, qa } = await twoQueens();
  // The "other queen": a store and recorder of the test's own on the same database.
  const other = await PostgresStore.open(
    { url: database, max: 2 },
    new SecretBox(parseSecretKey(SECRET_KEY, "test key"), []),
  );
  try {
    const id = "elsewhere-1";
    const spec = JobSpecSchema.parse({
      job_id: id,
      repo: { url: "https://git.example/app.git" },
      ref: { branch: "main" },
    });
    const record = newRecord(id, spec, T);
    await other.createJob(record);
    const recorder = new Recorder(other, new Hub());
    let seq = 0;
    const write = async (count: number) => {
      for (let i = 0; i < count; i++) {
        recorder.record(record, {
          event: "job:stdout",
          id,
          attempt: 1,
          seq: ++seq,
          text: `line-${seq}\n`,
        }, T + seq);
      }
      await new Promise<void>((resolve) => other.afterCommit(resolve));
    };
    await write(5);
    // A browser on queen A (which never saw this job) follows it, and an SSE stream too.
    const socket = await browserSocket(qa.url);
    socket.ws.send(JSON.stringify({ event: "job:query-info", id }));
    socket.ws.send(JSON.stringify({ event: "overview:follow" }));
    await waitUntil(() => socket.frames.some((f) => f.event === "job:info"), 30_000, "job:info");
    const sse = follow(qa.url, id);
    for (let i = 0; i < 20; i++) await write(3);
    recorder.record(record, {
      event: "job:done",
      id,
      attempt: 1,
      seq: 0,
      timestamp: T + 1000,
      result: "passed",
    }, T + 1000);
    await new Promise<void>((resolve) => other.afterCommit(resolve));
    const streamed = await sse;
    assertComplete(streamed, "SSE on A");
    equal(streamed.length, 66);
    equal(logOf(streamed), await jobLog(qa, id));
    await waitUntil(
      () =>
        socket.frames.some((f) => f.event === "browser" && JSON.stringify(f).includes("job:done")),
      30_000,
      "the browser's job:done",
    );
    const seen = browserEvents(socket.frames, id);
    ok(seen.n >= 5);
    deepEqual(
      seen.events.map((e) => e.n),
      Array.from({ length: 66 - seen.n }, (_, i) => seen.n + i + 1),
      "the browser got every event after its job:info once, in order",
    );
    // The overview on A lists the job as the other queen left it.
    await waitUntil(
      () =>
        socket.frames.some((f) =>
          f.event === "overview" &&
          (f.jobs as { id: string; status: string }[]).some((j) =>
            j.id === id && j.status === "done"
          )
        ),
      30_000,
      "the overview to show the job done",
    );
    await socket.close();
  } finally {
    await other.close();
    await Promise.all([a.stop(), b.stop()]);
  }
});
