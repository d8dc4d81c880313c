/**
 * Property tests: thousands of random and mutated frames into the queen's worker protocol, and
 * random bodies into every API route. Nothing crashes or hangs, every bad frame is answered
 * with an `error` frame, no input produces a 5xx, and an honest job running alongside keeps
 * exactly its own output.
 */
import { equal, ok } from "node:assert/strict";
import fc from "fast-check";
import type { QueenFrame } from "../protocol/mod.ts";
import { JobSpecSchema, PROTOCOL_VERSION } from "../protocol/mod.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { createApp } from "../queen/server.ts";

class FakeSocket {
  readyState: number = WebSocket.OPEN;
  sent: QueenFrame[] = [];
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = WebSocket.CLOSED;
  }
}

function droneInfo(name: string) {
  return JSON.stringify({
    event: "drone:info",
    name,
    version: "test",
    protocol: PROTOCOL_VERSION,
    speed: 1,
    capacity: 2,
    plugins: ["env", "custom"],
    labels: [],
    running: [],
  });
}

const EVENT_NAMES = [
  "job:queued",
  "job:started",
  "job:cmd:start",
  "job:cmd:done",
  "job:cmd:stdout",
  "job:cmd:stderr",
  "job:plugin",
  "job:stdout",
  "job:stderr",
  "job:tested",
  "job:deployed",
  "job:done",
  "drone:info",
  "pong",
  "error",
  "queue:new",
  "__proto__",
  "constructor",
];

/** Frames shaped like real ones, with fields mutated, dropped or retyped. */
function mutatedFrame(jobId: string) {
  const value = fc.oneof(
    fc.integer({ min: -5, max: 1e9 }),
    fc.constant(Number.MAX_SAFE_INTEGER + 2),
    fc.string({ maxLength: 40 }),
    fc.constant(null),
    fc.boolean(),
    fc.constant(jobId),
    fc.array(fc.integer(), { maxLength: 3 }),
    fc.constant({ nested: { deeper: [1, 2, { x: "y" }] } }),
  );
  return fc.record({
    event: fc.constantFrom(...EVENT_NAMES),
    id: fc.oneof(fc.constant(jobId), fc.string({ maxLength: 70 }), value),
    attempt: fc.oneof(fc.constant(1), value),
    seq: fc.oneof(fc.integer({ min: 1, max: 50 }), value),
    num: value,
    text: fc.oneof(fc.string({ maxLength: 200 }), value),
    exitCode: value,
    timestamp: value,
    result: fc.oneof(fc.constantFrom("passed", "failed", "lost", "nope"), value),
    phase: fc.oneof(fc.constantFrom("test", "deploy", "nowhere"), value),
  }, { requiredKeys: ["event"] }).map((frame) => JSON.stringify(frame));
}

Deno.test("random and mutated worker frames never hurt the queen or an honest job", async () => {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  try {
    const honestSocket = new FakeSocket();
    const honest = core.connect(honestSocket as unknown as WebSocket);
    core.receive(honest, droneInfo("honest"));
    const { id } = await core.submit(
      JobSpecSchema.parse({ repo: { url: "/tmp/repo" }, ref: { branch: "main" } }),
    );
    equal(honestSocket.sent.filter((f) => f.event === "queue:new").length, 1);
    let seq = 0;
    const send = (frame: Record<string, unknown>) =>
      core.receive(honest, JSON.stringify({ id, attempt: 1, seq: ++seq, ...frame }));
    send({ event: "job:started", timestamp: Date.now() });
    send({ event: "job:cmd:start", num: 0, command: "echo", screencmd: "echo", phase: "test" });
    send({ event: "job:cmd:stdout", num: 0, text: "honest line 1\n" });

    const rogueSocket = new FakeSocket();
    const rogue = core.connect(rogueSocket as unknown as WebSocket);
    core.receive(rogue, droneInfo("rogue"));
    let frames = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 3, arbitrary: mutatedFrame(id) },
          { weight: 1, arbitrary: fc.json() },
          { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
        ),
        (raw) => {
          const before = rogueSocket.sent.length;
          core.receive(rogue, raw);
          frames++;
          const answers = rogueSocket.sent.slice(before).map((f) => f.event);
          // A valid drone:info or pong needs no answer; everything else gets an error frame.
          const parsed = (() => {
            try {
              return JSON.parse(raw);
            } catch {
              return undefined;
            }
          })();
          const quiet = answers.length === 0 &&
            (parsed?.event === "drone:info" || parsed?.event === "pong" ||
              parsed?.event === "error");
          ok(quiet || answers.includes("error"), `no error frame for ${raw.slice(0, 200)}`);
        },
      ),
      { numRuns: 3000 },
    );
    ok(frames >= 3000);
    // The huge frame is refused unparsed.
    const before = rogueSocket.sent.length;
    core.receive(rogue, "x".repeat(3 * 1024 * 1024));
    equal(rogueSocket.sent[before]?.event, "error");

    send({ event: "job:cmd:stdout", num: 0, text: "honest line 2\n" });
    send({ event: "job:cmd:done", num: 0, exitCode: 0 });
    send({ event: "job:tested", code: 0, timestamp: Date.now() });
    send({ event: "job:done", result: "passed", timestamp: Date.now() });
    const view = (await core.job(id))!.view;
    equal(view.result, "passed");
    equal(view.phases.test.commands.length, 1);
    equal(view.phases.test.commands[0].output, "honest line 1\nhonest line 2\n");
    equal(view.output, "");
    equal(view.attempts.length, 1);
  } finally {
    core.close();
  }
});

Deno.test("random bodies into every API route never produce a 5xx", async () => {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  const app = createApp(core, { worker: ["w-token"], api: ["a-token"] });
  try {
    const existing = (await core.submit(
      JobSpecSchema.parse({ repo: { url: "/tmp/repo" }, ref: { branch: "main" } }),
    )).id;
    const routes: [string, string][] = [
      ["POST", "/api/jobs"],
      ["GET", "/api/jobs"],
      ["GET", `/api/jobs/${existing}`],
      ["GET", `/api/jobs/${existing}/log`],
      ["POST", `/api/jobs/${existing}/cancel`],
      ["POST", `/api/jobs/${existing}/retry`],
      ["DELETE", `/api/jobs/${existing}`],
      ["GET", "/api/drones"],
      ["GET", "/healthz"],
      ["GET", "/metrics"],
      ["GET", "/ws/worker"],
      ["POST", "/api/jobs/nope/cancel"],
      ["GET", `/api/jobs/${existing}/artifacts`],
      ["GET", `/api/jobs/${existing}/artifacts/a%2F..%2F%00b`],
      ["PUT", `/worker/artifacts/${existing}/1?path=dist%2Fa`],
      ["PUT", `/worker/artifacts/${existing}/x?path=..%2Fa`],
    ];
    const body = fc.oneof(
      fc.json(),
      fc.string({ maxLength: 500 }),
      fc.record({
        repo: fc.oneof(fc.record({ url: fc.string() }), fc.json()),
        ref: fc.oneof(
          fc.record({ branch: fc.string() }),
          fc.record({ fetch: fc.string() }),
          fc.json(),
        ),
        job_type: fc.oneof(fc.constantFrom("TEST", "DEPLOY", "TEST&DEPLOY"), fc.string()),
        plugins: fc.oneof(fc.array(fc.string(), { maxLength: 5 }), fc.json()),
        timeout: fc.oneof(fc.integer(), fc.double(), fc.string()),
        secrets: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.json()),
      }).map((v) => JSON.stringify(v)),
    );
    const query = fc.oneof(
      fc.constant(""),
      fc.string({ maxLength: 40 }).map((s) => `?limit=${encodeURIComponent(s)}`),
      fc.string({ maxLength: 40 }).map((s) => `?cursor=${encodeURIComponent(s)}&status=${s}`),
      fc.string({ maxLength: 20 }).map((s) => `?since=${encodeURIComponent(s)}`),
    );
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        body,
        query,
        fc.boolean(),
        fc.string({ maxLength: 30 }),
        async ([method, path], text, q, withToken, range) => {
          const headers: Record<string, string> = { "content-type": "application/json" };
          if (withToken) {
            headers.authorization = `Bearer ${path.startsWith("/worker/") ? "w-token" : "a-token"}`;
            headers["x-strider-sha256"] = "0".repeat(64);
          }
          if (path.endsWith("/log")) headers.range = range;
          const init: RequestInit = { method, headers };
          if (method !== "GET") init.body = text;
          const response = await app.request(path + (method === "GET" ? q : ""), init);
          await response.body?.cancel();
          requests++;
          ok(
            response.status < 500,
            `${method} ${path} → ${response.status} for ${text.slice(0, 200)}`,
          );
        },
      ),
      { numRuns: 400 },
    );
    ok(requests >= 400);
    const big = await app.request("/api/jobs", {
      method: "POST",
      headers: { authorization: "Bearer a-token", "content-type": "application/json" },
      body: "x".repeat(20 * 1024 * 1024),
    });
    equal(big.status, 413);
  } finally {
    core.close();
  }
});
