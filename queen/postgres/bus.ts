/**
 * The cluster bus: how a queen hears that another queen committed events, over PostgreSQL's
 * LISTEN/NOTIFY.
 *
 * Every batch the store commits sends, inside its transaction (so PostgreSQL delivers it only
 * once it committed), one `NOTIFY strider_events` per job it wrote: `<job id> <last event
 * number> <queen tag>` (`notifyPayload`), a few dozen bytes, never log text: the 8000-byte limit
 * of a payload is far away, and a follower reads the text from the tables. A number of 0 says
 * only that the job's view changed (a state written without events).
 *
 * Each queen listens on one connection of its own. When it drops, the bus opens a new one with
 * backoff and then resyncs: every followed job is read again from where its followers are. A
 * poll every second does the same for followed jobs recorded elsewhere, so a lost notification
 * costs a second, never a line. What is heard goes to the `RemoteFeed`s attached (events of
 * followed jobs) and to their hubs' `changed` (the overview).
 */
import postgres from "postgres";
import type { Sql } from "postgres";
import type { Hub } from "../hub.ts";
import type { RemoteFeed } from "../remote_feed.ts";

/**
 * The channel on which a batch tells which jobs it wrote: one payload per job, `<id> <last event
 * number, 0 for a state alone> <store tag>`.
 */
export const EVENTS_CHANNEL = "strider_events";

/** What one notification says. */
export interface Heard {
  id: string;
  /** The job's last committed event number; 0 when only its view changed. */
  n: number;
  /** The tag of the queen (store) that committed it. */
  from: string;
}

/** Job ids as `JobIdSchema` allows them (letters, digits, `.`, `_`, `-`), up to 200 characters. */
const ID = /^[A-Za-z0-9._-]{1,200}$/;

/** The payload of one job's notification. */
export function notifyPayload(id: string, n: number, from: string): string {
  return `${id} ${n} ${from}`;
}

/** Reads a payload; anything else (a stranger's NOTIFY, garbage) is undefined and ignored. */
export function parsePayload(payload: string): Heard | undefined {
  if (payload.length > 300) return undefined;
  const [id, n, from, ...rest] = payload.split(" ");
  if (rest.length || !ID.test(id ?? "") || !/^\d{1,15}$/.test(n ?? "") || !from) {
    return undefined;
  }
  return { id, n: Number(n), from };
}

/** Settings of the bus. */
export interface BusOptions {
  /** This queen's store tag (it changes with a new pool): its own notifications are known. */
  self: () => string;
  /** How often followed jobs recorded elsewhere are read anyway (default 1000 ms). */
  pollMs?: number;
  log?: (message: string) => void;
}

/** Listens for other queens' commits; see the module's comment. */
export class ClusterBus {
  readonly #url: string;
  readonly #self: () => string;
  readonly #log: (message: string) => void;
  readonly #targets = new Set<{ feed: RemoteFeed; hub: Hub }>();
  #sql: Sql | undefined;
  #closed = false;
  #poll: ReturnType<typeof setInterval>;
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** Settles when the first LISTEN is in place (or failed: the poll covers). */
  readonly listening: Promise<void>;

  private constructor(url: string, options: BusOptions) {
    this.#url = url;
    this.#self = options.self;
    this.#log = options.log ?? (() => {});
    this.#poll = setInterval(() => {
      for (const { feed } of this.#targets) void feed.resync();
    }, options.pollMs ?? 1000);
    this.listening = this.#connect(0);
  }

  /** Starts listening on `url` (resolves once the first LISTEN is in place or failed). */
  static async open(url: string, options: BusOptions): Promise<ClusterBus> {
    const bus = new ClusterBus(url, options);
    await bus.listening;
    return bus;
  }

  /** Passes what is heard to `feed`, and view changes to `hub`. */
  attach(feed: RemoteFeed, hub: Hub): () => void {
    const target = { feed, hub };
    this.#targets.add(target);
    return () => this.#targets.delete(target);
  }

  /** Acts on one notification's payload, as PostgreSQL delivered it. */
  hear(payload: string): void {
    const heard = parsePayload(payload);
    if (!heard) return;
    for (const { feed, hub } of this.#targets) {
      if (heard.from !== this.#self()) hub.changed(heard.id);
      if (heard.n > 0) feed.notify(heard.id, heard.n);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#poll);
    clearTimeout(this.#retry);
    const sql = this.#sql;
    this.#sql = undefined;
    await sql?.end({ timeout: 1 }).catch(() => {});
  }

  /**
   * Opens the listening connection (a client of its own, one connection); after `failures`
   * failed tries it waits first, up to 10 s. Once listening, everything followed is resynced.
   */
  async #connect(failures: number): Promise<void> {
    if (this.#closed) return;
    let dropped = false;
    const sql = postgres(this.#url, {
      max: 1,
      // Kept open for good (the default recycles connections every 30 to 60 minutes).
      max_lifetime: null,
      fetch_types: false,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: "strider-bus" },
      onnotify: (channel: string, payload: string) => {
        if (channel === EVENTS_CHANNEL) this.hear(payload);
      },
      onclose: () => {
        if (dropped || this.#closed) return;
        dropped = true;
        this.#log("cluster bus: the LISTEN connection dropped; listening again");
        this.#again(sql, 0);
      },
    } as postgres.Options<Record<string, never>>);
    this.#sql = sql;
    try {
      await sql.unsafe(`LISTEN ${EVENTS_CHANNEL}`);
    } catch (error) {
      if (dropped || this.#closed) return;
      dropped = true;
      if (failures === 0) {
        this.#log(`cluster bus: cannot listen (${(error as Error).message}); retrying`);
      }
      this.#again(sql, failures + 1);
      return;
    }
    // Whatever was committed while nobody listened is read now.
    for (const { feed } of this.#targets) void feed.resync();
  }

  #again(sql: Sql, failures: number): void {
    void sql.end({ timeout: 0 }).catch(() => {});
    if (this.#closed) return;
    const wait = failures === 0 ? 0 : Math.min(10_000, 100 * 2 ** failures);
    this.#retry = setTimeout(() => void this.#connect(failures), wait);
  }
}
