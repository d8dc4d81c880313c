/**
 * Tokens from a tokens file: worker, write and read-only API tokens, on a private queen; editing
 * the file and sending SIGHUP adds and revokes tokens without a restart.
 */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import {
  api,
  customJob,
  droneNames,
  startQueen,
  startWorker,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

const WORKER_A = "worker-token-aaaaaaaaaaaaaaaa";
const WORKER_B = "worker-token-bbbbbbbbbbbbbbbb";
const WRITE = "api-write-token-cccccccccccc";
const READ = "api-read-token-dddddddddddddd";

Deno.test("tokens file: scopes, private reads and revocation on SIGHUP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strider-tokens-" });
  const file = join(dir, "tokens");
  await Deno.writeTextFile(
    file,
    `# strider tokens\nworker ${WORKER_A}\napi ${WRITE}\napi-read ${READ}\n`,
  );
  const repo = await makeRepo({ "a.txt": "a\n" });
  // The harness passes its own tokens by flag too; the file's are added to them.
  const queen = await startQueen({ args: ["--tokens-file", file, "--private"] });
  const worker = await startWorker(queen, { name: "token-a", token: WORKER_A, wait: false });
  try {
    await waitUntil(async () => (await droneNames(queen)).includes("token-a"), 30_000, "token-a");
    equal(
      (await api(queen, "/api/jobs", { token: null })).status,
      401,
      "private: reads need a token",
    );
    equal((await api(queen, "/api/jobs", { token: READ })).status, 200);
    const refused = await api(queen, "/api/jobs", {
      method: "POST",
      token: READ,
      body: JSON.stringify(customJob(repo.path, { test: "true" })),
    });
    equal(refused.status, 401, "a read-only token cannot submit");
    await refused.body?.cancel();
    const created = await api(queen, "/api/jobs", {
      method: "POST",
      token: WRITE,
      body: JSON.stringify(customJob(repo.path, { test: "echo by file token" })),
    });
    equal(created.status, 201);
    const { id } = await created.json();
    equal((await waitForJob(queen, id)).result, "passed");

    await Deno.writeTextFile(file, `worker ${WORKER_B}\napi ${WRITE}\n`);
    queen.proc.signal("SIGHUP");
    await waitUntil(
      async () => !(await droneNames(queen)).includes("token-a"),
      15_000,
      "revocation",
    );
    const status = await worker.exit(30_000);
    equal(status.code, 1);
    match(worker.stderr, /refused the worker token/);
    equal((await api(queen, "/api/jobs", { token: READ })).status, 401, "api-read was removed");
    const b = await startWorker(queen, { name: "token-b", token: WORKER_B });
    await b.stop();
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

Deno.test("a tokens file mistake never puts a token in the queen's log, at a reload or at start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strider-tokens-" });
  const file = join(dir, "tokens");
  const SWAPPED = "swapped-token-eeeeeeeeeeeeeeee";
  await Deno.writeTextFile(file, `worker ${WORKER_A}\n`);
  const queen = await startQueen({ args: ["--tokens-file", file] });
  try {
    // A token with a note after it instead of KIND TOKEN, picked up by a reload.
    await Deno.writeTextFile(file, `${SWAPPED} the-runner-in-rack-two\n`);
    queen.proc.signal("SIGHUP");
    await queen.proc.waitFor(/tokens not reloaded, the old ones stay: .*line 1/, 15_000);
    const worker = await startWorker(queen, { name: "still-a", token: WORKER_A });
    await worker.stop();
    ok(!(queen.proc.stdout + queen.proc.stderr).includes(SWAPPED), queen.proc.stderr);

    // And at start: the queen refuses the file, naming the line only.
    const second = await Deno.makeTempDir({ prefix: "strider-queen-" });
    const refused = await startQueen({ data: second, args: ["--tokens-file", file] })
      .then(() => "started", (error: Error) => error.message);
    match(refused, /tokens file line 1: its first word must be the kind/);
    ok(!refused.includes(SWAPPED), refused);
  } finally {
    await queen.proc.stop();
  }
});
