/**
 * Secrets at rest (issue 13, items 3 and 4): a queen started under umask 000 keeps its data
 * folder 0700 and its files 0600, fixing wider modes it finds; after a job with secrets, a
 * repository password and secret-named config values has finished, the raw bytes of
 * `strider.db`, `-wal` and `-shm` hold none of them, and the API shows none; a re-run takes the
 * secrets from the project; `--rotate-secret-key` leaves nothing the old key can open.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { TestQueen } from "./helpers/cluster.ts";
import {
  api,
  customJob,
  ENTRY,
  jobLog,
  Proc,
  QUEEN_PERMISSIONS,
  startWorker,
  waitForJob,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import { startGitHttpServer } from "./helpers/git_http_server.ts";
import { git, makeRepo } from "./helpers/git_repo.ts";

const random = () => crypto.randomUUID().replaceAll("-", "");
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** A queen under umask 000 that generates its own API token (and keeps the given worker one). */
async function startQueen(
  data: string,
  args: string[] = [],
): Promise<TestQueen & { token: string }> {
  const proc = new Proc([
    "run",
    ...QUEEN_PERMISSIONS,
    ENTRY,
    "queen",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--data",
    data,
    ...args,
  ], { umask: 0 });
  const [, url] = await proc.waitFor(/listening on (https?:\/\/\S+)/, 30_000);
  const token = (await Deno.readTextFile(join(data, "api-token"))).trim();
  return { url, proc, data, token };
}

/** Octal permission bits of `path`. */
async function mode(path: string): Promise<string> {
  return ((await Deno.stat(path)).mode! & 0o777).toString(8);
}

/** Which of `needles` occur, byte for byte, in the queen's database files. */
async function foundInDatabase(data: string, needles: string[]): Promise<string[]> {
  const files: Uint8Array[] = [];
  for (const name of ["strider.db", "strider.db-wal", "strider.db-shm"]) {
    try {
      files.push(await Deno.readFile(join(data, name)));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  ok(files.length >= 1 && files[0].length > 0, "strider.db is there");
  return needles.filter((needle) => files.some((bytes) => Buffer.from(bytes).includes(needle)));
}

/** Opens a sealed value (`enc:v1:<id>:<base64>`) with WebCrypto's AES-GCM, as a reader would. */
async function openWith(keyBase64: string, sealed: string, context: string): Promise<string> {
  const bytes = Buffer.from(sealed.split(":")[3], "base64");
  const key = await crypto.subtle.importKey(
    "raw",
    Buffer.from(keyBase64.trim(), "base64"),
    "AES-GCM",
    false,
    ["decrypt"],
  );
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: bytes.subarray(0, 12), additionalData: Buffer.from(context) },
    key,
    bytes.subarray(12),
  );
  return new TextDecoder().decode(plain);
}

Deno.test("secrets are unreadable at rest, hidden by the API, and re-sealed on rotation", async (t) => {
  const gitRoot = await Deno.makeTempDir({ prefix: "strider-git-root-" });
  const username = "ci-user";
  const password = `pw-${random()}`;
  const server = startGitHttpServer(gitRoot, { username, password });
  const source = await makeRepo({ "a.txt": "private content\n" });
  await git(gitRoot, "clone", "-q", "--bare", source.path, "private.git");
  const url = server.url("private.git");

  // A data folder as an older strider, a copy or a careless umask could leave it.
  const data = await Deno.makeTempDir({ prefix: "strider-queen-" });
  await Deno.chmod(data, 0o777);
  await Deno.writeTextFile(join(data, "worker-token"), WORKER_TOKEN + "\n");
  await Deno.chmod(join(data, "worker-token"), 0o666);

  const jobSecret = `job-secret-${random()}`;
  const deployKey = `deploy-key-${random()}`;
  const awsSecret = `aws-secret-${random()}`;
  const projectSecret = `project-secret-${random()}`;
  const visible = `plain-value-${random()}`;
  const everySecret = [jobSecret, deployKey, awsSecret, projectSecret, password];

  let queen = await startQueen(data);
  const worker = await startWorker(queen, { name: "at-rest" });
  const call = (path: string, init: RequestInit = {}) =>
    api(queen, path, { ...init, token: queen.token });
  try {
    let jobId = "";
    await t.step("the data folder is 0700 and every file in it 0600 under umask 000", async () => {
      equal(await mode(data), "700");
      for (const name of ["worker-token", "api-token", "secret-key", "strider.db"]) {
        equal(await mode(join(data, name)), "600", name);
      }
      // The write-ahead files exist once something was written.
      const response = await call("/api/projects", {
        method: "POST",
        body: JSON.stringify({
          name: "team/private",
          repo: { url, auth: { type: "https", username, password } },
          secrets: { DEPLOY_TOKEN: projectSecret },
        }),
      });
      equal(response.status, 201, await response.text());
      for (const name of ["strider.db-wal", "strider.db-shm"]) {
        equal(await mode(join(data, name)), "600", name);
      }
    });

    await t.step(
      "a finished job's secrets are in no database file and not in the API",
      async () => {
        const script = [
          'printf "%s" "$DEPLOY_TOKEN" | sha256sum',
          "echo key=$DEPLOY_KEY aws=$AWS_SECRET plain=$PLAIN",
        ].join("\n");
        const response = await call("/api/jobs", {
          method: "POST",
          body: JSON.stringify({
            ...customJob(url, {}),
            repo: { url, auth: { type: "https", username, password } },
            secrets: { DEPLOY_TOKEN: jobSecret },
            config: {
              env: { DEPLOY_KEY: deployKey, AWS_SECRET: awsSecret, PLAIN: visible },
              custom: { test: script },
            },
          }),
        });
        const made = await response.json();
        equal(response.status, 201, JSON.stringify(made));
        jobId = made.id;
        const job = await waitForJob(queen, jobId);
        const log = await jobLog(queen, jobId);
        equal(job.result, "passed", `${job.error}\n${log}`);
        // The job had its secret, and the worker masked the secret-named values in its output.
        match(log, new RegExp(sha256(jobSecret)));
        match(log, new RegExp(`key=\\*\\*\\* aws=\\*\\*\\* plain=${visible}`));

        // Without any token: the API never shows what the worker masks.
        const shown = await (await fetch(new URL(`/api/jobs/${jobId}`, queen.url))).text();
        const view = JSON.parse(shown);
        deepEqual(view.spec.config.env, { DEPLOY_KEY: "***", AWS_SECRET: "***", PLAIN: visible });
        deepEqual(view.spec.secrets, { DEPLOY_TOKEN: "***" });
        equal(view.spec.repo.auth.password, "***");
        const list = await (await fetch(new URL("/api/jobs", queen.url))).text();
        const project = await (await call("/api/projects/team/private")).text();
        for (const secret of everySecret) {
          ok(
            !shown.includes(secret) && !list.includes(secret) && !project.includes(secret),
            secret,
          );
        }
        deepEqual(await foundInDatabase(data, everySecret), []);
      },
    );

    await t.step(
      "a re-run takes the secrets from the project; without one it is refused",
      async () => {
        const rerun = await call(`/api/jobs/${jobId}/retry`, { method: "POST" });
        const made = await rerun.json();
        equal(rerun.status, 201, JSON.stringify(made));
        const job = await waitForJob(queen, made.id);
        const log = await jobLog(queen, made.id);
        equal(job.result, "passed", `${job.error}\n${log}`);
        equal(job.retryOf, jobId);
        match(log, new RegExp(sha256(projectSecret)), "the project's current value");
        ok(!log.includes(sha256(jobSecret)));

        equal((await call("/api/projects/team/private", { method: "DELETE" })).status, 204);
        const refused = await call(`/api/jobs/${jobId}/retry`, { method: "POST" });
        const body = await refused.json();
        equal(refused.status, 409);
        match(body.error, /keeps no secrets/);
        match(body.error, /submit the job again with its secrets/);
        deepEqual(await foundInDatabase(data, everySecret), []);
      },
    );

    await t.step("--rotate-secret-key re-seals everything; the old key opens nothing", async () => {
      const oldKey = await Deno.readTextFile(join(data, "secret-key"));
      const oldId = sha256Bytes(oldKey).slice(0, 16);
      await queen.proc.stop();
      // Modes widened while it was down (a restore, a careless copy) are narrowed on start.
      for (const name of ["strider.db", "secret-key", "api-token", "lease-key"]) {
        await Deno.chmod(join(data, name), 0o644);
      }
      await Deno.chmod(data, 0o755);
      queen = await startQueen(data, ["--rotate-secret-key"]);
      equal(await mode(data), "700");
      for (
        const name of ["strider.db", "api-token", "lease-key", "strider.db-wal", "strider.db-shm"]
      ) {
        equal(await mode(join(data, name)), "600", name);
      }
      match(queen.proc.stderr, /secret key rotated/);
      const newKey = await Deno.readTextFile(join(data, "secret-key"));
      ok(newKey !== oldKey);
      equal(await mode(join(data, "secret-key")), "600");
      await rejects(Deno.stat(join(data, "secret-key.old")), Deno.errors.NotFound);
      // The queen still reads every job.
      const view = await (await call(`/api/jobs/${jobId}`)).json();
      equal(view.result, "passed");
      await queen.proc.stop();

      const db = new DatabaseSync(join(data, "strider.db"), { readOnly: true });
      try {
        const rows = db.prepare("SELECT id, spec FROM jobs").all() as {
          id: string;
          spec: string;
        }[];
        equal(rows.length, 2);
        for (const row of rows) {
          match(row.spec, /^enc:v1:[0-9a-f]{16}:/);
          const spec = JSON.parse(await openWith(newKey, row.spec, `job:${row.id}`));
          // Finished: no secrets and no credentials left, even sealed.
          equal(spec.secrets, undefined);
          equal(spec.repo.auth, undefined);
          equal(spec.config.env.DEPLOY_KEY, deployKey);
          await rejects(openWith(oldKey, row.spec, `job:${row.id}`));
          // Bound to its row: moved to another job's row, it does not open.
          await rejects(openWith(newKey, row.spec, "job:another"));
        }
      } finally {
        db.close();
      }
      deepEqual(await foundInDatabase(data, [...everySecret, `enc:v1:${oldId}:`]), []);

      // A key that is not one says what a key looks like, and the queen does not start.
      const bad = new Proc(
        ["run", ...QUEEN_PERMISSIONS, ENTRY, "queen", "--port", "0", "--data", data],
        { env: { STRIDER_SECRET_KEY: "hunter2" } },
      );
      equal((await bad.exit()).code, 1);
      match(bad.stderr, /STRIDER_SECRET_KEY must hold 32 random bytes in base64/);
      ok(!bad.stderr.includes("hunter2"));
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await server.close();
  }
});

function sha256Bytes(keyBase64: string): string {
  return createHash("sha256").update(Buffer.from(keyBase64.trim(), "base64")).digest("hex");
}
