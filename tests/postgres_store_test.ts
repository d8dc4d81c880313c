/**
 * What only the PostgreSQL store does: secrets sealed at rest in a shared database, one key per
 * cluster, migrations safe for queens starting at once, the lead lock, and the notifications
 * other queens follow.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { JobSpecSchema } from "../protocol/mod.ts";
import { Hub } from "../queen/hub.ts";
import { PostgresStore } from "../queen/postgres/store.ts";
import { holdLock } from "../queen/postgres/liveness.ts";
import { newQueenIdentity } from "../queen/postgres/cluster.ts";
import { PG_MIGRATIONS } from "../queen/postgres/schema.ts";
import { newRecord, Recorder } from "../queen/recorder.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { StartupError } from "../queen/errors.ts";
import { postgresCluster } from "./helpers/postgres.ts";
import { waitUntil } from "./helpers/cluster.ts";

const T = Date.parse("2026-11-30T12:00:00Z");
const key = () => crypto.getRandomValues(new Uint8Array(32));

function job(id: string) {
  const spec = JobSpecSchema.parse({
    job_id: id,
    repo: {
      url: "https://git.example/app.git",
      auth: { type: "https", username: "ci", password: "repo-cred-777" },
    },
    ref: { branch: "main" },
    secrets: { DEPLOY_TOKEN: "s3cret-value-42" },
  });
  return newRecord(id, spec, T);
}

Deno.test("PostgreSQL: specs are sealed at rest and a finished job's row forgets its secrets", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const store = await PostgresStore.open({ url, max: 2 }, new SecretBox(key(), []));
  try {
    const record = job("sealed");
    await store.createJob(record);
    const [row] = await store.sql`SELECT spec, state FROM jobs WHERE id = 'sealed'`;
    ok(String(row.spec).startsWith("enc:v1:"));
    ok(!String(row.spec).includes("s3cret-value-42") && !String(row.state).includes("s3cret"));
    ok(!String(row.spec).includes("repo-cred-777"));
    const recorder = new Recorder(store, new Hub());
    recorder.record(record, {
      event: "job:done",
      id: "sealed",
      attempt: 1,
      seq: 1,
      timestamp: T,
      result: "passed",
    }, T);
    await new Promise<void>((resolve) => store.afterCommit(resolve));
    const done = (await store.getJob("sealed"))!;
    equal(done.spec.secrets, undefined, "a finished job keeps no secrets");
    equal(done.spec.repo.auth, undefined, "nor its repository credential");
  } finally {
    await store.close();
  }
});

Deno.test("PostgreSQL: queens starting at once migrate once; another key is refused", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const shared = key();
  const stores = await Promise.all(
    Array.from({ length: 4 }, () => PostgresStore.open({ url, max: 2 }, new SecretBox(shared, []))),
  );
  try {
    const [row] = await stores[0].sql`SELECT version FROM strider_schema`;
    equal(Number(row.version), PG_MIGRATIONS.length);
    const [count] = await stores[0].sql`SELECT count(*) AS n FROM strider_schema`;
    equal(Number(count.n), 1);
    // The lease key is made once and the same for every queen.
    const keys = await Promise.all(
      stores.map((s) => s.shared("lease-key", () => crypto.randomUUID())),
    );
    equal(new Set(keys).size, 1);
    await rejects(
      PostgresStore.open({ url, max: 1 }, new SecretBox(key(), [])),
      (error: Error) =>
        error instanceof StartupError && /same STRIDER_SECRET_KEY/.test(error.message),
    );
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

Deno.test("PostgreSQL: a queen's liveness lock is free exactly when its holder is gone", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const store = await PostgresStore.open({ url, max: 2 }, new SecretBox(key(), []));
  const free = async (lock: bigint) => {
    const [row] = await store.sql.begin((tx) =>
      tx`SELECT pg_try_advisory_xact_lock(${lock.toString()}::bigint) AS free`
    );
    return Boolean(row.free);
  };
  try {
    const { lock } = newQueenIdentity();
    ok(await free(lock), "nobody holds a new queen's lock");
    const held = await holdLock(url, lock);
    equal(await free(lock), false, "held while the queen lives");
    held.release();
    await waitUntil(() => free(lock), 5_000, "the lock to be free");
    // Its end is seen by the holder: the queen must stop.
    const again = await holdLock(url, lock);
    const [{ pid }] = await store.sql`SELECT pid FROM pg_locks WHERE locktype = 'advisory'
      AND granted AND ((classid::bigint << 32) | objid::bigint) = ${lock.toString()}::bigint`;
    await store.sql`SELECT pg_terminate_backend(${pid})`;
    await rejects(again.lost, /lost the database connection that holds this queen's lock/);
    again.release();
  } finally {
    await store.close();
  }
});

Deno.test("PostgreSQL: another queen's committed events are announced", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const shared = key();
  const [writer, reader] = await Promise.all(
    [0, 1].map(() => PostgresStore.open({ url, max: 2 }, new SecretBox(shared, []))),
  );
  try {
    const heard = Promise.withResolvers<string>();
    reader.onEvents((id) => heard.resolve(id));
    const record = job("told");
    await writer.createJob(record);
    new Recorder(writer, new Hub()).record(record, {
      event: "job:stdout",
      id: "told",
      attempt: 1,
      seq: 1,
      text: "hello\n",
    }, T);
    equal(await heard.promise, "told");
    const events = await reader.events("told");
    equal((events[0].data as { text: string }).text, "hello\n", "then read from the database");
  } finally {
    await writer.close();
    await reader.close();
  }
});
