/**
 * A job's caches: keys rendered against the checkout once it is fetched, restored before
 * `prepare`, saved after a passing `test`. Jobs of a fetch refspec (pull requests, possibly
 * from forks) restore but never save, so they cannot plant files in a branch's cache.
 */
import type { CacheSpec } from "../protocol/mod.ts";
import { renderCacheKey } from "./cache_key.ts";
import type { CacheLayout, CacheStore } from "./cache_store.ts";

/** One restore or save, as shown in the log: its command line and what it does. */
export interface CacheStep {
  screen: string;
  /** Runs the step; resolves with the line shown as its output. Never throws. */
  run(): Promise<string>;
}

interface Rendered {
  key: string;
  paths: string[];
}

export class JobCaches {
  readonly #store: CacheStore | undefined;
  readonly #caches: Rendered[];
  readonly #repo: string;
  readonly #saves: boolean;
  readonly #layout: CacheLayout;

  private constructor(
    store: CacheStore | undefined,
    caches: Rendered[],
    where: { repo: string; saves: boolean; layout: CacheLayout },
  ) {
    this.#store = store;
    this.#caches = caches;
    this.#repo = where.repo;
    this.#saves = where.saves;
    this.#layout = where.layout;
  }

  /** Renders every key (the first of equal keys wins); a bad key template is the job's error. */
  static async prepare(
    store: CacheStore | undefined,
    specs: CacheSpec[],
    where: { repo: string; saves: boolean; layout: CacheLayout },
  ): Promise<{ ok: true; value: JobCaches } | { ok: false; error: string }> {
    const caches: Rendered[] = [];
    for (const spec of specs) {
      const rendered = await renderCacheKey(spec.key, where.layout.src);
      if (!rendered.ok) return { ok: false, error: rendered.error };
      if (caches.some((c) => c.key === rendered.key)) continue;
      caches.push({ key: rendered.key, paths: spec.paths });
    }
    return { ok: true, value: new JobCaches(store, store ? caches : [], where) };
  }

  restoreSteps(): CacheStep[] {
    return this.#caches.map(({ key, paths }) => ({
      screen: `cache restore ${key}`,
      run: () =>
        this.#guard(async () =>
          (await this.#store!.restore(this.#repo, key, paths, this.#layout)).note
        ),
    }));
  }

  saveSteps(): CacheStep[] {
    return this.#caches.map(({ key, paths }) => ({
      screen: `cache save ${key}`,
      run: () =>
        this.#guard(async () =>
          this.#saves
            ? (await this.#store!.save(this.#repo, key, paths, this.#layout)).note
            : `cache ${key} not saved: jobs of a fetch refspec (pull requests) only restore caches`
        ),
    }));
  }

  async #guard(body: () => Promise<string>): Promise<string> {
    try {
      return await body();
    } catch (error) {
      return `cache step failed (the job goes on without it): ${(error as Error).message}`;
    }
  }
}
