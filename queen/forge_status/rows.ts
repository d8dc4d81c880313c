/**
 * The `commit_statuses` rows the reporter keeps (what is wanted, what the forge accepted), in
 * the queen's SQLite file or in PostgreSQL, so that any queen taking over carries on reporting.
 */
import type { DatabaseSync } from "node:sqlite";
import type { Sql } from "postgres";

/** One job's reporting state. */
export interface StatusRow {
  job_id: string;
  forge: string;
  project: string;
  sha: string;
  wanted: string;
  sent: string | null;
  sent_at: number | null;
  tries: number;
  error: string | null;
}

type Awaitable<T> = T | Promise<T>;

export interface StatusRows {
  /** Jobs with something left to send, or whose result may have come while no queen ran. */
  unsettled(): Awaitable<string[]>;
  /** Starts reporting a job with `pending` wanted (once: a second call changes nothing). */
  insert(job: string, forge: string, project: string, sha: string, now: number): Awaitable<void>;
  get(job: string): Awaitable<StatusRow | undefined>;
  /** Wants `state`; a new state gets the full round of retries. */
  want(job: string, state: string): Awaitable<void>;
  note(job: string, tries: number, error: string | null): Awaitable<void>;
  sent(job: string, state: string, at: number): Awaitable<void>;
}

const UNSETTLED = "SELECT job_id FROM commit_statuses " +
  "WHERE sent IS NULL OR sent != wanted OR wanted = 'pending'";

function fromRow(row: Record<string, unknown>): StatusRow {
  const text = (v: unknown) => (v === null || v === undefined ? null : String(v));
  return {
    job_id: String(row.job_id),
    forge: String(row.forge),
    project: String(row.project),
    sha: String(row.sha),
    wanted: String(row.wanted),
    sent: text(row.sent),
    sent_at: row.sent_at === null || row.sent_at === undefined ? null : Number(row.sent_at),
    tries: Number(row.tries),
    error: text(row.error),
  };
}

export class SqliteStatusRows implements StatusRows {
  constructor(private readonly db: DatabaseSync) {}

  unsettled(): string[] {
    return (this.db.prepare(UNSETTLED).all() as Record<string, unknown>[]).map((r) =>
      String(r.job_id)
    );
  }

  insert(job: string, forge: string, project: string, sha: string, now: number): void {
    this.db.prepare(
      "INSERT OR IGNORE INTO commit_statuses " +
        "(job_id, forge, project, sha, wanted, sent, sent_at, tries, error, created_at) " +
        "VALUES (?, ?, ?, ?, 'pending', NULL, NULL, 0, NULL, ?)",
    ).run(job, forge, project, sha, now);
  }

  get(job: string): StatusRow | undefined {
    const row = this.db.prepare("SELECT * FROM commit_statuses WHERE job_id = ?").get(job);
    return row ? fromRow(row as Record<string, unknown>) : undefined;
  }

  want(job: string, state: string): void {
    this.db.prepare(
      "UPDATE commit_statuses SET tries = CASE WHEN wanted = ? THEN tries ELSE 0 END, " +
        "wanted = ? WHERE job_id = ?",
    ).run(state, state, job);
  }

  note(job: string, tries: number, error: string | null): void {
    this.db.prepare("UPDATE commit_statuses SET tries = ?, error = ? WHERE job_id = ?")
      .run(tries, error, job);
  }

  sent(job: string, state: string, at: number): void {
    this.db.prepare(
      "UPDATE commit_statuses SET sent = ?, sent_at = ?, tries = 0, error = NULL WHERE job_id = ?",
    ).run(state, at, job);
  }
}

export class PostgresStatusRows implements StatusRows {
  constructor(private readonly sql: Sql) {}

  async unsettled(): Promise<string[]> {
    return (await this.sql.unsafe(UNSETTLED)).map((r) => String(r.job_id));
  }

  async insert(job: string, forge: string, project: string, sha: string, now: number) {
    await this.sql`INSERT INTO commit_statuses
      (job_id, forge, project, sha, wanted, sent, sent_at, tries, error, created_at)
      VALUES (${job}, ${forge}, ${project}, ${sha}, 'pending', NULL, NULL, 0, NULL, ${now})
      ON CONFLICT (job_id) DO NOTHING`;
  }

  async get(job: string): Promise<StatusRow | undefined> {
    const [row] = await this.sql`SELECT * FROM commit_statuses WHERE job_id = ${job}`;
    return row ? fromRow(row) : undefined;
  }

  async want(job: string, state: string) {
    await this.sql`UPDATE commit_statuses
      SET tries = CASE WHEN wanted = ${state} THEN tries ELSE 0 END, wanted = ${state}
      WHERE job_id = ${job}`;
  }

  async note(job: string, tries: number, error: string | null) {
    await this.sql`UPDATE commit_statuses SET tries = ${tries}, error = ${error}
      WHERE job_id = ${job}`;
  }

  async sent(job: string, state: string, at: number) {
    await this.sql`UPDATE commit_statuses SET sent = ${state}, sent_at = ${at}, tries = 0,
      error = NULL WHERE job_id = ${job}`;
  }
}
