/**
 * `deno task bench`: strider's speed beside the physical limit it is bounded by, measured in the
 * same run on the same machine. Prints a table and writes bench/results.json.
 *
 * Dispatch latency: time from `POST /api/jobs` to the queen recording the worker's
 * `job:started`, for trivial jobs submitted one after another (each once the previous finished),
 * beside the round trip of a bare
 * WebSocket message on loopback (the least any push dispatch can cost).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startQueen } from "../queen/mod.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const JOBS = Number(Deno.env.get("BENCH_JOBS") ?? 200);
const WORKER_TOKEN = "bench-worker-token";
const API_TOKEN = "bench-api-token";

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function stats(samples: number[]) {
  const sorted = samples.toSorted((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function git(cwd: string, ...args: string[]) {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_AUTHOR_NAME: "bench",
      GIT_AUTHOR_EMAIL: "bench@strider.invalid",
      GIT_COMMITTER_NAME: "bench",
      GIT_COMMITTER_EMAIL: "bench@strider.invalid",
    },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** Round trips of one small message over a bare loopback WebSocket. */
async function bareWebSocketRoundTrips(count: number): Promise<number[]> {
  const controller = new AbortController();
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen: ({ port }) => resolve(port),
  }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (m) => socket.send(m.data);
    return response;
  });
  const socket = new WebSocket(`ws://127.0.0.1:${await listening}/`);
  await new Promise((r) => socket.onopen = r);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const { promise, resolve: answered } = Promise.withResolvers<void>();
    socket.onmessage = () => answered();
    const start = performance.now();
    socket.send(JSON.stringify({ event: "ping", t: Date.now() }));
    await promise;
    samples.push(performance.now() - start);
  }
  socket.close();
  await new Promise((r) => socket.onclose = r);
  controller.abort();
  await server.finished;
  return samples;
}

/** POST → job:started for `count` trivial jobs, one at a time, with one local worker. */
async function dispatchLatency(count: number): Promise<number[]> {
  const tmp = await Deno.makeTempDir({ prefix: "strider-bench-" });
  const repo = join(tmp, "repo");
  await Deno.mkdir(repo);
  await git(repo, "init", "-q", "-b", "main");
  await git(repo, "commit", "-q", "--allow-empty", "-m", "empty");
  const queen = await startQueen({
    port: 0,
    host: "127.0.0.1",
    data: join(tmp, "data"),
    workerTokens: [WORKER_TOKEN],
    apiTokens: [API_TOKEN],
    log: () => {},
  });
  const worker = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      "--allow-sys",
      join(ROOT, "main.ts"),
      "worker",
      "--connect",
      queen.url,
      "--token",
      WORKER_TOKEN,
      "--name",
      "bench",
      "--capacity",
      "4",
      "--workdir",
      join(tmp, "work"),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const deadline = Date.now() + 30_000;
    while (queen.core.drones.size === 0) {
      if (Date.now() > deadline) throw new Error("the bench worker did not connect in 30 s");
      await new Promise((r) => setTimeout(r, 20));
    }
    const started = new Map<string, () => void>();
    const done = new Map<string, () => void>();
    const stop = queen.core.hub.followAll((event) => {
      if (event.data.event === "job:started") started.get(event.data.id)?.();
      if (event.data.event === "job:done") done.get(event.data.id)?.();
    });
    const spec = JSON.stringify({
      repo: { url: repo },
      ref: { branch: "main" },
      plugins: ["custom"],
      config: { custom: { test: "true" } },
    });
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = `bench-${i}`;
      const { promise, resolve } = Promise.withResolvers<void>();
      const finished = Promise.withResolvers<void>();
      started.set(id, resolve);
      done.set(id, finished.resolve);
      const begin = performance.now();
      const response = await fetch(`${queen.url}/api/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
        body: spec.replace("{", `{"job_id":"${id}",`),
      });
      if (response.status !== 201) throw new Error(`submit failed: ${await response.text()}`);
      await response.body?.cancel();
      await Promise.race([
        promise,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`${id} never started`)), 30_000)
        ),
      ]);
      samples.push(performance.now() - begin);
      started.delete(id);
      // The next job goes out to an idle worker: this measures dispatch, not CPU contention
      // with the previous job's clone.
      await finished.promise;
      done.delete(id);
    }
    stop();
    return samples;
  } finally {
    worker.kill("SIGKILL");
    await worker.status;
    await queen.close();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;

const baseline = stats(await bareWebSocketRoundTrips(JOBS));
const dispatch = stats(await dispatchLatency(JOBS));
const rows = [
  {
    measure: `dispatch POST→job:started (${JOBS} jobs)`,
    unit: "ms",
    p50: round(dispatch.p50),
    p99: round(dispatch.p99),
    baseline: "bare WebSocket round trip",
    baseline_p50: round(baseline.p50),
    baseline_p99: round(baseline.p99),
    ratio_p50: round(dispatch.p50 / baseline.p50),
    ratio_p99: round(dispatch.p99 / baseline.p99),
  },
];
console.log("measure".padEnd(40), "p50", "p99", "| baseline p50 p99 | ratio p50 p99");
for (const r of rows) {
  console.log(
    r.measure.padEnd(40),
    `${r.p50}${r.unit}`,
    `${r.p99}${r.unit}`,
    `| ${r.baseline_p50}${r.unit} ${r.baseline_p99}${r.unit}`,
    `| ${r.ratio_p50}x ${r.ratio_p99}x`,
  );
}
await Deno.mkdir(join(ROOT, "bench"), { recursive: true });
await Deno.writeTextFile(
  join(ROOT, "bench", "results.json"),
  JSON.stringify({ date: new Date().toISOString(), deno: Deno.version.deno, rows }, null, 2) + "\n",
);
