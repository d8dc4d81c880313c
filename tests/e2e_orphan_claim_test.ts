/**
 * The orphan-claim attack, over real sockets to a real queen: while an honest worker is away
 * (frozen, its connection cut), a second worker with a valid worker token and another name
 * claims the honest worker's attempt in `drone:info.running` and sends events for it. Without
 * the attempt's lease token it gets error frames and changes nothing; the honest worker comes
 * back, proves its attempt, and the job passes with its own output only.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
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
import type { Proc } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { TcpProxy } from "./helpers/tcp_proxy.ts";

Deno.test("a second worker name with a valid token cannot claim or touch another worker's attempt", async () => {
  const repo = await makeRepo({ "README.md": "orphan\n" });
  const queen = await startQueen({ args: ["--lease", "25"] });
  const proxy = new TcpProxy({ port: Number(new URL(queen.url).port) });
  let owner: Proc | undefined;
  let thief: WebSocket | undefined;
  try {
    owner = await startWorker(queen, { name: "owner", connect: proxy.url });
    const id = await submitJob(
      queen,
      customJob(repo.path, {
        test: "for i in $(seq 1 40); do echo owner-line-$i; sleep 0.1; done",
      }),
    );
    await waitUntil(async () => (await jobLog(queen, id)).includes("owner-line-3"), 20_000);
    // The owner freezes and its connection is cut: its attempt is an orphan for the lease.
    owner.signal("SIGSTOP");
    proxy.cut();
    await waitUntil(
      async () => !(await (await api(queen, "/api/drones")).text()).includes('"owner"'),
      10_000,
      "the owner's connection to close",
    );
    const before = await getJob(queen, id);
    equal(before.status, "started");

    const received: QueenFrame[] = [];
    thief = new WebSocket(queen.url.replace(/^http/, "ws") + "/ws/worker", {
      headers: { authorization: `Bearer ${WORKER_TOKEN}` },
    });
    thief.onmessage = (m) => received.push(JSON.parse(m.data));
    await new Promise((resolve) => thief!.onopen = resolve);
    thief.send(JSON.stringify({
      event: "drone:info",
      name: "thief",
      version: "x",
      protocol: PROTOCOL_VERSION,
      speed: 1,
      capacity: 1,
      plugins: [],
      labels: ["never"],
      running: [{ id, attempt: 1, seq: 50, lease: "a-guessed-lease-token-000000000000" }],
    }));
    for (let seq = 1; seq <= 60; seq++) {
      thief.send(JSON.stringify({
        event: "job:stdout",
        id,
        attempt: 1,
        seq,
        text: `THIEF-${seq}\n`,
      }));
    }
    thief.send(JSON.stringify({
      event: "job:done",
      id,
      attempt: 1,
      seq: 61,
      timestamp: Date.now(),
      result: "passed",
    }));
    await waitUntil(() => received.filter((f) => f.event === "error").length >= 2, 10_000);
    const errors = received.flatMap((f) => f.event === "error" ? [f.message] : []);
    match(errors[0], /lease token is missing or wrong/);
    ok(errors.slice(1).every((m) => /does not hold that attempt/.test(m)), errors.join("\n"));
    equal(received.filter((f) => f.event === "job:ack").length, 0);
    const during = await getJob(queen, id);
    equal(during.status, "started");
    deepEqual(during.attempts.map((a) => [a.attempt, a.drone]), [[1, "owner"]]);

    // The owner comes back within the lease, proves its attempt, and finishes it.
    owner.signal("SIGCONT");
    const job = await waitForJob(queen, id, 60_000);
    equal(job.result, "passed", job.error ?? "");
    deepEqual(job.attempts.map((a) => [a.attempt, a.drone, a.result]), [[1, "owner", "passed"]]);
    const log = await jobLog(queen, id);
    ok(!log.includes("THIEF"), "the thief's output reached the job");
    for (let i = 1; i <= 40; i++) ok(log.includes(`owner-line-${i}\n`), `owner-line-${i}`);
    ok(!queen.proc.stderr.includes("a-guessed-lease"), "no lease token in the queen's log");
  } finally {
    thief?.close();
    owner?.signal("SIGCONT");
    await owner?.stop("SIGKILL");
    await proxy.close();
    await queen.proc.stop();
  }
});
