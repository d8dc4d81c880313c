/**
 * A rogue worker holding a valid token, over a real socket to a real queen, while an honest
 * worker runs a real job: thousands of malformed frames, events for the honest worker's job, and
 * a huge frame. The queen stays healthy and the honest job passes with only its own output.
 */
import { equal, ok } from "node:assert/strict";
import type { QueenFrame } from "../protocol/mod.ts";
import { PROTOCOL_VERSION } from "../protocol/mod.ts";
import {
  api,
  customJob,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

/** Opens a worker socket with `token`; resolves with it and the frames it receives. */
async function rogueSocket(url: string, token: string) {
  const received: QueenFrame[] = [];
  const socket = new WebSocket(url.replace(/^http/, "ws") + "/ws/worker", {
    headers: { authorization: `Bearer ${token}` },
  });
  socket.onmessage = (m) => received.push(JSON.parse(m.data));
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("rogue socket failed to open"));
  });
  return { socket, received, closed };
}

Deno.test("a rogue worker with a valid token cannot hurt the queen or an honest job", async () => {
  const repo = await makeRepo({ "a.txt": "honest data\n" });
  const queen = await startQueen();
  const honest = await startWorker(queen, { name: "honest" });
  const rogue = await rogueSocket(queen.url, WORKER_TOKEN);
  try {
    rogue.socket.send(JSON.stringify({
      event: "drone:info",
      name: "rogue",
      version: "x",
      protocol: PROTOCOL_VERSION,
      speed: 0.001,
      capacity: 1,
      plugins: [],
      labels: ["never-matches"],
      running: [],
    }));
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        test: "cat a.txt; for i in 1 2 3 4 5; do echo honest-$i; sleep 0.2; done",
      }),
    );
    await waitUntil(async () => (await getJob(queen, id)).status === "started", 20_000, "start");
    // Thousands of malformed frames, and events for the honest worker's job.
    for (let i = 0; i < 3_000; i++) {
      rogue.socket.send(
        i % 3 === 0 ? `{"event":"job:cmd:stdout","id":"${id}"` : JSON.stringify({
          event: i % 2 ? "job:cmd:stdout" : "job:done",
          id,
          attempt: 1,
          seq: 2 + (i % 50),
          num: 1,
          text: `ROGUE-${i}\n`,
          result: "failed",
          timestamp: Date.now(),
        }),
      );
    }
    rogue.socket.send("x".repeat(3 * 1024 * 1024));
    const job = await waitForJob(queen, id, 30_000);
    equal(job.result, "passed");
    equal(job.drone, "honest");
    const log = await jobLog(queen, id);
    ok(!log.includes("ROGUE"), "rogue output reached the job");
    for (let i = 1; i <= 5; i++) ok(log.includes(`honest-${i}\n`));
    await waitUntil(() => rogue.received.filter((f) => f.event === "error").length >= 100, 10_000);
    const health = await api(queen, "/healthz");
    equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    rogue.socket.close();
    await rogue.closed;
    await honest.stop();
    await queen.proc.stop();
  }
});

Deno.test("worker sockets and API writes without a token get 401", async () => {
  const queen = await startQueen();
  try {
    const upgrade = await fetch(`${queen.url}/ws/worker`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    equal(upgrade.status, 401);
    await upgrade.body?.cancel();
    const cancel = await api(queen, "/api/jobs/anything/cancel", { method: "POST", token: null });
    equal(cancel.status, 401);
    await cancel.body?.cancel();
  } finally {
    await queen.proc.stop();
  }
});
