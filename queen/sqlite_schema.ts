import type { DatabaseSync } from "node:sqlite";
import { StartupError } from "./errors.ts";

/**
 * The store's schema as numbered migrations: migration i brings `PRAGMA user_version` from i to
 * i + 1. Never edit one that shipped; add the next.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     position INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     created_at INTEGER NOT NULL,
     finished_at INTEGER,
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
     job_id TEXT NOT NULL,
     n INTEGER NOT NULL,
     at INTEGER NOT NULL,
     attempt INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     data TEXT NOT NULL,
     PRIMARY KEY (job_id, n)
   ) WITHOUT ROWID;
   CREATE TABLE log_chunks (
     job_id TEXT NOT NULL,
     start INTEGER NOT NULL,
     bytes INTEGER NOT NULL,
     text TEXT NOT NULL,
     PRIMARY KEY (job_id, start)
   ) WITHOUT ROWID;`,
  // 2: projects (repository, branch settings, secrets) and the webhook deliveries that made jobs.
  `CREATE TABLE projects (
     name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
     repo_key TEXT NOT NULL,
     data TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX projects_by_repo ON projects (repo_key);
   CREATE TABLE webhook_deliveries (
     forge TEXT NOT NULL,
     delivery_id TEXT NOT NULL,
     job_id TEXT NOT NULL,
     received_at INTEGER NOT NULL,
     PRIMARY KEY (forge, delivery_id)
   ) WITHOUT ROWID;
   CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);`,
  // 3: artifacts, in the database (not beside it) so that any queen sharing it can serve them;
  // content in chunks so neither an upload nor a download holds a whole file in memory. A job's
  // artifacts go with its row, whether deleted through the API or by retention.
  `CREATE TABLE artifacts (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     job_id TEXT NOT NULL,
     path TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     size INTEGER NOT NULL,
     sha256 TEXT NOT NULL,
     complete INTEGER NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX artifacts_by_job ON artifacts (job_id, path);
   CREATE TABLE artifact_chunks (
     artifact_id INTEGER NOT NULL,
     n INTEGER NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (artifact_id, n)
   ) WITHOUT ROWID;
   CREATE TRIGGER jobs_delete_artifacts AFTER DELETE ON jobs BEGIN
     DELETE FROM artifact_chunks
       WHERE artifact_id IN (SELECT id FROM artifacts WHERE job_id = OLD.id);
     DELETE FROM artifacts WHERE job_id = OLD.id;
   END;`,
  // 4: commit statuses reported to forges for webhook jobs: what is wanted and what the forge
  // accepted, so reporting resumes after a restart. No token here: it stays a project secret.
  `CREATE TABLE commit_statuses (
     job_id TEXT NOT NULL PRIMARY KEY,
     forge TEXT NOT NULL,
     project TEXT NOT NULL,
     sha TEXT NOT NULL,
     wanted TEXT NOT NULL,
     sent TEXT,
     sent_at INTEGER,
     tries INTEGER NOT NULL,
     error TEXT,
     created_at INTEGER NOT NULL
   );
   CREATE TRIGGER jobs_delete_commit_statuses AFTER DELETE ON jobs BEGIN
     DELETE FROM commit_statuses WHERE job_id = OLD.id;
   END;`,
  // 5: builds (a group of jobs from one trigger) with the index of the jobs they made, and the
  // seconds per test file that `strider shard` balances by (queen/builds/).
  `CREATE TABLE builds (
     position INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     created_at INTEGER NOT NULL,
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
     seconds REAL NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (repo, file)
   );`,
  // 6: finished logs compressed in blocks (log_blocks.ts). A job's log is packed once it is final:
  // its blocks are written, then one transaction adds its log_packed row and empties the text of
  // its log_chunks (kept as the index of chunk positions that output events point to).
  `CREATE TABLE log_blocks (
     job_id TEXT NOT NULL,
     n INTEGER NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (job_id, n)
   );
   CREATE TABLE log_packed (
     job_id TEXT NOT NULL PRIMARY KEY,
     bytes INTEGER NOT NULL,
     packed_bytes INTEGER NOT NULL,
     ends_with_newline INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TRIGGER jobs_delete_log_blocks AFTER DELETE ON jobs BEGIN
     DELETE FROM log_blocks WHERE job_id = OLD.id;
     DELETE FROM log_packed WHERE job_id = OLD.id;
   END;`,
];

/** Applies the migrations `db` has not had yet, each in its own transaction. */
export function migrate(db: DatabaseSync): void {
  const { user_version: version } = db.prepare("PRAGMA user_version").get() as {
    user_version: number;
  };
  if (version > MIGRATIONS.length) {
    throw new StartupError(
      `The data folder was written by a newer strider (schema ${version}); ` +
        `this one knows schema ${MIGRATIONS.length}: upgrade strider`,
    );
  }
  for (let i = version; i < MIGRATIONS.length; i++) {
    db.exec("BEGIN");
    try {
      db.exec(MIGRATIONS[i]);
      db.exec(`PRAGMA user_version = ${i + 1}`);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
}
