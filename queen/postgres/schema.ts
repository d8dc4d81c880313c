/**
 * The PostgreSQL schema as numbered migrations, the counterpart of `sqlite_schema.ts` (same
 * tables, PostgreSQL types). Migration i brings `strider_schema.version` from i to i + 1. Never
 * edit one that shipped; add the next.
 *
 * Several queens may start at once against one database: each migrates inside a transaction
 * holding a transaction-level advisory lock, so one applies the migrations and the others wait
 * for it, then find nothing left to do.
 */
import type { Sql } from "postgres";
import { StartupError } from "../errors.ts";

/** The advisory lock key of migrations (any constant; "strider" in ASCII). */
const MIGRATION_LOCK = 0x73747269646572;

export const PG_MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     position BIGSERIAL PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     created_at BIGINT NOT NULL,
     finished_at BIGINT,
     status TEXT NOT NULL,
     result TEXT,
     repo TEXT NOT NULL,
     branch TEXT,
     spec TEXT NOT NULL,
     state TEXT NOT NULL
   );
   CREATE INDEX jobs_by_status ON jobs (status, position);
   CREATE INDEX jobs_by_repo ON jobs (repo, branch, position);
   CREATE TABLE events (
     job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
     n INTEGER NOT NULL,
     at BIGINT NOT NULL,
     attempt INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     data TEXT NOT NULL,
     PRIMARY KEY (job_id, n)
   );
   -- Log text as bytes: output may hold NUL, which a PostgreSQL TEXT cannot.
   CREATE TABLE log_chunks (
     job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
     start BIGINT NOT NULL,
     bytes INTEGER NOT NULL,
     text BYTEA NOT NULL,
     PRIMARY KEY (job_id, start)
   );
   CREATE TABLE projects (
     name TEXT NOT NULL,
     repo_key TEXT NOT NULL,
     data TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   -- Names compare without case, as forges do.
   CREATE UNIQUE INDEX projects_by_name ON projects (lower(name));
   CREATE INDEX projects_by_repo ON projects (repo_key);
   CREATE TABLE webhook_deliveries (
     forge TEXT NOT NULL,
     delivery_id TEXT NOT NULL,
     job_id TEXT NOT NULL,
     received_at BIGINT NOT NULL,
     PRIMARY KEY (forge, delivery_id)
   );
   CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);
   CREATE TABLE artifacts (
     id BIGSERIAL PRIMARY KEY,
     job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
     path TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     size BIGINT NOT NULL,
     sha256 TEXT NOT NULL,
     complete INTEGER NOT NULL,
     created_at BIGINT NOT NULL
   );
   CREATE INDEX artifacts_by_job ON artifacts (job_id, path);
   CREATE TABLE artifact_chunks (
     artifact_id BIGINT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
     n INTEGER NOT NULL,
     data BYTEA NOT NULL,
     PRIMARY KEY (artifact_id, n)
   );
   CREATE TABLE commit_statuses (
     job_id TEXT NOT NULL PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
     forge TEXT NOT NULL,
     project TEXT NOT NULL,
     sha TEXT NOT NULL,
     wanted TEXT NOT NULL,
     sent TEXT,
     sent_at BIGINT,
     tries INTEGER NOT NULL,
     error TEXT,
     created_at BIGINT NOT NULL
   );
   -- What the queens sharing the database agree on: the id of the key that seals secrets, the
   -- (sealed) key of lease tokens.
   CREATE TABLE strider_meta (
     key TEXT NOT NULL PRIMARY KEY,
     value TEXT NOT NULL
   );`,
  // 2: builds, the jobs they made and the seconds per test file `strider shard` balances by, as
  // SQLite's migration 5 (queen/builds/).
  `CREATE TABLE builds (
     position BIGSERIAL PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     created_at BIGINT NOT NULL,
     status TEXT NOT NULL,
     repo TEXT NOT NULL,
     data TEXT NOT NULL
   );
   CREATE INDEX builds_by_status ON builds (status, position);
   CREATE TABLE build_jobs (
     job_id TEXT NOT NULL PRIMARY KEY,
     build_id TEXT NOT NULL
   );
   CREATE TABLE test_timings (
     repo TEXT NOT NULL,
     file TEXT NOT NULL,
     seconds DOUBLE PRECISION NOT NULL,
     updated_at BIGINT NOT NULL,
     PRIMARY KEY (repo, file)
   );`,
  // 3: several active queens (docs/ARCHITECTURE.md, "Several queens"). A job is owned by the
  // queen that claimed it until it ends; queued jobs have no owner. The claim reads the queue in
  // order without opening the sealed spec: priority, the serialization key and the build are
  // columns. Jobs of an older database take priority 0 until they run.
  `ALTER TABLE jobs ADD COLUMN owner TEXT;
   ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE jobs ADD COLUMN serial_key TEXT;
   ALTER TABLE jobs ADD COLUMN build_id TEXT;
   ALTER TABLE jobs ADD COLUMN queued_at BIGINT;
   ALTER TABLE jobs ADD COLUMN cancel_asked BOOLEAN NOT NULL DEFAULT FALSE;
   CREATE INDEX jobs_claimable ON jobs (priority DESC, created_at, position)
     WHERE status = 'queued' AND owner IS NULL;
   CREATE INDEX jobs_by_owner ON jobs (owner) WHERE owner IS NOT NULL;
   CREATE INDEX jobs_by_serial_key ON jobs (serial_key) WHERE serial_key IS NOT NULL;
   -- The queens serving the database: each holds the session advisory lock "lock" while it
   -- lives, so a queen is dead exactly when its lock is free; "seen_at" (the database's clock,
   -- ms) is its heartbeat, by which a frozen queen is told from a live one.
   CREATE TABLE queens (
     id TEXT NOT NULL PRIMARY KEY,
     url TEXT NOT NULL,
     lock BIGINT NOT NULL,
     started BIGINT NOT NULL,
     seen_at BIGINT NOT NULL DEFAULT 0
   );
   -- Every queen's connected drones as the scheduler sees them (DroneLoad as JSON), so that
   -- the seed's rule picks over the whole fleet.
   CREATE TABLE drones (
     id TEXT NOT NULL PRIMARY KEY,
     queen TEXT NOT NULL,
     load TEXT NOT NULL
   );
   CREATE INDEX drones_by_queen ON drones (queen);
   -- A running build is followed by one queen (the one that made it, or adopted it).
   ALTER TABLE builds ADD COLUMN owner TEXT;
   CREATE INDEX builds_by_owner ON builds (owner) WHERE owner IS NOT NULL;`,
  // 4: a build's summary commit status is a row keyed `build:<id>`, which is no job: the key of
  // commit_statuses stops pointing at jobs, and a job's row goes with the job by a trigger (as
  // SQLite's migration 4 does); retention removes summary rows with their builds.
  `ALTER TABLE commit_statuses DROP CONSTRAINT IF EXISTS commit_statuses_job_id_fkey;
   CREATE FUNCTION strider_job_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     DELETE FROM commit_statuses WHERE job_id = OLD.id;
     RETURN OLD;
   END $$;
   CREATE TRIGGER jobs_delete_commit_statuses AFTER DELETE ON jobs
     FOR EACH ROW EXECUTE FUNCTION strider_job_deleted();`,
];

/** Applies the migrations the database has not had yet, one queen at a time. */
export async function migratePostgres(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS strider_schema (version INTEGER NOT NULL)`;
    const [row] = await tx`SELECT version FROM strider_schema`;
    const version = row ? Number(row.version) : 0;
    if (!row) await tx`INSERT INTO strider_schema (version) VALUES (0)`;
    if (version > PG_MIGRATIONS.length) {
      throw new StartupError(
        `The database was written by a newer strider (schema ${version}); ` +
          `this one knows schema ${PG_MIGRATIONS.length}: upgrade strider`,
      );
    }
    for (let i = version; i < PG_MIGRATIONS.length; i++) {
      await tx.unsafe(PG_MIGRATIONS[i]);
      await tx`UPDATE strider_schema SET version = ${i + 1}`;
    }
  });
}
