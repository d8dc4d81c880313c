/**
 * Builds in the queen's SQLite database (tables of migration 5): one row per build with its
 * state as JSON, the index of the jobs each build made, and per-file test timings.
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { ShardTimings } from "../../protocol/mod.ts";
import { decodeCursor, encodeCursor } from "../store.ts";
import type { BuildFilter, BuildPage, BuildRecord, BuildStore } from "./store.ts";
import { BUILD_KEY } from "../forge_status/reporter.ts";

type Row = Record<string, string | number | null>;

export class SqliteBuildStore implements BuildStore {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  createBuild(record: BuildRecord): Promise<void> {
    const db = this.#db;
    db.exec("BEGIN IMMEDIATE");
    try {
      const taken = db.prepare("SELECT 1 FROM builds WHERE id = ?").get(record.id);
      if (taken) throw new RangeError(`build id '${record.id}' is taken`);
      db.prepare(
        "INSERT INTO builds (id, created_at, status, repo, data) VALUES (?, ?, ?, ?, ?)",
      ).run(record.id, record.createdAt, record.status, record.repo, JSON.stringify(record));
      const index = db.prepare(
        "INSERT OR IGNORE INTO build_jobs (job_id, build_id) VALUES (?, ?)",
      );
      for (const job of record.jobs) index.run(job.id, record.id);
      db.exec("COMMIT");
      return Promise.resolve();
    } catch (error) {
      db.exec("ROLLBACK");
      return Promise.reject(error);
    }
  }

  saveBuild(record: BuildRecord): Promise<void> {
    const db = this.#db;
    db.exec("BEGIN");
    try {
      db.prepare("UPDATE builds SET status = ?, data = ? WHERE id = ?")
        .run(record.status, JSON.stringify(record), record.id);
      // Jobs a build gained later (strider.json's matrix) are indexed too; earlier ones stay.
      const index = db.prepare("INSERT OR IGNORE INTO build_jobs (job_id, build_id) VALUES (?, ?)");
      for (const job of record.jobs) index.run(job.id, record.id);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
    return Promise.resolve();
  }

  getBuild(id: string): Promise<BuildRecord | undefined> {
    const row = this.#db.prepare("SELECT data FROM builds WHERE id = ?").get(id) as Row | undefined;
    return Promise.resolve(row ? JSON.parse(String(row.data)) : undefined);
  }

  listBuilds(filter: BuildFilter): Promise<BuildPage> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.repo !== undefined) where.push("repo = ?"), params.push(filter.repo);
    if (filter.status !== undefined) where.push("status = ?"), params.push(filter.status);
    if (filter.cursor !== undefined) {
      where.push("position < ?"), params.push(decodeCursor(filter.cursor));
    }
    const rows = this.#db.prepare(
      `SELECT position, data FROM builds ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ` +
        "ORDER BY position DESC LIMIT ?",
    ).all(...params, filter.limit + 1) as Row[];
    const page = rows.slice(0, filter.limit);
    return Promise.resolve({
      records: page.map((r) => JSON.parse(String(r.data))),
      next: rows.length > filter.limit ? encodeCursor(Number(page.at(-1)!.position)) : null,
    });
  }

  runningBuilds(): Promise<BuildRecord[]> {
    const rows = this.#db.prepare(
      "SELECT data FROM builds WHERE status = 'running' ORDER BY position",
    ).all() as Row[];
    return Promise.resolve(rows.map((r) => JSON.parse(String(r.data))));
  }

  buildOfJob(jobId: string): Promise<string | undefined> {
    const row = this.#db.prepare("SELECT build_id FROM build_jobs WHERE job_id = ?").get(jobId) as
      | Row
      | undefined;
    return Promise.resolve(row ? String(row.build_id) : undefined);
  }

  recordTimings(repo: string, timings: ShardTimings, now: number): Promise<void> {
    const db = this.#db;
    const upsert = db.prepare(
      "INSERT INTO test_timings (repo, file, seconds, updated_at) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (repo, file) DO UPDATE SET seconds = excluded.seconds, " +
        "updated_at = excluded.updated_at",
    );
    db.exec("BEGIN");
    try {
      for (const [file, seconds] of Object.entries(timings)) upsert.run(repo, file, seconds, now);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
    return Promise.resolve();
  }

  prune(): Promise<number> {
    const db = this.#db;
    db.exec("BEGIN IMMEDIATE");
    try {
      // Each subquery is read once (no per-build scan): the jobs' ids are their primary key.
      const gone = db.prepare(
        "DELETE FROM builds WHERE status = 'done' AND id NOT IN " +
          "(SELECT b.build_id FROM build_jobs b JOIN jobs j ON j.id = b.job_id)",
      ).run().changes;
      if (gone) {
        db.exec("DELETE FROM build_jobs WHERE build_id NOT IN (SELECT id FROM builds)");
        db.exec(
          `DELETE FROM commit_statuses WHERE job_id LIKE '${BUILD_KEY}%' ` +
            `AND substr(job_id, ${BUILD_KEY.length + 1}) NOT IN (SELECT id FROM builds)`,
        );
        db.exec("DELETE FROM test_timings WHERE repo NOT IN (SELECT repo FROM builds)");
      }
      db.exec("COMMIT");
      return Promise.resolve(Number(gone));
    } catch (error) {
      db.exec("ROLLBACK");
      return Promise.reject(error);
    }
  }

  timings(repo: string, limit: number): Promise<ShardTimings> {
    const rows = this.#db.prepare(
      "SELECT file, seconds FROM test_timings WHERE repo = ? ORDER BY updated_at DESC LIMIT ?",
    ).all(repo, limit) as Row[];
    return Promise.resolve(
      Object.fromEntries(rows.map((r) => [String(r.file), Number(r.seconds)])),
    );
  }
}
