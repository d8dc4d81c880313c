/**
 * Builds on PostgreSQL (migration 2 of `schema.ts`): the same rows as the SQLite build store, so
 * that any queen of the database tracks any build.
 * @module
 */
import type { Sql } from "postgres";
import type { ShardTimings } from "../../protocol/mod.ts";
import type { BuildFilter, BuildPage, BuildRecord, BuildStore } from "../builds/store.ts";
import { decodeCursor, encodeCursor } from "../store.ts";
import { BUILD_KEY } from "../forge_status/reporter.ts";

/** PostgreSQL's code for a unique constraint broken by an insert. */
const UNIQUE_VIOLATION = "23505";

export class PostgresBuildStore implements BuildStore {
  readonly #sql: Sql;
  /** The queen using the store, with several on one database: it follows its own builds. */
  readonly #queen: string | null;

  constructor(sql: Sql, queen?: string) {
    this.#sql = sql;
    this.#queen = queen ?? null;
  }

  async createBuild(record: BuildRecord): Promise<void> {
    try {
      await this.#sql.begin(async (tx) => {
        await tx`INSERT INTO builds (id, created_at, status, repo, data, owner) VALUES (
          ${record.id}, ${record.createdAt}, ${record.status}, ${record.repo},
          ${JSON.stringify(record)}, ${this.#queen})`;
        await indexJobs(tx as unknown as Sql, record);
      });
    } catch (error) {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new RangeError(`build id '${record.id}' is taken`);
      }
      throw error;
    }
  }

  async saveBuild(record: BuildRecord): Promise<void> {
    await this.#sql.begin(async (tx) => {
      // Only its owner writes a build (a queen that stalled while another adopted it does not).
      await tx`UPDATE builds SET status = ${record.status}, data = ${JSON.stringify(record)}
        WHERE id = ${record.id} AND owner IS NOT DISTINCT FROM ${this.#queen}`;
      // Jobs a build gained later (strider.json's matrix) are indexed too; earlier ones stay.
      await indexJobs(tx as unknown as Sql, record);
    });
  }

  async getBuild(id: string): Promise<BuildRecord | undefined> {
    const [row] = await this.#sql`SELECT data FROM builds WHERE id = ${id}`;
    return row ? JSON.parse(String(row.data)) : undefined;
  }

  async listBuilds(filter: BuildFilter): Promise<BuildPage> {
    const sql = this.#sql;
    const conditions = [
      filter.repo !== undefined ? sql`repo = ${filter.repo}` : undefined,
      filter.status !== undefined ? sql`status = ${filter.status}` : undefined,
      filter.cursor !== undefined ? sql`position < ${decodeCursor(filter.cursor)}` : undefined,
    ].filter((c) => c !== undefined);
    const where = conditions.length
      ? sql`WHERE ${conditions.reduce((all, c) => sql`${all} AND ${c}`)}`
      : sql``;
    const rows = await sql`SELECT position, data FROM builds ${where}
      ORDER BY position DESC LIMIT ${filter.limit + 1}`;
    const page = rows.slice(0, filter.limit);
    return {
      records: page.map((r) => JSON.parse(String(r.data))),
      next: rows.length > filter.limit ? encodeCursor(Number(page.at(-1)!.position)) : null,
    };
  }

  async runningBuilds(): Promise<BuildRecord[]> {
    const rows = this.#queen
      ? await this.#sql`SELECT data FROM builds WHERE status = 'running'
        AND owner = ${this.#queen} ORDER BY position`
      : await this.#sql`SELECT data FROM builds WHERE status = 'running' ORDER BY position`;
    return rows.map((r) => JSON.parse(String(r.data)));
  }

  async buildOfJob(jobId: string): Promise<string | undefined> {
    const [row] = await this.#sql`SELECT build_id FROM build_jobs WHERE job_id = ${jobId}`;
    return row ? String(row.build_id) : undefined;
  }

  async recordTimings(repo: string, timings: ShardTimings, now: number): Promise<void> {
    const files = Object.keys(timings);
    if (!files.length) return;
    await this.#sql`INSERT INTO test_timings (repo, file, seconds, updated_at)
      SELECT ${repo}, file, seconds, ${now}
      FROM unnest(${files}::text[], ${files.map((f) => timings[f])}::float8[]) AS t(file, seconds)
      ON CONFLICT (repo, file) DO UPDATE SET seconds = excluded.seconds,
        updated_at = excluded.updated_at`;
  }

  async prune(): Promise<number> {
    return await this.#sql.begin(async (tx) => {
      // Each subquery is read once (no per-build scan): the jobs' ids are their primary key.
      const gone = await tx`DELETE FROM builds WHERE status = 'done' AND id NOT IN
        (SELECT b.build_id FROM build_jobs b JOIN jobs j ON j.id = b.job_id) RETURNING id`;
      if (gone.length) {
        await tx`DELETE FROM build_jobs WHERE build_id NOT IN (SELECT id FROM builds)`;
        await tx`DELETE FROM commit_statuses WHERE job_id LIKE ${BUILD_KEY + "%"}
          AND substr(job_id, ${BUILD_KEY.length + 1}) NOT IN (SELECT id FROM builds)`;
        await tx`DELETE FROM test_timings WHERE repo NOT IN (SELECT repo FROM builds)`;
      }
      return gone.length;
    });
  }

  async timings(repo: string, limit: number): Promise<ShardTimings> {
    const rows = await this.#sql`SELECT file, seconds FROM test_timings WHERE repo = ${repo}
      ORDER BY updated_at DESC LIMIT ${limit}`;
    return Object.fromEntries(rows.map((r) => [String(r.file), Number(r.seconds)]));
  }
}

async function indexJobs(sql: Sql, record: BuildRecord): Promise<void> {
  const ids = record.jobs.map((job) => job.id);
  if (!ids.length) return;
  await sql`INSERT INTO build_jobs (job_id, build_id)
    SELECT job_id, ${record.id} FROM unnest(${ids}::text[]) AS t(job_id)
    ON CONFLICT (job_id) DO NOTHING`;
}
