import type { Project } from "../../protocol/mod.ts";
import { repoKey } from "./repo_key.ts";
import { DELIVERY_MEMORY_MS, ProjectExistsError } from "./store.ts";
import type { ProjectStore, StoredProject } from "./store.ts";

/** Projects in memory: for unit tests and for a queen started without a database. */
export class MemoryProjectStore implements ProjectStore {
  /** By lower-cased name: names compare without case, as on the forges. */
  #projects = new Map<string, StoredProject>();
  #deliveries = new Map<string, { jobId: string; at: number }>();

  create(project: Project, now: number): StoredProject {
    const key = project.name.toLowerCase();
    if (this.#projects.has(key)) throw new ProjectExistsError(project.name);
    const stored = { project: structuredClone(project), createdAt: now, updatedAt: now };
    this.#projects.set(key, stored);
    return structuredClone(stored);
  }

  get(name: string): StoredProject | undefined {
    const found = this.#projects.get(name.toLowerCase());
    return found && structuredClone(found);
  }

  list(): StoredProject[] {
    return [...this.#projects.entries()]
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .map(([, stored]) => structuredClone(stored));
  }

  update(project: Project, now: number): StoredProject | undefined {
    const key = project.name.toLowerCase();
    const existing = this.#projects.get(key);
    if (!existing) return undefined;
    const stored = {
      project: { ...structuredClone(project), name: existing.project.name },
      createdAt: existing.createdAt,
      updatedAt: now,
    };
    this.#projects.set(key, stored);
    return structuredClone(stored);
  }

  delete(name: string): boolean {
    return this.#projects.delete(name.toLowerCase());
  }

  findByRepo(names: readonly string[]): StoredProject | undefined {
    for (const name of names) {
      const found = this.get(name);
      if (found) return found;
    }
    const all = this.list();
    for (const name of names) {
      const found = all.find((stored) => repoKey(stored.project.repo.url) === repoKey(name));
      if (found) return found;
    }
    return undefined;
  }

  deliveryJob(
    forge: string,
    deliveryId: string,
    since = Date.now() - DELIVERY_MEMORY_MS,
  ): string | undefined {
    const found = this.#deliveries.get(`${forge}\u0000${deliveryId}`);
    return found && found.at > since ? found.jobId : undefined;
  }

  recordDelivery(forge: string, deliveryId: string, jobId: string, now: number): void {
    for (const [key, delivery] of this.#deliveries) {
      if (delivery.at <= now - DELIVERY_MEMORY_MS) this.#deliveries.delete(key);
    }
    this.#deliveries.set(`${forge}\u0000${deliveryId}`, { jobId, at: now });
  }
}
