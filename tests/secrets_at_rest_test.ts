/**
 * Secrets at rest, in process: a database written before sealing is sealed on the first start
 * (no plaintext left in any file), secrets of finished jobs are erased, keys are checked and can
 * move from the key file to STRIDER_SECRET_KEY, and a wrong key is refused with what to do.
 */
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { JobSpec } from "../protocol/mod.ts";
import { JobSpecSchema, ProjectSchema } from "../protocol/mod.ts";
import { newJobView } from "../queen/job_state.ts";
import { newRecord } from "../queen/recorder.ts";
import { SqliteProjectStore } from "../queen/projects/store.ts";
import { SecretBox, SecretKeyError } from "../queen/secret_box.ts";
import { newSecretKey, openSecretBox, parseSecretKey } from "../queen/secret_key.ts";
import { migrate } from "../queen/sqlite_schema.ts";
import { SqliteStore } from "../queen/sqlite_store.ts";

const random = () => crypto.randomUUID().replaceAll("-", "");

/** Which of `needles` occur, byte for byte, in any file of `dir`. */
function foundInFiles(dir: string, needles: string[]): string[] {
  const files = [...Deno.readDirSync(dir)].filter((e) => e.isFile)
    .map((e) => Buffer.from(Deno.readFileSync(join(dir, e.name))));
  return needles.filter((needle) => files.some((bytes) => bytes.includes(needle)));
}

function spec(id: string, values: { secret: string; password: string; env: string }): JobSpec {
  return JobSpecSchema.parse({
    job_id: id,
    repo: {
      url: "https://git.example/team/app.git",
      auth: { type: "https", username: "ci", password: values.password },
    },
    ref: { branch: "main" },
    secrets: { DEPLOY_TOKEN: values.secret },
    config: { env: { DEPLOY_KEY: values.env, PLAIN: "plain" } },
  });
}

/** A data folder as a strider without sealing left it: plain JSON everywhere. */
function oldDataFolder(values: { secret: string; password: string; env: string }): string {
  const dir = Deno.makeTempDirSync({ prefix: "strider-old-data-" });
  const db = new DatabaseSync(join(dir, "strider.db"));
  db.exec("PRAGMA journal_mode = WAL");
  migrate(db);
  const insert = db.prepare(
    "INSERT INTO jobs (id, created_at, status, result, repo, branch, spec, state) " +
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  for (const [id, status] of [["old-done", "done"], ["old-queued", "queued"]] as const) {
    const full = spec(id, values);
    const view = newJobView(id, full, 1000);
    // Older views showed secret-named config.env values.
    view.spec.config = structuredClone(full.config);
    view.status = status;
    if (status === "done") view.result = "passed";
    const state = JSON.stringify({ view, viewN: 0, viewBytes: 0 });
    insert.run(id, 1000, status, view.result, full.repo.url, "main", JSON.stringify(full), state);
  }
  db.prepare(
    "INSERT INTO projects (name, repo_key, data, created_at, updated_at) VALUES (?, ?, ?, 1, 1)",
  ).run(
    "team/app",
    "git.example/team/app",
    JSON.stringify(ProjectSchema.parse({
      name: "team/app",
      repo: { url: "https://git.example/team/app.git" },
      secrets: { DEPLOY_TOKEN: values.secret },
    })),
  );
  db.close();
  return dir;
}

Deno.test("a database from before sealing is sealed on start and keeps no plaintext", async () => {
  const values = {
    secret: `secret-${random()}`,
    password: `password-${random()}`,
    env: `env-${random()}`,
  };
  const dir = oldDataFolder(values);
  deepEqual(foundInFiles(dir, Object.values(values)).length, 3, "the old folder shows them");

  let store = new SqliteStore(dir);
  await store.close();
  deepEqual(foundInFiles(dir, Object.values(values)), []);
  equal((Deno.statSync(join(dir, "strider.db")).mode! & 0o777).toString(8), "600");

  store = new SqliteStore(dir);
  try {
    // The queued job can still run: its secrets open.
    const queued = (await store.getJob("old-queued"))!;
    deepEqual(queued.spec.secrets, { DEPLOY_TOKEN: values.secret });
    equal(
      queued.spec.repo.auth?.type === "https" && queued.spec.repo.auth.password,
      values.password,
    );
    // The finished one never runs again: erased, while its view still names them.
    const done = (await store.getJob("old-done"))!;
    equal(done.spec.secrets, undefined);
    equal(done.spec.repo.auth, undefined);
    deepEqual(done.view.spec.secrets, { DEPLOY_TOKEN: "***" });
    deepEqual(done.view.spec.config?.env, { DEPLOY_KEY: "***", PLAIN: "plain" });
    const projects = new SqliteProjectStore(store.database, store.secretBox);
    deepEqual(projects.get("team/app")?.project.secrets, { DEPLOY_TOKEN: values.secret });
  } finally {
    await store.close();
  }
});

Deno.test("a job's secrets are erased from its row when it finishes", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "strider-erase-" });
  const values = {
    secret: `secret-${random()}`,
    password: `password-${random()}`,
    env: `env-${random()}`,
  };
  const full = spec("job-1", values);
  let store = new SqliteStore(dir);
  const record = newRecord("job-1", full, Date.now());
  await store.createJob(record);
  await store.close();
  store = new SqliteStore(dir);
  // As the queen does on start: unfinished jobs are live, and finish through `saveJob`.
  const again = (await store.unfinishedJobs()).find((job) => job.id === "job-1")!;
  deepEqual(again.spec.secrets, { DEPLOY_TOKEN: values.secret }, "kept while it may run");
  again.view.status = "done";
  again.view.result = "passed";
  again.view.finishedAt = new Date().toISOString();
  store.saveJob(again);
  await store.close();
  store = new SqliteStore(dir);
  try {
    const done = (await store.getJob("job-1"))!;
    equal(done.spec.secrets, undefined);
    equal(done.spec.repo.auth, undefined);
    deepEqual(done.spec.config?.env?.DEPLOY_KEY, values.env, "config is kept (sealed)");
  } finally {
    await store.close();
  }
  deepEqual(foundInFiles(dir, Object.values(values)), []);
});

Deno.test("keys: format, STRIDER_SECRET_KEY taking over from the file, wrong key refused", async () => {
  throws(() => parseSecretKey("too-short", "STRIDER_SECRET_KEY"), /32 random bytes in base64/);
  throws(() => parseSecretKey(btoa("x".repeat(31)), "STRIDER_SECRET_KEY"), /openssl rand/);
  equal(parseSecretKey(newSecretKey() + "\n", "file").length, 32);

  const dir = Deno.makeTempDirSync({ prefix: "strider-keys-" });
  const store = new SqliteStore(dir);
  const fileKey = Deno.readTextFileSync(join(dir, "secret-key"));
  const projects = new SqliteProjectStore(store.database, store.secretBox);
  projects.create(
    ProjectSchema.parse({
      name: "a/b",
      repo: { url: "/srv/b" },
      secrets: { X_TOKEN: "t-1234567" },
    }),
    1,
  );
  await store.close();

  // The environment's key takes over: what the file's key sealed opens, and is sealed again.
  const envKey = newSecretKey();
  let moved = new SqliteStore(dir, { secretKey: envKey });
  equal(moved.secretBox.keyId, new SecretBox(parseSecretKey(envKey, "k")).keyId);
  moved.close();
  Deno.removeSync(join(dir, "secret-key"));
  moved = new SqliteStore(dir, { secretKey: envKey });
  deepEqual(
    new SqliteProjectStore(moved.database, moved.secretBox).get("a/b")?.project.secrets,
    { X_TOKEN: "t-1234567" },
  );
  moved.close();

  // A key the data was not written with: refused, saying which key it needs.
  throws(
    () => new SqliteStore(dir, { secretKey: fileKey }),
    (error: Error) => {
      ok(error instanceof SecretKeyError);
      match(error.message, /is encrypted with key [0-9a-f]{16}, but the queen has key/);
      match(error.message, /STRIDER_SECRET_KEY_OLD/);
      return true;
    },
  );
  throws(
    () => openSecretBox(dir, { secretKey: envKey, rotateSecretKey: true }),
    /set STRIDER_SECRET_KEY to a new key and STRIDER_SECRET_KEY_OLD/,
  );
});

Deno.test("a sealed value opens only with its key, for its row, unchanged", () => {
  const key = parseSecretKey(newSecretKey(), "k");
  const box = new SecretBox(key);
  const sealed = box.seal("hello", "job:a");
  match(sealed, /^enc:v1:[0-9a-f]{16}:/);
  ok(!sealed.includes("hello"));
  equal(box.open(sealed, "job:a"), "hello");
  notEqualSealed(box.seal("hello", "job:a"), sealed);
  throws(() => box.open(sealed, "job:b"), SecretKeyError);
  const flipped = sealed.slice(0, -4) + (sealed.endsWith("AAAA") ? "BBBB" : "AAAA");
  throws(() => box.open(flipped, "job:a"), SecretKeyError);
  throws(() => new SecretBox(parseSecretKey(newSecretKey(), "k")).open(sealed, "job:a"), /key/);
  // Rotation: a box with the old key among its previous ones opens the old value.
  const next = new SecretBox(parseSecretKey(newSecretKey(), "k"), [key]);
  equal(next.open(sealed, "job:a"), "hello");
  ok(!next.isCurrent(sealed));
});

function notEqualSealed(a: string, b: string): void {
  ok(a !== b, "each seal has a fresh IV");
}

Deno.test("rotation keeps a queued job's secrets, and a rotation cut short finishes on start", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "strider-rotate-" });
  const values = {
    secret: `secret-${random()}`,
    password: `password-${random()}`,
    env: `env-${random()}`,
  };
  const full = spec("queued-1", values);
  let store = new SqliteStore(dir);
  await store.createJob(newRecord("queued-1", full, Date.now()));
  await store.close();
  const first = Deno.readTextFileSync(join(dir, "secret-key"));

  store = new SqliteStore(dir, { rotateSecretKey: true });
  const second = Deno.readTextFileSync(join(dir, "secret-key"));
  ok(second !== first);
  deepEqual((await store.getJob("queued-1"))?.spec.secrets, { DEPLOY_TOKEN: values.secret });
  await store.close();
  throws(() => Deno.statSync(join(dir, "secret-key.old")), Deno.errors.NotFound);

  // A crash after the new key was written, before the rows were sealed again: both keys are on
  // disk; the next start opens the rows with the old one, seals them with the new one.
  const db = new DatabaseSync(join(dir, "strider.db"));
  const sealed = (db.prepare("SELECT spec FROM jobs").get() as { spec: string }).spec;
  db.close();
  Deno.writeTextFileSync(join(dir, "secret-key.old"), second, { mode: 0o600 });
  Deno.writeTextFileSync(join(dir, "secret-key"), newSecretKey() + "\n");
  throws(
    () => new SqliteStore(dir, { rotateSecretKey: true }),
    /left from a rotation that did not finish/,
  );
  store = new SqliteStore(dir);
  try {
    deepEqual((await store.getJob("queued-1"))?.spec.secrets, { DEPLOY_TOKEN: values.secret });
    ok(!store.secretBox.isCurrent(sealed));
  } finally {
    await store.close();
  }
  throws(() => Deno.statSync(join(dir, "secret-key.old")), Deno.errors.NotFound);
  const resealed = new DatabaseSync(join(dir, "strider.db"));
  const now = (resealed.prepare("SELECT spec FROM jobs").get() as { spec: string }).spec;
  resealed.close();
  ok(
    new SecretBox(parseSecretKey(Deno.readTextFileSync(join(dir, "secret-key")), "k")).isCurrent(
      now,
    ),
  );
  deepEqual(foundInFiles(dir, Object.values(values)), []);
});
