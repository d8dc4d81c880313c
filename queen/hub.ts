import type { RecordedEvent } from "../protocol/mod.ts";

type Listener = (event: RecordedEvent) => void;

/**
 * Followers one job may have (browser sockets and SSE streams together): a popular job's page
 * costs a listener each, and past this many a flood of viewers could starve the queen.
 */
export const MAX_FOLLOWERS_PER_JOB = 1_000;

/**
 * Where events of jobs this queen does not record come from (other queens' commits, read from
 * the shared database: `remote_feed.ts`). The hub tells it which jobs are followed here.
 */
export interface HubSource {
  /**
   * A job got its first follower: from when the returned promise settles, every event committed
   * after that moment is published (the follower reads what came before from the store).
   */
  followed(id: string): Promise<void>;
  /** A job's last follower left. */
  unfollowed(id: string): void;
}

/** Where a published event came from: this queen's recorder, or another queen's commit. */
export type Origin = "local" | "remote";

/**
 * Fans recorded events out to whoever follows them: SSE streams and browser sockets per job,
 * and the dashboard for all jobs. A listener that throws is dropped rather than stalling others.
 *
 * Both paths publish here: this queen's recorder (`local`) and the cluster bus (`remote`,
 * events another queen committed). Per followed job the hub keeps the highest event number it
 * published, and drops any event at or below it: whichever path delivers an event first, a
 * follower gets it once, and in order as long as each path delivers in order.
 */
export class Hub {
  #byJob = new Map<string, Set<Listener>>();
  #all = new Set<Listener>();
  #changed = new Set<(id: string) => void>();
  /** Highest event number published per followed job. */
  #published = new Map<string, number>();
  #source: HubSource | undefined;
  /** Per followed job: settles once the source follows it too. */
  #ready = new Map<string, Promise<void>>();

  /** Takes events of jobs recorded elsewhere from `source` (one per hub). */
  attach(source: HubSource): void {
    this.#source = source;
  }

  /** Follows one job's events; returns the function that stops following. */
  follow(id: string, listener: Listener): () => void {
    let set = this.#byJob.get(id);
    if (!set) {
      this.#byJob.set(id, set = new Set());
      const source = this.#source;
      if (source) this.#ready.set(id, source.followed(id).catch(() => {}));
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#byJob.get(id) === set) {
        this.#byJob.delete(id);
        this.#published.delete(id);
        this.#ready.delete(id);
        this.#source?.unfollowed(id);
      }
    };
  }

  /**
   * Settles once events of `id` committed from now on reach its followers, from whichever queen
   * records them: a follower follows first, waits for this, then reads what came before from
   * the store; nothing falls between the two.
   */
  ready(id: string): Promise<void> {
    return this.#ready.get(id) ?? Promise.resolve();
  }

  /** Follows every job's events recorded by this queen. */
  followAll(listener: Listener): () => void {
    this.#all.add(listener);
    return () => this.#all.delete(listener);
  }

  /** Calls `listener` with a job's id whenever its view may have changed, on any queen. */
  onChange(listener: (id: string) => void): () => void {
    this.#changed.add(listener);
    return () => this.#changed.delete(listener);
  }

  /**
   * Publishes an event to the job's followers (and, recorded here, to those of every job).
   * Returns false for an event at or below the last one published for the followed job.
   */
  publish(id: string, event: RecordedEvent, origin: Origin = "local"): boolean {
    const followed = this.#byJob.get(id);
    if (followed) {
      if (event.n <= (this.#published.get(id) ?? 0)) return false;
      this.#published.set(id, event.n);
    }
    // Jobs recorded elsewhere are that queen's to count and act on (metrics, builds, statuses).
    for (const set of origin === "local" ? [followed, this.#all] : [followed]) {
      if (!set) continue;
      for (const listener of [...set]) {
        try {
          listener(event);
        } catch {
          set.delete(listener);
        }
      }
    }
    this.changed(id);
    return true;
  }

  /** Tells `onChange` listeners that the job's view may have changed. */
  changed(id: string): void {
    for (const listener of this.#changed) {
      try {
        listener(id);
      } catch {
        this.#changed.delete(listener);
      }
    }
  }

  /** The highest event number published for a followed job (undefined: not followed here). */
  published(id: string): number | undefined {
    return this.#byJob.has(id) ? this.#published.get(id) ?? 0 : undefined;
  }

  /**
   * Moves a followed job's published position up to `n` without publishing: the source starts
   * after what is committed, and this queen's recorder after the event it recorded last.
   */
  skipTo(id: string, n: number): void {
    if (!this.#byJob.has(id)) return;
    if (n > (this.#published.get(id) ?? 0)) this.#published.set(id, n);
  }

  /** Jobs followed here. */
  followedJobs(): string[] {
    return [...this.#byJob.keys()];
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
