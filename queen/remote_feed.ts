/**
 * Events another queen committed, published on this queen's hub for the jobs followed here.
 *
 * Engine-free: the cluster bus (`postgres/bus.ts`) tells it what it heard (`notify`: a job and
 * the last event number committed for it), that it may have missed something (`resync`, after
 * its connection came back) and, as the safety net, asks it to look anyway (`poll`). For each
 * followed job it reads the events after the last one the hub published, a page at a time, and
 * publishes them in order. The hub's position is the only cursor, so a notification that
 * arrives late, twice, out of order or merged with others, or never, cannot make a gap or a
 * duplicate: a read always starts right after what followers already got.
 */
import type { RecordedEvent } from "../protocol/mod.ts";
import type { Hub } from "./hub.ts";

/** What the feed reads: the database every queen commits to. */
export interface FeedReader {
  /** Up to about `limit` committed events of the job after event number `after`, in order. */
  events(id: string, after: number, limit: number): Promise<RecordedEvent[]>;
  /** The last event number committed for the job (0 for none or an unknown job). */
  head(id: string): Promise<number>;
  /** The same for many jobs in one query (the poll); without it, each is read. */
  heads?(ids: string[]): Promise<Map<string, number>>;
}

/** Settings of a `RemoteFeed`. */
export interface RemoteFeedOptions {
  /**
   * The last event number of a job this queen records itself (its own recorder publishes those
   * as it records them), or undefined for a job recorded elsewhere.
   */
  local?: (id: string) => number | undefined;
  /** Events read per query (default 16): what one read may hold in memory. */
  pageEvents?: number;
  log?: (message: string) => void;
}

interface Followed {
  /** The job's committed head is known and the hub starts after it (until then, only listen). */
  started: boolean;
  /** The head is being read. */
  starting: boolean;
  /** The highest event number heard of (committed) for the job. */
  heard: number;
  /** A read is wanted after the one running (something was heard meanwhile). */
  again: boolean;
  /** The read loop, while one runs. */
  running?: Promise<void>;
}

/** Publishes other queens' events of followed jobs on a hub; see the module's comment. */
export class RemoteFeed {
  readonly #hub: Hub;
  readonly #reader: FeedReader;
  readonly #local: (id: string) => number | undefined;
  readonly #page: number;
  readonly #log: (message: string) => void;
  readonly #jobs = new Map<string, Followed>();
  #closed = false;

  constructor(hub: Hub, reader: FeedReader, options: RemoteFeedOptions = {}) {
    this.#hub = hub;
    this.#reader = reader;
    this.#local = options.local ?? (() => undefined);
    this.#page = options.pageEvents ?? 16;
    this.#log = options.log ?? (() => {});
    hub.attach(this);
  }

  /**
   * A job got its first follower here: publishing starts after what is committed now (or, for
   * a job this queen records, after its last recorded event), so the follower's own read of the
   * store, made after this settles, meets the first published event without a gap.
   */
  async followed(id: string): Promise<void> {
    const state: Followed = { started: false, starting: false, heard: 0, again: false };
    this.#jobs.set(id, state);
    await this.#start(id, state);
  }

  /** Finds where the job's publishing starts (again from `resync` when the database failed). */
  async #start(id: string, state: Followed): Promise<void> {
    state.starting = true;
    let head: number;
    try {
      head = this.#local(id) ?? await this.#reader.head(id);
    } catch (error) {
      this.#log(`following job ${id}: ${(error as Error).message}; trying again`);
      throw error;
    } finally {
      state.starting = false;
    }
    if (this.#jobs.get(id) !== state) return;
    this.#hub.skipTo(id, head);
    state.started = true;
    // Heard of while the head was read: read it now.
    if (state.heard > head) this.#pull(id, state);
  }

  unfollowed(id: string): void {
    this.#jobs.delete(id);
  }

  /**
   * Another queen committed events of `id` up to event number `n` (undefined: unknown, read to
   * see). Ignored for jobs not followed here and for what the hub has already published (this
   * queen's own commits, repeats).
   */
  notify(id: string, n?: number): void {
    const state = this.#jobs.get(id);
    if (!state || this.#closed) return;
    if (n !== undefined && n > state.heard) state.heard = n;
    // Before the head is known, a read would start at the job's first event: `followed` reads
    // what was heard meanwhile once it knows where to start.
    if (!state.started) return;
    if (n !== undefined) {
      const published = this.#hub.published(id);
      if (published === undefined || n <= published) return;
    }
    this.#pull(id, state);
  }

  /**
   * Reads every followed job recorded elsewhere: what the bus may have missed while its
   * connection was down, and the fallback when notifications are lost. With `heads`, one query
   * tells which of them have anything new, and only those are read.
   */
  async resync(): Promise<void> {
    for (const [id, state] of this.#jobs) {
      if (!state.started && !state.starting) void this.#start(id, state).catch(() => {});
    }
    const ids = this.remoteJobs();
    if (!ids.length) return;
    if (!this.#reader.heads) {
      for (const id of ids) this.notify(id);
      return;
    }
    let heads: Map<string, number>;
    try {
      heads = await this.#reader.heads(ids);
    } catch (error) {
      return this.#log(`polling followed jobs: ${(error as Error).message}`);
    }
    for (const [id, n] of heads) this.notify(id, n);
  }

  /** The jobs followed here that another queen records. */
  remoteJobs(): string[] {
    return [...this.#jobs.keys()].filter((id) => this.#local(id) === undefined);
  }

  /** Settles once every read running now has ended (for tests and shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.#jobs.values()].flatMap((s) => s.running ? [s.running] : []);
      if (!running.length) return;
      await Promise.all(running);
    }
  }

  close(): void {
    this.#closed = true;
    this.#jobs.clear();
  }

  /** Starts the job's read loop, or asks the running one to read once more. */
  #pull(id: string, state: Followed): void {
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = this.#read(id, state).catch((error) => {
      this.#log(`reading job ${id}'s events for its followers: ${(error as Error).message}`);
    }).finally(() => {
      state.running = undefined;
    });
  }

  async #read(id: string, state: Followed): Promise<void> {
    do {
      state.again = false;
      for (;;) {
        const after = this.#hub.published(id);
        if (after === undefined || this.#jobs.get(id) !== state) return;
        const events = await this.#reader.events(id, after, this.#page);
        if (this.#jobs.get(id) !== state) return;
        let last = after;
        for (const event of events) {
          // A store answers in order; a repeat is skipped, and nothing past a hole is passed on
          // (the next read starts at the hole).
          if (event.n <= last) continue;
          if (event.n !== last + 1) break;
          this.#hub.publish(id, event, "remote");
          last = event.n;
        }
        if (last > state.heard) state.heard = last;
        if (events.length < this.#page || last === after) break;
      }
    } while (state.again);
  }
}
