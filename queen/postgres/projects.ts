/**
 * Projects and webhook deliveries in PostgreSQL (tables of `postgres/schema.ts`), the
 * counterpart of `SqliteProjectStore`: a project's settings, secrets included, are stored sealed
 * with the secret key every queen of the database shares.
 */
import type { Sql } from "postgres";
import type { Project } from "../../protocol/mod.ts";
import type { SecretBox } from "../secret_box.ts";
import { openText, projectContext } from "../sealing.ts";
import { repoKey } from "../projects/repo_key.ts";
import { DELIVERY_MEMORY_MS, ProjectExistsError } from "../projects/store.ts";
import type { ProjectStore, StoredProject } from "../projects/store.ts";

type Row = Record<string, unknown>;

export class PostgresProjectStore implements ProjectStore {
  readonly #sql: Sql;
  readonly #box: SecretBox;

  constructor(sql: Sql, box: SecretBox) {
    this.#sql = sql;
    this.#box = box;
  }

  async create(project: Project, now: number): Promise<StoredProject> {
    try {
      await this.#sql`INSERT INTO projects (name, repo_key, data, created_at, updated_at)
        VALUES (${project.name}, ${repoKey(project.repo.url)}, ${this.#seal(project)},
          ${now}, ${now})`;
    } catch (error) {
      if ((error as { code?: string }).code === "23505") throw new ProjectExistsError(project.name);
      throw error;
    }
    return { project, createdAt: now, updatedAt: now };
  }

  async get(name: string): Promise<StoredProject | undefined> {
    const [row] = await this.#sql`SELECT * FROM projects WHERE lower(name) = lower(${name})`;
    return row ? this.#fromRow(row) : undefined;
  }

  async list(): Promise<StoredProject[]> {
    // Byte order, as SQLite's NOCASE index sorts names that differ in more than case.
    const rows = await this.#sql`SELECT * FROM projects ORDER BY lower(name) COLLATE "C"`;
    return rows.map((row) => this.#fromRow(row));
  }

  async update(project: Project, now: number): Promise<StoredProject | undefined> {
    const existing = await this.get(project.name);
    if (!existing) return undefined;
    // The stored name keeps its spelling: `name` matched it without case.
    const kept = { ...project, name: existing.project.name };
    await this.#sql`UPDATE projects SET repo_key = ${repoKey(kept.repo.url)},
      data = ${this.#seal(kept)}, updated_at = ${now} WHERE name = ${kept.name}`;
    return { project: kept, createdAt: existing.createdAt, updatedAt: now };
  }

  async delete(name: string): Promise<boolean> {
    const rows = await this.#sql`DELETE FROM projects WHERE lower(name) = lower(${name})
      RETURNING name`;
    return rows.length > 0;
  }

  async findByRepo(names: readonly string[]): Promise<StoredProject | undefined> {
    for (const name of names) {
      const found = await this.get(name);
      if (found) return found;
    }
    for (const name of names) {
      const [row] = await this.#sql`SELECT * FROM projects WHERE repo_key = ${repoKey(name)}
        ORDER BY lower(name) COLLATE "C" LIMIT 1`;
      if (row) return this.#fromRow(row);
    }
    return undefined;
  }

  async deliveryJob(
    forge: string,
    deliveryId: string,
    since = Date.now() - DELIVERY_MEMORY_MS,
  ): Promise<string | undefined> {
    const [row] = await this.#sql`SELECT job_id FROM webhook_deliveries
      WHERE forge = ${forge} AND delivery_id = ${deliveryId} AND received_at > ${since}`;
    return row ? String(row.job_id) : undefined;
  }

  async recordDelivery(forge: string, deliveryId: string, jobId: string, now: number) {
    await this.#sql.begin(async (tx) => {
      await tx`DELETE FROM webhook_deliveries WHERE received_at <= ${now - DELIVERY_MEMORY_MS}`;
      await tx`INSERT INTO webhook_deliveries (forge, delivery_id, job_id, received_at)
        VALUES (${forge}, ${deliveryId}, ${jobId}, ${now})
        ON CONFLICT (forge, delivery_id) DO UPDATE
          SET job_id = EXCLUDED.job_id, received_at = EXCLUDED.received_at`;
    });
  }

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
