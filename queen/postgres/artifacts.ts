/**
 * Artifacts in PostgreSQL, the counterpart of `artifacts/store.ts` (same rows, same rules): any
 * queen of the cluster serves any job's files. Content in 1 MiB chunks, read one at a time.
 */
import type { Sql } from "postgres";
import type { Artifact } from "../../protocol/mod.ts";
import { readUpload } from "../artifacts/upload.ts";
import type { Artifacts, OpenedArtifact } from "../artifacts/store.ts";

/** An incomplete upload this old was cut short (a send takes at most 15 minutes). */
const STALE_UPLOAD_MS = 60 * 60_000;

type Row = Record<string, unknown>;

const artifactOf = (row: Row): Artifact => ({
  path: String(row.path),
  size: Number(row.size),
  sha256: String(row.sha256),
  attempt: Number(row.attempt),
});

export class PostgresArtifactStore implements Artifacts {
  readonly #sql: Sql;

  /** Opens the store and drops uploads that a crash cut short long ago (of any queen). */
  static async open(sql: Sql): Promise<PostgresArtifactStore> {
    await sql`DELETE FROM artifacts WHERE complete = 0
      AND created_at < ${Date.now() - STALE_UPLOAD_MS}`;
    return new PostgresArtifactStore(sql);
  }

  private constructor(sql: Sql) {
    this.#sql = sql;
  }

  async list(jobId: string): Promise<Artifact[]> {
    const rows = await this.#sql`SELECT path, size, sha256, attempt FROM artifacts
      WHERE job_id = ${jobId} AND complete = 1 ORDER BY path COLLATE "C"`;
    return rows.map(artifactOf);
  }

  async open(jobId: string, path: string): Promise<OpenedArtifact | undefined> {
    const [row] = await this.#sql`SELECT id, path, size, sha256, attempt FROM artifacts
      WHERE job_id = ${jobId} AND path = ${path} AND complete = 1 ORDER BY id DESC LIMIT 1`;
    if (!row) return undefined;
    const id = Number(row.id);
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const [next] = await this.#sql`SELECT data FROM artifact_chunks
          WHERE artifact_id = ${id} AND n = ${n++}`;
        if (next) controller.enqueue(new Uint8Array(next.data as Uint8Array));
        else controller.close();
      },
    });
    return { artifact: artifactOf(row), body };
  }

  async put(
    upload: { jobId: string; attempt: number; path: string; sha256: string },
    body: ReadableStream<Uint8Array>,
    maxBytes: number,
  ): Promise<Artifact> {
    const { jobId, attempt, path } = upload;
    const [{ id }] = await this.#sql`INSERT INTO artifacts
      (job_id, path, attempt, size, sha256, complete, created_at)
      VALUES (${jobId}, ${path}, ${attempt}, 0, '', 0, ${Date.now()}) RETURNING id`;
    try {
      const { size, sha256: digest } = await readUpload(
        body,
        { path, sha256: upload.sha256, maxBytes },
        async (n, data) => {
          await this.#sql`INSERT INTO artifact_chunks (artifact_id, n, data)
            VALUES (${id}, ${n}, ${data})`;
        },
      );
      // One transaction: readers see the old file or the new one, never neither.
      await this.#sql.begin(async (tx) => {
        await tx`DELETE FROM artifacts WHERE job_id = ${jobId} AND complete = 1
          AND (path = ${path} OR attempt < ${attempt})`;
        await tx`UPDATE artifacts SET size = ${size}, sha256 = ${digest}, complete = 1
          WHERE id = ${id}`;
      });
      return { path, size, sha256: digest, attempt };
    } catch (error) {
      await this.#sql`DELETE FROM artifacts WHERE id = ${id}`.catch(() => {});
      throw error;
    }
  }
}
