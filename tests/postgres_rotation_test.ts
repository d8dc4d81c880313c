/**
 * `--rotate-secret-key` on PostgreSQL (queen/postgres/rotation.ts): every sealed value is sealed
 * again with the new key in one transaction, two queens rotating at once do it once, a queen
 * still connected with the old key stops it, a wrong old key is refused with a `StartupError`,
 * and afterwards no value in the database is sealed with the old key. Then the same through real
 * queen processes and their flags.
 */
import { equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { JobSpecSchema, ProjectSchema } from "../protocol/mod.ts";
import { Hub } from "../queen/hub.ts";
import { PostgresStore } from "../queen/postgres/store.ts";
import { PostgresProjectStore } from "../queen/postgres/projects.ts";
import { rotateSecretKey } from "../queen/postgres/rotation.ts";
import { newRecord, Recorder } from "../queen/recorder.ts";
import { keyId, SecretBox } from "../queen/secret_box.ts";
import { StartupError } from "../queen/errors.ts";
import { postgresCluster } from "./helpers/postgres.ts";
import { API_TOKEN, ENTRY, Proc, QUEEN_PERMISSIONS, WORKER_TOKEN } from "./helpers/cluster.ts";

const T = Date.parse("2026-11-30T12:00:00Z");
const newKey = () => crypto.getRandomValues(new Uint8Array(32));
const base64 = (key: Uint8Array) => btoa(String.fromCharCode(...key));

function job(id: string) {
  return newRecord(
    id,
    JobSpecSchema.parse({
      job_id: id,
      repo: {
        url: "https://git.example/app.git",
        auth: { type: "https", username: "ci", password: "repo-cred-777" },
      },
      ref: { branch: "main" },
      secrets: { DEPLOY_TOKEN: `s3cret-${id}` },
    }),
    T,
  );
}

/** A database sealed with `key`: two queued jobs, a finished one, a project, the lease key. */
async function filled(url: string, key: Uint8Array): Promise<string> {
  const store = await PostgresStore.open({ url, max: 2 }, new SecretBox(key, []));
  try {
    for (const id of ["q1", "q2", "done"]) await store.createJob(job(id));
    const done = (await store.getJob("done"))!;
    new Recorder(store, new Hub()).record(done, {
      event: "job:done",
      id: "done",
      attempt: 1,
      seq: 1,
      timestamp: T,
      result: "passed",
    }, T);
    await new Promise<void>((resolve) => store.afterCommit(resolve));
    await new PostgresProjectStore(store.sql, store.secretBox).create(
      ProjectSchema.parse({
        name: "octo-org/app",
        repo: { url: "https://git.example/app.git" },
        secrets: { FORGE_TOKEN: "ghp-project-secret" },
      }),
      T,
    );
    return await store.shared("lease-key", () => "lease-key-value-1234");
  } finally {
    await store.close();
  }
}

/** Whether the files of the tables holding sealed values contain `text` (written out first). */
async function onDisk(store: PostgresStore, text: string): Promise<boolean> {
  await store.sql`CHECKPOINT`;
  const [{ dir }] = await store.sql`SELECT current_setting('data_directory') AS dir`;
  const files = await store.sql`SELECT pg_relation_filepath(c.oid) AS path FROM pg_class c
    WHERE c.relname IN ('jobs', 'projects', 'strider_meta') OR c.oid IN (SELECT reltoastrelid
      FROM pg_class WHERE relname IN ('jobs', 'projects', 'strider_meta'))`;
  for (const { path } of files) {
    if (!path) continue;
    const bytes = await Deno.readFile(join(String(dir), String(path)));
    if (new TextDecoder("latin1").decode(bytes).includes(text)) return true;
  }
  return false;
}

/** Every sealed value of the database, as stored. */
async function sealedValues(store: PostgresStore): Promise<string[]> {
  const rows = await store.sql`SELECT spec AS v FROM jobs UNION ALL SELECT data FROM projects
    UNION ALL SELECT value FROM strider_meta`;
  return rows.map((r) => String(r.v)).filter((v) => v.startsWith("enc:v1:"));
}

Deno.test("PostgreSQL rotation: re-sealed once by queens starting at once; nothing of the old key is left", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const [oldKey, key] = [newKey(), newKey()];
  const leaseKey = await filled(url, oldKey);

  // A wrong old key is refused, and nothing changes.
  await rejects(
    rotateSecretKey({ url }, new SecretBox(key, [newKey()])),
    (error: Error) =>
      error instanceof StartupError && /sealed with key .*--old-secret-key/.test(error.message),
  );
  // A queen still serving with the old key would go on sealing with it: refused while it is
  // connected.
  const stillThere = await PostgresStore.open({ url, max: 1 }, new SecretBox(oldKey, []));
  await rejects(
    rotateSecretKey({ url }, new SecretBox(key, [oldKey])),
    (error: Error) => error instanceof StartupError && /stop every queen/.test(error.message),
  );
  await stillThere.close();

  const before = await PostgresStore.open({ url, max: 1 }, new SecretBox(oldKey, []));
  ok(await onDisk(before, keyId(oldKey)), "the tables' files hold values sealed with the old key");
  await before.close();

  const changed = await Promise.all(
    [0, 1].map(() => rotateSecretKey({ url }, new SecretBox(key, [oldKey]))),
  );
  // Three specs, one project, the lease key: sealed again once, by one of the two.
  equal(changed[0] + changed[1], 5, `re-sealed ${changed}`);
  ok(changed.includes(0), "the second found nothing left to do");

  const store = await PostgresStore.open({ url, max: 2 }, new SecretBox(key, []));
  try {
    const values = await sealedValues(store);
    equal(values.length, 5);
    for (const value of values) {
      ok(value.startsWith(`enc:v1:${keyId(key)}:`), "sealed with the new key");
      ok(!value.includes(keyId(oldKey)));
    }
    ok(
      !await onDisk(store, keyId(oldKey)),
      "nor do the tables' files keep earlier row versions sealed with it",
    );
    // The old key alone opens nothing any more.
    const oldBox = new SecretBox(oldKey, []);
    const [spec] = await store.sql`SELECT spec FROM jobs WHERE id = 'q1'`;
    ok(!oldBox.keyIds.includes(String(spec.spec).split(":")[2]));
    // With the new key alone, every secret opens.
    equal((await store.getJob("q1"))!.spec.secrets?.DEPLOY_TOKEN, "s3cret-q1");
    equal((await store.getJob("q2"))!.spec.repo.auth?.type, "https");
    equal((await store.getJob("done"))!.spec.secrets, undefined, "a finished job keeps none");
    const project = await new PostgresProjectStore(store.sql, store.secretBox).get("octo-org/app");
    equal(project?.project.secrets.FORGE_TOKEN, "ghp-project-secret");
    equal(await store.shared("lease-key", () => "another"), leaseKey, "the lease key is kept");
  } finally {
    await store.close();
  }
  // A queen with the old key, or with any other, is refused and told why.
  await rejects(
    PostgresStore.open({ url, max: 1 }, new SecretBox(oldKey, [])),
    (error: Error) =>
      error instanceof StartupError &&
      /not the one the database is sealed with/.test(error.message),
  );
  await rejects(
    PostgresStore.open({ url, max: 1 }, new SecretBox(oldKey, [key])),
    (error: Error) => error instanceof StartupError && /--rotate-secret-key/.test(error.message),
  );
});

/** `strider queen` on `database`; resolves with its output once it exits or serves. */
function queen(database: string, data: string, env: Record<string, string>, args: string[] = []) {
  return new Proc([
    "run",
    ...QUEEN_PERMISSIONS,
    ENTRY,
    "queen",
    "--port",
    "0",
    "--data",
    data,
    "--worker-token",
    WORKER_TOKEN,
    "--api-token",
    API_TOKEN,
    ...args,
  ], { env: { STRIDER_DATABASE: database, ...env } });
}

Deno.test("PostgreSQL rotation through the queen's flags: --old-secret-key FILE, then the old key is refused", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const data = await Deno.makeTempDir({ prefix: "strider-rotate-" });
  const [oldKey, key] = [newKey(), newKey()];
  await filled(database, oldKey);
  const oldFile = join(data, "old-key");
  await Deno.writeTextFile(oldFile, base64(oldKey) + "\n", { mode: 0o600 });
  try {
    const rotating = queen(database, data, { STRIDER_SECRET_KEY: base64(key) }, [
      "--rotate-secret-key",
      "--old-secret-key",
      oldFile,
    ]);
    await rotating.waitFor(/strider queen listening on/, 60_000);
    match(rotating.stdout + rotating.stderr, /5 sealed values re-sealed/);
    await rotating.stop();

    const stale = queen(database, data, { STRIDER_SECRET_KEY: base64(oldKey) });
    const status = await stale.exit(60_000);
    ok(!status.success, "a queen with the old key does not start");
    const said = stale.stdout + stale.stderr;
    match(said, /not the one the database is sealed with/);
    ok(!said.includes(base64(oldKey)) && !said.includes(base64(key)), "no key is ever printed");

    const fresh = queen(database, data, { STRIDER_SECRET_KEY: base64(key) });
    await fresh.waitFor(/strider queen listening on/, 60_000);
    await fresh.stop();
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("PostgreSQL rotation with key files: refused while a queen is connected, finished by the next start", async () => {
  const database = await (await postgresCluster()).newDatabase();
  const [dirA, dirB] = await Promise.all(
    [0, 1].map(() => Deno.makeTempDir({ prefix: "strider-rotate-file-" })),
  );
  const oldKey = base64(newKey()) + "\n";
  for (const dir of [dirA, dirB]) {
    await Deno.writeTextFile(join(dir, "secret-key"), oldKey, { mode: 0o600 });
  }
  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
  try {
    const a = queen(database, dirA, {});
    await a.waitFor(/strider queen listening on/, 60_000);
    const refused = queen(database, dirB, {}, ["--rotate-secret-key"]);
    equal((await refused.exit(60_000)).success, false);
    match(refused.stdout + refused.stderr, /stop every queen/);
    ok(await exists(join(dirB, "secret-key.old")), "the old key is kept until the work is done");
    await a.stop();

    const b = queen(database, dirB, {});
    await b.waitFor(/strider queen listening on/, 60_000);
    match(b.stdout + b.stderr, /finishing the key rotation/);
    ok(!await exists(join(dirB, "secret-key.old")), "nothing is sealed with the old key any more");
    await b.stop();

    const stale = queen(database, dirA, {});
    equal((await stale.exit(60_000)).success, false);
    match(stale.stdout + stale.stderr, /not the one the database is sealed with/);
  } finally {
    await Promise.all([dirA, dirB].map((dir) => Deno.remove(dir, { recursive: true })));
  }
});
