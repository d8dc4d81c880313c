/**
 * Scale: 1,000, 5,000 and 10,000 simulated workers (one fleet process) connected to one queen
 * (a subprocess, default 30 s lease, so it pings every worker every 10 s). At each size:
 *
 * - the queen's resident memory per connection: (RSS − RSS before the fleet) / workers;
 * - its CPU while idle, heartbeats on: utime + stime from /proc/<pid>/stat over one ping
 *   interval (10 s), as a percentage of one core;
 * - dispatch p99: `POST /api/jobs` → the job's `queue:new` reaching a probe worker in this
 *   process (it is the fastest drone, so it gets each job; the scheduler still weighs all of
 *   them), jobs one at a time.
 *
 * Beside each: the same fleet connected to a bare `Deno.serve` WebSocket server
 * (scripts/bench/bare_ws_server.ts) that only asks for `drone:info` and pings at the same
 * interval; and a bare WebSocket round trip to it at that size.
 */
import {
  API_TOKEN,
  cpuSecondsOf,
  denoProc,
  healthz,
  join,
  memoryOf,
  row,
  sleep,
  startQueenProc,
  stats,
  tempDir,
  waitUntil,
  within,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row, Stats } from "./lib.ts";
import { SimFleet, SimWorker } from "./sim_worker.ts";

const PING_MS = 10_000;
const KIB = 1024;

interface Reading {
  size: number;
  /** From asking the fleet for more workers to the server having them all. */
  connectMs: number;
  perConnection: number;
  cpuPercent: number;
  latency: Stats;
}

/** Drives one server (the queen or the bare one) through the sizes. */
async function readings(
  ctx: BenchContext,
  server: { url: string; proc: Proc },
  sizes: number[],
  windowMs: number,
  latencyCount: number,
  probe: (count: number) => Promise<number[]>,
  connected: (size: number) => Promise<void>,
): Promise<Reading[]> {
  await probe(50);
  await sleep(500);
  const rss0 = memoryOf(server.proc.pid).rss;
  const out: Reading[] = [];
  let fleet: SimFleet | undefined;
  try {
    for (const size of sizes) {
      const start = performance.now();
      if (!fleet) {
        fleet = await SimFleet.start({
          url: server.url,
          token: WORKER_TOKEN,
          count: size,
          parallel: 128,
        });
      } else await fleet.add(size - fleet.count);
      await connected(size);
      const connectMs = Math.round(performance.now() - start);
      ctx.log(`scale: ${size} connected in ${connectMs} ms`);
      await sleep(1000);
      const rss = memoryOf(server.proc.pid).rss;
      const cpu0 = cpuSecondsOf(server.proc.pid);
      const t0 = performance.now();
      await sleep(windowMs);
      const cpu = (cpuSecondsOf(server.proc.pid) - cpu0) / ((performance.now() - t0) / 1000);
      const latency = stats(await probe(latencyCount));
      const stat = await fleet.stats();
      if (stat.open !== size) throw new Error(`only ${stat.open} of ${size} are still connected`);
      out.push({
        size,
        connectMs,
        perConnection: (rss - rss0) / size,
        cpuPercent: cpu * 100,
        latency,
      });
    }
    return out;
  } finally {
    await fleet?.close();
  }
}

/** The queen: probe = a simulated worker here; latency = POST → `queue:new` at the probe. */
async function queenReadings(
  ctx: BenchContext,
  sizes: number[],
  windowMs: number,
  latencyCount: number,
): Promise<Reading[]> {
  const tmp = await tempDir("scale");
  const queen = await startQueenProc(join(tmp.path, "data"), [], "queen (scale)");
  const arrived = new Map<string, (at: number) => void>();
  const acked = new Map<string, () => void>();
  const probe = new SimWorker({
    url: queen.url,
    token: WORKER_TOKEN,
    name: "probe",
    speed: 2,
    onFrame: (frame, at) => {
      if (frame.event === "queue:new") arrived.get(frame.job.job_id)?.(at);
      if (frame.event === "job:ack" && frame.seq >= 2) acked.get(frame.id)?.();
    },
  });
  let n = 0;
  const body = JSON.stringify({
    repo: { url: "https://git.example/bench/repo.git" },
    ref: { branch: "main" },
    plugins: ["custom"],
    config: { custom: { test: "true" } },
  });
  const dispatchOnce = async () => {
    const id = `p${n++}`;
    const got = Promise.withResolvers<number>();
    const done = Promise.withResolvers<void>();
    arrived.set(id, got.resolve);
    acked.set(id, done.resolve);
    try {
      const begin = performance.now();
      const response = await fetch(`${queen.url}/api/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
        body: body.replace("{", `{"job_id":"${id}",`),
        signal: AbortSignal.timeout(30_000),
      });
      if (response.status !== 201) throw new Error(`submit: ${await response.text()}`);
      await response.body?.cancel();
      const at = await within(got.promise, 30_000, `queue:new of ${id}`);
      // The probe answered job:started and job:done at once; the next job waits for the queen
      // to have recorded them.
      await within(done.promise, 30_000, `the ack of ${id}`);
      return at - begin;
    } finally {
      arrived.delete(id);
      acked.delete(id);
    }
  };
  try {
    await within(probe.ready, 30_000, "the probe to connect");
    await waitUntil(async () => (await healthz(queen.url))?.drones === 1, 30_000, "the probe");
    return await readings(
      ctx,
      queen,
      sizes,
      windowMs,
      latencyCount,
      async (count) => {
        const samples: number[] = [];
        for (let i = 0; i < count; i++) samples.push(await dispatchOnce());
        return samples;
      },
      (size) =>
        waitUntil(
          async () => (await healthz(queen.url))?.drones === size + 1,
          180_000,
          `the queen to list ${size} drones`,
          100,
        ),
    );
  } finally {
    probe.close();
    await queen.proc.stop();
    await tmp.cleanup();
  }
}

/** The bare server: probe = a WebSocket echo round trip. */
async function bareReadings(
  ctx: BenchContext,
  sizes: number[],
  windowMs: number,
  latencyCount: number,
): Promise<Reading[]> {
  const proc = denoProc(
    "bare WebSocket server",
    ["--allow-net"],
    join(import.meta.dirname!, "bare_ws_server.ts"),
    [
      "--ping-ms",
      String(PING_MS),
    ],
  );
  let socket: WebSocket | undefined;
  try {
    const [, url] = await proc.waitForLine(/listening on (http:\/\/\S+)/, 30_000);
    socket = new WebSocket(url.replace("http:", "ws:"));
    await within(new Promise((r) => socket!.onopen = r), 10_000, "the bare probe to connect");
    const ws = socket;
    const roundTrip = async () => {
      const { promise, resolve } = Promise.withResolvers<number>();
      ws.onmessage = (message) => {
        if (String(message.data).startsWith('{"event":"echo"')) resolve(performance.now());
      };
      const begin = performance.now();
      ws.send(JSON.stringify({ event: "echo", t: Date.now() }));
      return (await within(promise, 10_000, "the bare echo")) - begin;
    };
    return await readings(ctx, { url, proc }, sizes, windowMs, latencyCount, async (count) => {
      const samples: number[] = [];
      for (let i = 0; i < count; i++) samples.push(await roundTrip());
      return samples;
    }, () => Promise.resolve());
  } finally {
    socket?.close();
    await proc.stop();
  }
}

export const scale: Measure = {
  name: "scale",
  async run(ctx: BenchContext): Promise<Row[]> {
    const sizes = ctx.quick ? [200, 1000] : [1000, 5000, 10_000];
    const windowMs = PING_MS;
    const latencyCount = ctx.quick ? 50 : 200;
    ctx.log("scale: the queen");
    const queen = await queenReadings(ctx, sizes, windowMs, latencyCount);
    ctx.log("scale: the bare WebSocket server");
    const bare = await bareReadings(ctx, sizes, windowMs, latencyCount);
    const rows: Row[] = [];
    for (let i = 0; i < sizes.length; i++) {
      const q = queen[i];
      const b = bare[i];
      const n = q.size.toLocaleString("en-US");
      rows.push(
        row({
          group: "scale",
          measure: `scale ${n} workers: queen RSS per connection`,
          unit: "KiB",
          median: q.perConnection / KIB,
          n: q.size,
          baseline: "bare Deno WebSocket server, same fleet",
          baseline_median: b.perConnection / KIB,
          target: "≤ 100 KiB",
          check: (r) => r.median <= 100,
          notes: {
            connect_ms: q.connectMs,
            bare_connect_ms: b.connectMs,
            added_workers: i === 0 ? q.size : q.size - sizes[i - 1],
          },
        }),
        row({
          group: "scale",
          measure: `scale ${n} workers: queen idle CPU, heartbeats on`,
          unit: "% core",
          median: q.cpuPercent,
          n: q.size,
          baseline: "bare server, same pings",
          baseline_median: b.cpuPercent,
        }),
        row({
          group: "scale",
          measure: `scale ${n} workers: dispatch POST→queue:new at the probe`,
          unit: "ms",
          median: q.latency.median,
          p99: q.latency.p99,
          n: q.latency.n,
          baseline: "bare WebSocket round trip at that size",
          baseline_median: b.latency.median,
          baseline_p99: b.latency.p99,
          ...(q.size === 10_000 ? { target: "p50 ≤ 5 ms", check: (r: Row) => r.median <= 5 } : {}),
        }),
      );
    }
    return rows;
  },
};
