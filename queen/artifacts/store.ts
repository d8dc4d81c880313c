/**
 * Artifacts in the queen's database: one row per file (path, size, SHA-256, attempt) and its
 * content in 1 MiB chunks. An upload is written as an incomplete row, then made complete in one
 * statement once its digest checked out, replacing an earlier file of the same path; readers
 * only ever see complete rows. Any queen on the same database serves them.
 */
import { DatabaseSync } from "node:sqlite";
import type { Artifact } from "../../protocol/mod.ts";
import { migrate } from "../sqlite_schema.ts";
import { readUpload } from "./upload.ts";

/** An incomplete upload this old was cut short (a send takes at most 15 minutes). */
const STALE_UPLOAD_MS = 60 * 60_000;

/** Bytes per stored chunk. */
export const CHUNK_BYTES = 1024 * 1024;

/** An upload that cannot be kept; `status` is the HTTP status that says so. */
export class ArtifactRefusedError extends Error {
  constructor(readonly status: 400 | 413, message: string) {
    super(message);
    this.name = "ArtifactRefusedError";
  }
}

type Row = Record<string, string | number | null | Uint8Array>;

/** A value now (SQLite) or later (PostgreSQL): callers await either. */
type Awaitable<T> = T | Promise<T>;

/** One artifact and a stream of its content. */
export interface OpenedArtifact {
  artifact: Artifact;
  body: ReadableStream<Uint8Array>;
}

/** Where artifacts are kept: the SQLite file (`ArtifactStore`) or PostgreSQL. */
export interface Artifacts {
  /** The job's complete artifacts, by path. */
  list(jobId: string): Awaitable<Artifact[]>;
  /** One artifact with a stream of its content, or `undefined`. */
  open(jobId: string, path: string): Awaitable<OpenedArtifact | undefined>;
  /** See `ArtifactStore.put`. */
  put(
    upload: { jobId: string; attempt: number; path: string; sha256: string },
    body: ReadableStream<Uint8Array>,
    maxBytes: number,
  ): Promise<Artifact>;
}

export class ArtifactStore implements Artifacts {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    // Uploads cut short by a crash are never complete: drop them. Only old ones: another queen
    // on the same database may be receiving one right now.
    this.#deleteWhere("complete = 0 AND created_at < ?", Date.now() - STALE_UPLOAD_MS);
  }

  /** The job's artifacts, by path. */
  list(jobId: string): Artifact[] {
    const rows = this.#db.prepare(
      "SELECT path, size, sha256, attempt FROM artifacts WHERE job_id = ? AND complete = 1 " +
        "ORDER BY path",
    ).all(jobId) as Row[];
    return rows.map((r) => ({
      path: String(r.path),
      size: Number(r.size),
      sha256: String(r.sha256),
      attempt: Number(r.attempt),
    }));
  }

  /** Bytes of the job's complete artifacts. */
  totalBytes(jobId: string): number {
    const row = this.#db.prepare(
      "SELECT COALESCE(SUM(size), 0) AS total FROM artifacts WHERE job_id = ? AND complete = 1",
    ).get(jobId) as Row;
    return Number(row.total);
  }

  /** One artifact with a stream of its content, or `undefined`. */
  open(
    jobId: string,
    path: string,
  ): { artifact: Artifact; body: ReadableStream<Uint8Array> } | undefined {
    const row = this.#db.prepare(
      "SELECT id, path, size, sha256, attempt FROM artifacts " +
        "WHERE job_id = ? AND path = ? AND complete = 1 ORDER BY id DESC LIMIT 1",
    ).get(jobId, path) as Row | undefined;
    if (!row) return undefined;
    const id = Number(row.id);
    const chunk = this.#db.prepare(
      "SELECT data FROM artifact_chunks WHERE artifact_id = ? AND n = ?",
    );
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        const next = chunk.get(id, n++) as Row | undefined;
        if (next) controller.enqueue(new Uint8Array(next.data as Uint8Array));
        else controller.close();
      },
    });
    return {
      artifact: {
        path: String(row.path),
        size: Number(row.size),
        sha256: String(row.sha256),
        attempt: Number(row.attempt),
      },
      body,
    };
  }

  /**
   * Stores `body` as the job's artifact `path` from `attempt`, checking its SHA-256 against
   * `sha256` and stopping at `maxBytes`. The first file of a newer attempt drops the older
   * attempts' files: a job's artifacts are those of one attempt.
   */
  async put(
    upload: { jobId: string; attempt: number; path: string; sha256: string },
    body: ReadableStream<Uint8Array>,
    maxBytes: number,
  ): Promise<Artifact> {
    const { jobId, attempt, path } = upload;
    const insert = this.#db.prepare(
      "INSERT INTO artifacts (job_id, path, attempt, size, sha256, complete, created_at) " +
        "VALUES (?, ?, ?, 0, '', 0, ?)",
    ).run(jobId, path, attempt, Date.now());
    const id = Number(insert.lastInsertRowid);
    const addChunk = this.#db.prepare(
      "INSERT INTO artifact_chunks (artifact_id, n, data) VALUES (?, ?, ?)",
    );
    try {
      const { size, sha256: digest } = await readUpload(
        body,
        { path, sha256: upload.sha256, maxBytes },
        (n, data) => void addChunk.run(id, n, data),
      );
      this.#db.exec("SAVEPOINT artifact");
      try {
        this.#deleteWhere(
          "job_id = ? AND complete = 1 AND (path = ? OR attempt < ?)",
          jobId,
          path,
          attempt,
        );
        this.#db.prepare(
          "UPDATE artifacts SET size = ?, sha256 = ?, complete = 1 WHERE id = ?",
        ).run(size, digest, id);
        this.#db.exec("RELEASE artifact");
      } catch (error) {
        this.#db.exec("ROLLBACK TO artifact");
        this.#db.exec("RELEASE artifact");
        throw error;
      }
      return { path, size, sha256: digest, attempt };
    } catch (error) {
      this.#deleteWhere("id = ?", id);
      throw error;
    }
  }

  #deleteWhere(where: string, ...params: (string | number)[]): void {
    this.#db.prepare(
      `DELETE FROM artifact_chunks WHERE artifact_id IN (SELECT id FROM artifacts WHERE ${where})`,
    ).run(...params);
    this.#db.prepare(`DELETE FROM artifacts WHERE ${where}`).run(...params);
  }
}

/** An artifact store in a private in-memory database, for queens without `--data` (tests). */
export function memoryArtifactStore(): ArtifactStore {
  const db = new DatabaseSync(":memory:");
  migrate(db);
  return new ArtifactStore(db);
}
