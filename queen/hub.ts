import type { RecordedEvent } from "../protocol/mod.ts";

type Listener = (event: RecordedEvent) => void;

/**
 * Followers one job may have (browser sockets and SSE streams together): a popular job's page
 * costs a listener each, and past this many a flood of viewers could starve the queen.
 */
export const MAX_FOLLOWERS_PER_JOB = 1_000;

/**
 * Fans recorded events out to whoever follows them: SSE streams and browser sockets per job,
 * and the dashboard for all jobs. A listener that throws is dropped rather than stalling others.
 */
export class Hub {
  #byJob = new Map<string, Set<Listener>>();
  #all = new Set<Listener>();

  /** Follows one job's events; returns the function that stops following. */
  follow(id: string, listener: Listener): () => void {
    let set = this.#byJob.get(id);
    if (!set) this.#byJob.set(id, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#byJob.get(id) === set) this.#byJob.delete(id);
    };
  }

  /** Follows every job's events. */
  followAll(listener: Listener): () => void {
    this.#all.add(listener);
    return () => this.#all.delete(listener);
  }

  publish(id: string, event: RecordedEvent): void {
    for (const set of [this.#byJob.get(id), this.#all]) {
      if (!set) continue;
      for (const listener of [...set]) {
        try {
          listener(event);
        } catch {
          set.delete(listener);
        }
      }
    }
  }

  /** Number of listeners in all, per job and for all jobs. */
  size(): number {
    let count = this.#all.size;
    for (const set of this.#byJob.values()) count += set.size;
    return count;
  }

  /** Number of listeners following `id`. */
  followers(id: string): number {
    return this.#byJob.get(id)?.size ?? 0;
  }
}
