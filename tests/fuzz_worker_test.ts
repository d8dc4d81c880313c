/**
 * Property test of the worker's side: a fake queen sends a real worker thousands of random and
 * mutated frames, then a real job. The worker answers each bad frame with an `error` frame,
 * stays connected, and runs the job to a pass with exactly its own output.
 */
import { equal, ok } from "node:assert/strict";
import fc from "fast-check";
import type { WorkerFrame } from "../protocol/mod.ts";
import { decodeWorkerFrame } from "../protocol/mod.ts";
import { ENTRY, Proc, WORKER_PERMISSIONS } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

const QUEEN_EVENTS = [
  "drone:query-info",
  "queue:new",
  "queue:take",
  "job:cancel",
  "job:ack",
  "ping",
  "drone:drain",
  "error",
  "job:info",
  "x",
];

function randomQueenFrame() {
  const value = fc.oneof(
    fc.integer({ min: -3, max: 1e6 }),
    fc.string({ maxLength: 30 }),
    fc.constant(null),
    fc.boolean(),
    fc.json(),
  );
  return fc.oneof(
    fc.record({
      event: fc.constantFrom(
        ...QUEEN_EVENTS.filter((e) => e !== "drone:query-info" && e !== "drone:drain"),
      ),
      id: value,
      attempt: value,
      seq: value,
      t: value,
      reason: fc.oneof(fc.constantFrom("cancelled", "timeout", "superseded"), value),
      job: fc.oneof(value, fc.record({ job_id: value, repo: value, ref: value })),
      message: value,
    }, { requiredKeys: ["event"] }).map((f) => JSON.stringify(f)),
    fc.json(),
    fc.string({ maxLength: 200 }),
  );
}

Deno.test("random frames from the queen never hurt the worker or its job", async () => {
  const repo = await makeRepo({ "data.txt": "the real job's data\n" });
  const frames = fc.sample(randomQueenFrame(), { numRuns: 2000, seed: 42 });
  const received: WorkerFrame[] = [];
  let socket: WebSocket | undefined;
  const connected = Promise.withResolvers<void>();
  const done = Promise.withResolvers<void>();
  const controller = new AbortController();
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, (req) => {
    const upgrade = Deno.upgradeWebSocket(req);
    socket = upgrade.socket;
    socket.onopen = () => socket!.send(JSON.stringify({ event: "drone:query-info" }));
    socket.onmessage = (m) => {
      const decoded = decodeWorkerFrame(m.data);
      ok(decoded.ok, `the worker sent an invalid frame: ${m.data}`);
      const frame = decoded.value;
      received.push(frame);
      if (frame.event === "drone:info") connected.resolve();
      if ("seq" in frame) {
        socket!.send(
          JSON.stringify({
            event: "job:ack",
            id: frame.id,
            attempt: frame.attempt,
            seq: frame.seq,
          }),
        );
      }
      if (frame.event === "job:done") done.resolve();
    };
    return upgrade.response;
  });
  const port = await listening.promise;
  const workdir = await Deno.makeTempDir();
  const worker = new Proc([
    "run",
    ...WORKER_PERMISSIONS,
    ENTRY,
    "worker",
    "--connect",
    `http://127.0.0.1:${port}`,
    "--token",
    "anything",
    "--name",
    "fuzzed",
    "--workdir",
    workdir,
  ]);
  try {
    await Promise.race([
      connected.promise,
      worker.exit(20_000).then(() => Promise.reject(new Error(worker.stderr))),
    ]);
    for (const frame of frames) socket!.send(frame);
    socket!.send(JSON.stringify({ event: "ping", t: 1 }));
    const deadline = Date.now() + 30_000;
    while (!received.some((f) => f.event === "pong" && f.t === 1) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const errors = received.filter((f) => f.event === "error").length;
    ok(
      errors >= frames.length * 0.9,
      `only ${errors} error frames for ${frames.length} bad frames`,
    );
    socket!.send(JSON.stringify({
      event: "queue:new",
      attempt: 1,
      lease: "fuzz-lease-token-0123456789",
      job: {
        job_id: "real-job",
        repo: { url: repo.path, vcs: "git" },
        ref: { branch: "main" },
        job_type: "TEST",
        trigger: {
          type: "manual",
          timestamp: new Date().toISOString(),
          source: { type: "API", app: "t" },
        },
        plugins: ["custom"],
        config: { custom: { test: "cat data.txt" } },
      },
    }));
    await Promise.race([
      done.promise,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("the job never finished")), 30_000)
      ),
    ]);
    const job = received.filter((f) => "id" in f && f.id === "real-job");
    const finished = job.find((f) => f.event === "job:done");
    equal(finished && "result" in finished ? finished.result : undefined, "passed");
    const output = job.filter((f) => f.event === "job:cmd:stdout").map((f) =>
      "text" in f ? f.text : ""
    ).join("");
    ok(output.includes("the real job's data\n"), output);
    const seqs = job.map((f) => "seq" in f ? f.seq : 0);
    equal(seqs.join(","), seqs.map((_, i) => i + 1).join(","));
    equal(worker.exited, false);
  } finally {
    await worker.stop();
    controller.abort();
    await server.finished;
  }
});
