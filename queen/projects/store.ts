/**
 * Where the queen keeps projects (their repository, branch settings and secrets) and the webhook
 * deliveries it has turned into jobs. One interface; the queen's own SQLite file holds them, and
 * an in-memory one serves unit tests.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Project } from "../../protocol/mod.ts";
import type { SecretBox } from "../secret_box.ts";
import { openText, projectContext } from "../sealing.ts";
import { repoKey } from "./repo_key.ts";

/** A project as stored, with when it was created and last changed (ms since the epoch). */
export interface StoredProject {
  project: Project;
  createdAt: number;
  updatedAt: number;
}

/** A project of that name exists already (names compare without case, as forges do). */
export class ProjectExistsError extends Error {
  constructor(name: string) {
    super(`A project named '${name}' already exists`);
    this.name = "ProjectExistsError";
  }
}

/** How long a delivery id is remembered for dropping a forge's repeated deliveries. */
export const DELIVERY_MEMORY_MS = 30 * 24 * 3600 * 1000;

/** A value now (SQLite, memory) or later (PostgreSQL): callers await either. */
export type Awaitable<T> = T | Promise<T>;

/** The queen's projects and webhook deliveries. */
export interface ProjectStore {
  /** Adds a project; throws `ProjectExistsError` when the name is taken. */
  create(project: Project, now: number): Awaitable<StoredProject>;
  get(name: string): Awaitable<StoredProject | undefined>;
  /** Every project, by name. */
  list(): Awaitable<StoredProject[]>;
  /** Replaces a project's settings (its name stays); false when there is no such project. */
  update(project: Project, now: number): Awaitable<StoredProject | undefined>;
  delete(name: string): Awaitable<boolean>;
  /**
   * The project a webhook is about: the first whose name equals one of `names`, else the first
   * whose repository URL is the same repository as one of them (see `repoKey`).
   */
  findByRepo(names: readonly string[]): Awaitable<StoredProject | undefined>;
  /**
   * The job an earlier delivery with this key (a delivery id, or `sha256:<body digest>`) made
   * after `since` (default: within `DELIVERY_MEMORY_MS`), if any.
   */
  deliveryJob(forge: string, deliveryId: string, since?: number): Awaitable<string | undefined>;
  /** Remembers that a delivery made a job; forgets deliveries older than `DELIVERY_MEMORY_MS`. */
  recordDelivery(forge: string, deliveryId: string, jobId: string, now: number): Awaitable<void>;
}

type Row = Record<string, string | number | null>;

/**
 * Projects in the queen's SQLite database (tables from migration 2 of `sqlite_schema.ts`). A
 * project's settings, secrets included, are stored sealed with the queen's secret key.
 */
export class SqliteProjectStore implements ProjectStore {
  readonly #db: DatabaseSync;
  readonly #box: SecretBox;
  readonly #sql: Record<string, StatementSync>;

  /** `box` is the job store's (`SqliteStore.secretBox`), which sealed what is already there. */
  constructor(db: DatabaseSync, box: SecretBox) {
    this.#db = db;
    this.#box = box;
    const prepare = (sql: string) => db.prepare(sql);
    this.#sql = {
      insert: prepare(
        "INSERT INTO projects (name, repo_key, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
      ),
      update: prepare(
        "UPDATE projects SET repo_key = ?, data = ?, updated_at = ? WHERE name = ?",
      ),
      get: prepare("SELECT * FROM projects WHERE name = ?"),
      list: prepare("SELECT * FROM projects ORDER BY name"),
      byKey: prepare("SELECT * FROM projects WHERE repo_key = ? ORDER BY name LIMIT 1"),
      delete: prepare("DELETE FROM projects WHERE name = ?"),
      delivery: prepare(
        "SELECT job_id FROM webhook_deliveries WHERE forge = ? AND delivery_id = ? AND received_at > ?",
      ),
      record: prepare(
        "INSERT OR REPLACE INTO webhook_deliveries (forge, delivery_id, job_id, received_at) " +
          "VALUES (?, ?, ?, ?)",
      ),
      forget: prepare("DELETE FROM webhook_deliveries WHERE received_at <= ?"),
    };
  }

  create(project: Project, now: number): StoredProject {
    try {
      this.#sql.insert.run(
        project.name,
        repoKey(project.repo.url),
        this.#seal(project),
        now,
        now,
      );
    } catch (error) {
      if (String(error).includes("UNIQUE")) throw new ProjectExistsError(project.name);
      throw error;
    }
    return { project, createdAt: now, updatedAt: now };
  }

  get(name: string): StoredProject | undefined {
    const row = this.#sql.get.get(name) as Row | undefined;
    return row ? this.#fromRow(row) : undefined;
  }

  list(): StoredProject[] {
    return (this.#sql.list.all() as Row[]).map((row) => this.#fromRow(row));
  }

  update(project: Project, now: number): StoredProject | undefined {
    const existing = this.get(project.name);
    if (!existing) return undefined;
    // The stored name keeps its spelling: `name` matched it without case.
    const kept = { ...project, name: existing.project.name };
    this.#sql.update.run(repoKey(kept.repo.url), this.#seal(kept), now, kept.name);
    return { project: kept, createdAt: existing.createdAt, updatedAt: now };
  }

  delete(name: string): boolean {
    return Number(this.#sql.delete.run(name).changes) > 0;
  }

  findByRepo(names: readonly string[]): StoredProject | undefined {
    for (const name of names) {
      const found = this.get(name);
      if (found) return found;
    }
    for (const name of names) {
      const row = this.#sql.byKey.get(repoKey(name)) as Row | undefined;
      if (row) return this.#fromRow(row);
    }
    return undefined;
  }

  deliveryJob(
    forge: string,
    deliveryId: string,
    since = Date.now() - DELIVERY_MEMORY_MS,
  ): string | undefined {
    const row = this.#sql.delivery.get(forge, deliveryId, since) as Row | undefined;
    return row ? String(row.job_id) : undefined;
  }

  recordDelivery(forge: string, deliveryId: string, jobId: string, now: number): void {
    this.#db.exec("SAVEPOINT delivery");
    try {
      this.#sql.forget.run(now - DELIVERY_MEMORY_MS);
      this.#sql.record.run(forge, deliveryId, jobId, now);
      this.#db.exec("RELEASE delivery");
    } catch (error) {
      this.#db.exec("ROLLBACK TO delivery");
      this.#db.exec("RELEASE delivery");
      throw error;
    }
  }

  /** The row is named as stored: `name` compares without case, the sealed value does not. */
  #seal(project: Project): string {
    return this.#box.seal(JSON.stringify(project), projectContext(project.name));
  }

  #fromRow(row: Row): StoredProject {
    const context = projectContext(String(row.name));
    return {
      project: JSON.parse(openText(this.#box, String(row.data), context)) as Project,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }
}
