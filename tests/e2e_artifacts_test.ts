/**
 * End to end: artifacts from a real job on a real worker, through the queen's database, back out
 * through the API, the CLI and the dashboard, byte for byte; and every way of sending a file
 * somewhere it must not go, refused.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { QueenFrame } from "../protocol/mod.ts";
import { PROTOCOL_VERSION } from "../protocol/mod.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import {
  api,
  API_TOKEN,
  CLIENT_PERMISSIONS,
  customJob,
  ENTRY,
  getJob,
  jobLog,
  Proc,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Makes build output: a 2.5 MB binary (past one stored chunk), text, links in and out. */
const BUILD = [
  "mkdir -p dist/sub coverage",
  "head -c 2500000 /dev/urandom > dist/app.bin",
  "printf 'nested\\n' > dist/sub/x.txt",
  ": > dist/empty",
  "printf '<html>cov</html>' > coverage/index.html",
  "printf 'not an artifact\\n' > build.log",
  "ln -s /etc/passwd dist/leak",
  "ln -s ../README dist/readme-link",
  'echo "APP-SHA=$(sha256sum dist/app.bin | cut -d" " -f1)"',
].join("\n");

async function listOf(queen: TestQueen, id: string) {
  const response = await api(queen, `/api/jobs/${id}/artifacts`);
  equal(response.status, 200);
  return (await response.json()).artifacts as {
    path: string;
    size: number;
    sha256: string;
    attempt: number;
  }[];
}

/** The queens of this run keep their data in PostgreSQL (`deno task test:postgres`). */
const ON_POSTGRES = Boolean(
  Deno.env.get("STRIDER_TEST_POSTGRES") || Deno.env.get("STRIDER_TEST_CLUSTER"),
);

Deno.test("artifacts round-trip byte for byte; traversal and links out are refused", async (t) => {
  const repo = await makeRepo({ "README": "read me\n" });
  const queen = await startQueen({ args: ["--max-artifact-mib", "3"] });
  const worker = await startWorker(queen, { name: "artifacts-worker" });
  let id = "";
  let appSha = "";
  try {
    await t.step("the matching files reach the queen with their digests", async () => {
      id = await submitJob(
        queen,
        customJob(repo.path, { test: BUILD, cleanup: "rm -rf dist coverage" }, {
          artifacts: ["dist/**", "coverage/"],
        }),
      );
      const job = await waitForJob(queen, id, 90_000);
      const log = await jobLog(queen, id);
      equal(job.result, "passed", log);
      appSha = log.match(/APP-SHA=([0-9a-f]{64})/)![1];
      const list = await listOf(queen, id);
      deepEqual(list.map((a) => a.path), [
        "coverage/index.html",
        "dist/app.bin",
        "dist/empty",
        "dist/readme-link",
        "dist/sub/x.txt",
      ]);
      const app = list.find((a) => a.path === "dist/app.bin")!;
      equal(app.size, 2_500_000);
      equal(app.sha256, appSha);
      equal(app.attempt, 1);
      match(log, /left out 'dist\/leak': a symlink out of the checkout \(not followed\)/);
      match(log, /sent 5 of 5 files to the queen/);
      equal(list.find((a) => a.path === "dist/empty")?.size, 0);
      const sent = job.phases.cleanup.commands[0];
      equal(sent.command, "artifacts dist/** coverage/", "sent before cleanup's own commands");
    });

    await t.step("the API serves each file byte-identical", async () => {
      const response = await api(queen, `/api/jobs/${id}/artifacts/dist/app.bin`);
      equal(response.status, 200);
      equal(response.headers.get("x-strider-sha256"), appSha);
      const bytes = new Uint8Array(await response.arrayBuffer());
      equal(bytes.length, 2_500_000);
      equal(sha256(bytes), appSha);
      const link = await api(queen, `/api/jobs/${id}/artifacts/dist/readme-link`);
      equal(await link.text(), "read me\n", "a link inside the checkout is sent as its file");
    });

    await t.step("strider artifacts lists, prints and downloads them", async () => {
      const env = { STRIDER_API_TOKEN: API_TOKEN };
      const listed = new Proc([
        "run",
        ...CLIENT_PERMISSIONS,
        ENTRY,
        "artifacts",
        id,
        "--queen",
        queen.url,
      ], { env });
      equal((await listed.exit()).code, 0, listed.stderr);
      match(listed.stdout, new RegExp(`dist/app\\.bin  2500000  ${appSha}`));
      const out = await Deno.makeTempDir();
      const download = new Proc([
        "run",
        ...CLIENT_PERMISSIONS,
        "--allow-write",
        ENTRY,
        "artifacts",
        id,
        "--queen",
        queen.url,
        "--out",
        out,
      ], { env });
      equal((await download.exit()).code, 0, download.stderr);
      equal(sha256(await Deno.readFile(join(out, "dist", "app.bin"))), appSha);
      equal(await Deno.readTextFile(join(out, "dist", "sub", "x.txt")), "nested\n");
      equal(await Deno.readTextFile(join(out, "coverage", "index.html")), "<html>cov</html>");
      equal((await Deno.readFile(join(out, "dist", "empty"))).length, 0);
      const one = new Proc([
        "run",
        ...CLIENT_PERMISSIONS,
        ENTRY,
        "artifacts",
        id,
        "dist/sub/x.txt",
        "--queen",
        queen.url,
      ], { env });
      equal((await one.exit()).code, 0, one.stderr);
      equal(one.stdout, "nested\n");
    });

    await t.step("the dashboard's job page links each artifact", async () => {
      const page = await (await fetch(new URL(`/jobs/${id}`, queen.url))).text();
      match(page, new RegExp(`href="/api/jobs/${id}/artifacts/dist/app.bin"`));
      match(page, /2,500,000 bytes/);
    });

    await t.step("traversal is refused on upload and download", async () => {
      for (const path of ["../../etc/evil", "/etc/evil", "dist/../../x", "a//b", "./x", "a\\b"]) {
        const response = await fetch(
          new URL(`/worker/artifacts/${id}/1?path=${encodeURIComponent(path)}`, queen.url),
          {
            method: "PUT",
            headers: {
              authorization: `Bearer ${WORKER_TOKEN}`,
              "x-strider-sha256": "0".repeat(64),
            },
            body: "x",
          },
        );
        equal(response.status, 400, `upload to '${path}'`);
        match((await response.json()).error, /artifact path/);
      }
      for (const raw of ["..%2F..%2Fetc%2Fpasswd", "dist%2F..%2F..%2Fx", "%2Fetc%2Fpasswd"]) {
        const response = await api(queen, `/api/jobs/${id}/artifacts/${raw}`);
        equal(response.status, 400, `download of '${raw}'`);
        await response.body?.cancel();
      }
    });

    await t.step("the worker token alone adds nothing to a job", async () => {
      const put = (token: string, attempt = 1) =>
        fetch(new URL(`/worker/artifacts/${id}/${attempt}?path=dist/late.txt`, queen.url), {
          method: "PUT",
          headers: {
            authorization: `Bearer ${token}`,
            "x-strider-sha256": sha256(new TextEncoder().encode("late")),
          },
          body: "late",
        });
      const wrongToken = await put(API_TOKEN);
      equal(wrongToken.status, 401);
      await wrongToken.body?.cancel();
      const noLease = await put(WORKER_TOKEN);
      equal(noLease.status, 403, "a file without the attempt's lease token was taken");
      match((await noLease.json()).error, /lease token .* in x-strider-lease/);
      ok(!(await listOf(queen, id)).some((a) => a.path === "dist/late.txt"));
    });

    await t.step("a file past the job's cap is refused and the others kept", async () => {
      const big = await submitJob(
        queen,
        customJob(repo.path, {
          test:
            "mkdir -p out && head -c 4000000 /dev/urandom > out/big.bin && echo ok > out/small.txt",
        }, { artifacts: ["out/"] }),
      );
      const job = await waitForJob(queen, big, 90_000);
      equal(job.result, "passed");
      const log = await jobLog(queen, big);
      match(log, /not sent 'out\/big\.bin': the queen refused it \(413\)/);
      deepEqual((await listOf(queen, big)).map((a) => a.path), ["out/small.txt"]);
    });

    await t.step("artifacts are deleted with their job", async () => {
      const deleted = await api(queen, `/api/jobs/${id}`, { method: "DELETE" });
      equal(deleted.status, 204);
      equal((await api(queen, `/api/jobs/${id}/artifacts`)).status, 404);
      // With STRIDER_TEST_POSTGRES the rows are in PostgreSQL (its store's own tests cover them).
      if (ON_POSTGRES) return;
      const db = new DatabaseSync(join(queen.data, "strider.db"), { readOnly: true });
      try {
        const rows = db.prepare("SELECT COUNT(*) AS n FROM artifacts WHERE job_id = ?").get(id);
        equal((rows as { n: number }).n, 0);
        const chunks = db.prepare(
          "SELECT COUNT(*) AS n FROM artifact_chunks c LEFT JOIN artifacts a " +
            "ON a.id = c.artifact_id WHERE a.id IS NULL",
        ).get();
        equal((chunks as { n: number }).n, 0, "chunks outlived their artifact");
      } finally {
        db.close();
      }
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

/** A hand-driven worker connection with the shared worker token: what a rogue holder can do. */
async function rogueDrone(queen: TestQueen, name: string) {
  const received: QueenFrame[] = [];
  const socket = new WebSocket(queen.url.replace(/^http/, "ws") + "/ws/worker", {
    headers: { authorization: `Bearer ${WORKER_TOKEN}` },
  });
  socket.onmessage = (m) => {
    const frame = JSON.parse(m.data) as QueenFrame;
    received.push(frame);
    if (frame.event === "ping") socket.send(JSON.stringify({ event: "pong", t: frame.t }));
  };
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("the rogue socket failed to open"));
  });
  socket.send(JSON.stringify({
    event: "drone:info",
    name,
    version: "rogue",
    protocol: PROTOCOL_VERSION,
    speed: 1,
    capacity: 1,
    plugins: ["env", "custom"],
    labels: ["rogue"],
    running: [],
  }));
  let seq = 0;
  return {
    socket,
    /** The lease token of the dispatch of `job` attempt `attempt`, once it has come. */
    async dispatched(job: string, attempt: number): Promise<string> {
      let lease = "";
      await waitUntil(
        () => {
          const frame = received.find((f) =>
            f.event === "queue:new" && f.job.job_id === job && f.attempt === attempt
          );
          lease = frame?.event === "queue:new" ? frame.lease : "";
          return lease !== "";
        },
        30_000,
        `queue:new of ${job} attempt ${attempt}`,
      );
      return lease;
    },
    send(frame: Record<string, unknown>) {
      socket.send(JSON.stringify({ ...frame, seq: ++seq, timestamp: Date.now() }));
    },
    async close() {
      const closed = new Promise((resolve) => socket.onclose = resolve);
      socket.close();
      await closed;
    },
  };
}

/** Uploads `body` as `path` of `job` attempt `attempt`, with `lease` when given. */
function upload(
  queen: TestQueen,
  job: string,
  attempt: number | string,
  lease: string | undefined,
  body = "rogue",
  path = "evil.txt",
) {
  return fetch(
    new URL(`/worker/artifacts/${job}/${attempt}?path=${encodeURIComponent(path)}`, queen.url),
    {
      method: "PUT",
      headers: {
        authorization: `Bearer ${WORKER_TOKEN}`,
        "x-strider-sha256": sha256(new TextEncoder().encode(body)),
        ...(lease === undefined ? {} : { "x-strider-lease": lease }),
      },
      body,
    },
  );
}

/** The status and error of a refused upload, its body read. */
async function refusal(response: Response): Promise<[number, string]> {
  const text = await response.text();
  return [response.status, response.ok ? "" : JSON.parse(text).error];
}

Deno.test("an artifact upload must prove its attempt: another job's lease, a stale attempt, a finished job or no lease store nothing", async () => {
  const repo = await makeRepo({ "README": "x\n" });
  const queen = await startQueen();
  const honest = await startWorker(queen, { name: "honest", args: ["--labels", "honest"] });
  // Shares the honest worker's token, as workers do unless each has its own.
  let rogue = await rogueDrone(queen, "rogue");
  try {
    const own = await submitJob(
      queen,
      customJob(repo.path, { test: "true" }, { labels: ["rogue"] }),
    );
    const lease1 = await rogue.dispatched(own, 1);
    rogue.send({ event: "job:started", id: own, attempt: 1 });
    const victim = await submitJob(
      queen,
      customJob(repo.path, { test: "sleep 120" }, { labels: ["honest"] }),
    );
    await waitUntil(async () => (await getJob(queen, victim)).status === "started", 30_000);

    // The honest worker's running job: every way in without its own lease token is refused.
    const [none, noneWhy] = await refusal(await upload(queen, victim, 1, undefined));
    equal(none, 403);
    match(noneWhy, new RegExp(`lease token of job '${victim}' attempt 1 .* x-strider-lease`));
    const [other, otherWhy] = await refusal(await upload(queen, victim, 1, lease1));
    equal(other, 403, "another job's lease token added a file");
    match(otherWhy, new RegExp(`not that of job '${victim}' attempt 1`));
    ok(!otherWhy.includes(lease1), "the refusal echoes the token");
    equal((await refusal(await upload(queen, victim, 1, "x".repeat(43))))[0], 403);
    equal((await refusal(await upload(queen, victim, 2, lease1)))[0], 403);
    for (const attempt of ["0", "1x", "99999999999"]) {
      equal((await refusal(await upload(queen, victim, attempt, lease1)))[0], 400, attempt);
    }
    deepEqual(await listOf(queen, victim), [], "the honest job holds a rogue's file");

    // Its own attempt, with its own lease: a file is taken (and a wrong digest still is not).
    equal((await refusal(await upload(queen, own, 1, lease1, "one")))[0], 201);
    const badDigest = await fetch(new URL(`/worker/artifacts/${own}/1?path=x.txt`, queen.url), {
      method: "PUT",
      headers: {
        authorization: `Bearer ${WORKER_TOKEN}`,
        "x-strider-sha256": "a".repeat(64),
        "x-strider-lease": lease1,
      },
      body: "x",
    });
    equal(badDigest.status, 400);
    match((await badDigest.json()).error, /not the a{64} announced/);

    // The rogue comes back without its attempt: attempt 2 goes out with a new lease token.
    await rogue.close();
    rogue = await rogueDrone(queen, "rogue");
    const lease2 = await rogue.dispatched(own, 2);
    ok(lease2 !== lease1);
    rogue.send({ event: "job:started", id: own, attempt: 2 });
    await waitUntil(async () => (await getJob(queen, own)).attempt === 2, 30_000);
    const [stale, staleWhy] = await refusal(await upload(queen, own, 1, lease1, "stale"));
    equal(stale, 409, "a stale attempt's lease token added a file");
    match(staleWhy, /attempt 1 is not running on this worker \(the job is on attempt 2\)/);
    equal((await refusal(await upload(queen, own, 2, lease1, "stale")))[0], 403);
    equal((await refusal(await upload(queen, own, 2, lease2, "two", "two.txt")))[0], 201);
    deepEqual((await listOf(queen, own)).map((a) => [a.path, a.attempt]), [["two.txt", 2]]);

    // Finished: even the right lease token adds nothing.
    rogue.send({ event: "job:done", id: own, attempt: 2, result: "passed" });
    await waitForJob(queen, own);
    const [done, doneWhy] = await refusal(await upload(queen, own, 2, lease2, "late", "late.txt"));
    equal(done, 409);
    match(doneWhy, /has finished/);
    deepEqual((await listOf(queen, own)).map((a) => a.path), ["two.txt"]);
    ok(!(queen.proc.stdout + queen.proc.stderr).includes(lease1), "a lease token was logged");
    ok(!(queen.proc.stdout + queen.proc.stderr).includes(lease2), "a lease token was logged");

    await api(queen, `/api/jobs/${victim}/cancel`, { method: "POST" });
    equal((await waitForJob(queen, victim)).result, "cancelled");
    deepEqual(await listOf(queen, victim), []);
  } finally {
    await rogue.close().catch(() => {});
    await honest.stop();
    await queen.proc.stop();
  }
});

Deno.test("artifacts survive a queen restart and retention removes them", async () => {
  const repo = await makeRepo({ "README": "x\n" });
  const data = await Deno.makeTempDir({ prefix: "strider-queen-" });
  let queen = await startQueen({ data });
  const worker = await startWorker(queen, { name: "keep-worker" });
  try {
    const id = await submitJob(
      queen,
      customJob(repo.path, { test: "printf kept > kept.txt" }, { artifacts: ["kept.txt"] }),
    );
    equal((await waitForJob(queen, id)).result, "passed");
    await worker.stop();
    await queen.proc.stop();
    queen = await startQueen({ data });
    equal(await (await api(queen, `/api/jobs/${id}/artifacts/kept.txt`)).text(), "kept");
    await queen.proc.stop();
    // Retention of zero finished jobs removes the job and, with it, its artifacts.
    queen = await startQueen({ data, args: ["--keep-jobs", "0"] });
    equal((await api(queen, `/api/jobs/${id}/artifacts`)).status, 404);
    if (ON_POSTGRES) return;
    const db = new DatabaseSync(join(data, "strider.db"), { readOnly: true });
    try {
      equal((db.prepare("SELECT COUNT(*) AS n FROM artifact_chunks").get() as { n: number }).n, 0);
    } finally {
      db.close();
    }
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
