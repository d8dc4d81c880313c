/**
 * A real worker against a scripted queen: what it answers to a dispatch it cannot accept, to a
 * take-back of a waiting job, and how it proves its attempts after a reconnect (lease tokens);
 * and that it clears workspaces left by an earlier run.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import type { WorkerFrame } from "../protocol/mod.ts";
import { decodeWorkerFrame } from "../protocol/mod.ts";
import { refusedDispatch } from "../worker/connection.ts";
import { ENTRY, Proc, waitUntil, WORKER_PERMISSIONS } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

/** A queen that records every frame and lets the test speak; one worker connection at a time. */
function scriptedQueen() {
  const frames: WorkerFrame[] = [];
  let socket: WebSocket | undefined;
  const listening = Promise.withResolvers<number>();
  const controller = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, (req) => {
    const upgrade = Deno.upgradeWebSocket(req);
    const own = upgrade.socket;
    socket = own;
    own.onopen = () => own.send(JSON.stringify({ event: "drone:query-info" }));
    // Pings, as a queen sends them, keep the worker from taking the connection for dead.
    const pinger = setInterval(() => {
      if (own.readyState === WebSocket.OPEN) {
        own.send(JSON.stringify({ event: "ping", t: Date.now() }));
      }
    }, 1_000);
    own.onclose = () => clearInterval(pinger);
    own.onmessage = (m) => {
      const decoded = decodeWorkerFrame(m.data);
      ok(decoded.ok, `the worker sent an invalid frame: ${m.data}`);
      frames.push(decoded.value);
      const f = decoded.value;
      if ("seq" in f) {
        own.send(JSON.stringify({ event: "job:ack", id: f.id, attempt: f.attempt, seq: f.seq }));
      }
    };
    return upgrade.response;
  });
  return {
    frames,
    port: listening.promise,
    send: (frame: unknown) => socket!.send(JSON.stringify(frame)),
    drop: () => socket?.close(4000, "test drops the connection"),
    of: <E extends WorkerFrame["event"]>(event: E) =>
      frames.filter((f): f is Extract<WorkerFrame, { event: E }> => f.event === event),
    async close() {
      controller.abort();
      await server.finished;
    },
  };
}

function dispatch(id: string, attempt: number, repo: string, test: string) {
  return {
    event: "queue:new",
    attempt,
    lease: `lease-of-${id}-${attempt}-0123456789`,
    job: {
      job_id: id,
      repo: { url: repo, vcs: "git" },
      ref: { branch: "main" },
      job_type: "TEST",
      trigger: {
        type: "manual",
        timestamp: new Date().toISOString(),
        source: { type: "API", app: "test" },
      },
      plugins: ["custom"],
      config: { custom: { test } },
    },
  };
}

Deno.test("refusedDispatch names the job and attempt of an invalid queue:new, and only that", () => {
  deepEqual(
    refusedDispatch(JSON.stringify({ event: "queue:new", attempt: 3, job: { job_id: "j-1" } })),
    { id: "j-1", attempt: 3 },
  );
  deepEqual(refusedDispatch(JSON.stringify({ event: "job:ack", attempt: 3, id: "j-1" })), {});
  deepEqual(refusedDispatch(JSON.stringify({ event: "queue:new", attempt: 0, job: {} })), {});
  deepEqual(refusedDispatch("{not json"), {});
  deepEqual(
    refusedDispatch(JSON.stringify({ event: "queue:new", attempt: 1, job: { job_id: "../x" } })),
    {},
  );
});

Deno.test("a worker refuses a bad dispatch by name, gives back a waiting job, proves its own after a reconnect, and clears old workspaces", async () => {
  const repo = await makeRepo({ "README.md": "protocol\n" });
  const queen = scriptedQueen();
  const workdir = await Deno.makeTempDir({ prefix: "strider-proto-" });
  // A workspace an earlier run of this worker left behind (killed with kill -9, say).
  await Deno.mkdir(join(workdir, "jobs", "old-job.3", "src"), { recursive: true });
  const worker = new Proc([
    "run",
    ...WORKER_PERMISSIONS,
    ENTRY,
    "worker",
    "--connect",
    `http://127.0.0.1:${await queen.port}`,
    "--token",
    "anything-at-all-0123",
    "--name",
    "proto",
    "--capacity",
    "1",
    "--workdir",
    workdir,
  ]);
  try {
    await waitUntil(() => queen.of("drone:info").length > 0, 30_000, "drone:info");
    await waitUntil(
      async () => {
        try {
          await Deno.stat(join(workdir, "jobs", "old-job.3"));
          return false;
        } catch {
          return true;
        }
      },
      10_000,
      "the leftover workspace to be removed",
    );

    // A dispatch the worker cannot accept (a branch that reads as an option).
    const bad = dispatch("bad-job", 1, repo.path, "true");
    queen.send({ ...bad, job: { ...bad.job, ref: { branch: "--upload-pack=evil" } } });
    await waitUntil(() => queen.of("error").some((e) => e.id === "bad-job"), 10_000, "refusal");
    const refusal = queen.of("error").find((e) => e.id === "bad-job")!;
    equal(refusal.attempt, 1);
    match(refusal.message, /job\.ref\.branch/);

    // One job runs (capacity 1), the next waits; the queen takes the waiting one back.
    queen.send(dispatch("long", 1, repo.path, "sleep 30"));
    queen.send(dispatch("waiting", 4, repo.path, "echo never-here"));
    await waitUntil(() => queen.of("job:queued").some((e) => e.id === "waiting"), 20_000).catch(
      (e) => {
        throw new Error(`${e}\n${JSON.stringify(queen.frames)}\n${worker.stderr}`);
      },
    );
    queen.send({ event: "queue:take", id: "waiting", attempt: 4 });
    await waitUntil(() => queen.of("job:started").some((e) => e.id === "long"), 20_000);
    queen.send({ event: "queue:take", id: "long", attempt: 1 });
    await waitUntil(() => queen.of("queue:taken").length === 2, 10_000, "two answers");
    deepEqual(
      queen.of("queue:taken").map((t) => [t.id, t.attempt, t.taken]),
      [["waiting", 4, true], ["long", 1, false]],
    );

    // The connection drops: the worker comes back claiming `long` with its lease token only.
    const infos = queen.of("drone:info").length;
    queen.drop();
    await waitUntil(() => queen.of("drone:info").length > infos, 20_000, "a second drone:info");
    const claim = queen.of("drone:info").at(-1)!.running;
    deepEqual(claim.map((r) => [r.id, r.attempt, r.lease]), [[
      "long",
      1,
      "lease-of-long-1-0123456789",
    ]]);
    ok(!worker.stderr.includes("lease-of-"), "the lease token never reaches the worker's log");
    queen.send({ event: "job:cancel", id: "long", attempt: 1, reason: "cancelled" });
    await waitUntil(() => queen.of("job:done").some((d) => d.id === "long"), 30_000, "cancel");
    ok(!queen.frames.some((f) => "id" in f && f.id === "waiting" && f.event === "job:started"));
    // Its workspace is gone once the attempt ended.
    await waitUntil(
      async () => {
        const left = [];
        for await (const entry of Deno.readDir(join(workdir, "jobs"))) left.push(entry.name);
        return left.length === 0;
      },
      10_000,
      "no workspace left",
    );
  } finally {
    await worker.stop("SIGKILL");
    await queen.close();
  }
});
