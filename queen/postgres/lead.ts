/**
 * Which queen serves a shared database: the one holding a PostgreSQL session advisory lock (the
 * "lead"), which the server releases the moment that queen's connection ends, whatever ended it.
 * The others wait for it, and forward to the address the serving queen announced.
 */
import type { Sql } from "postgres";
import { connectPostgres } from "./store.ts";

/** The advisory lock held by the queen serving the database ("leader" in ASCII). */
const LEADER_LOCK = 0x6c6561646572;

/** The lead of one database, as one queen sees it. */
export class Lead {
  readonly #url: string;
  #sql: Sql;
  #leader: { url: string | undefined; at: number } = { url: undefined, at: 0 };
  #stopped = false;

  /** `url` for the lock's own connection; `sql` (the store's pool) for the rest. */
  constructor(url: string, sql: Sql) {
    this.#url = url;
    this.#sql = sql;
  }

  /** Uses `sql` from now on for what is not the lock (the serving queen's fresh pool). */
  use(sql: Sql): void {
    this.#sql = sql;
  }

  /** Gives up waiting for the lead. */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Waits until this queen is the one that serves the database: a session advisory lock on a
   * connection of its own, which PostgreSQL releases the moment that connection ends (the queen
   * stopped, crashed or was killed). `waiting` is called once when another queen holds it.
   * Returns a promise that rejects when the lock is lost (its connection broke, or was replaced
   * by a new one that does not hold it): the queen must stop serving then, as another may take
   * over.
   *
   * The lock's connection is a one-connection client of its own, not `sql.reserve()`: postgres.js
   * 3.4.9 throws an uncatchable error when a reserved connection's backend dies (porsager/postgres
   * issue 1208), which would crash the queen instead of stopping it.
   */
  async take(
    waiting: () => void | Promise<void>,
  ): Promise<{ lost: Promise<never>; release: () => void }> {
    let told = false;
    let conn: Sql;
    // A wait cut short (the database restarted, the connection dropped) starts again.
    for (;;) {
      let attempt: Sql | undefined;
      try {
        attempt = await connectPostgres({ url: this.#url, max: 1 });
        const [{ locked }] = await attempt`SELECT pg_try_advisory_lock(${LEADER_LOCK}) AS locked`;
        if (!locked) {
          if (!told) await waiting();
          told = true;
          await attempt`SELECT pg_advisory_lock(${LEADER_LOCK})`;
        }
        conn = attempt;
        break;
      } catch {
        await attempt?.end({ timeout: 0 }).catch(() => {});
        if (this.#stopped) throw new Error("stopped while waiting for the lead");
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    let timer: ReturnType<typeof setInterval> | undefined;
    const lost = new Promise<never>((_, reject) => {
      const fail = (why: string) => {
        clearInterval(timer);
        reject(new Error(`lost the database connection that holds the lead: ${why}`));
      };
      timer = setInterval(() => {
        // Still this session's lock: a reconnected client would answer, without holding it.
        conn`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
            AND pid = pg_backend_pid()
            AND ((classid::bigint << 32) | objid::bigint) = ${LEADER_LOCK}) AS held`
          .then(([row]) => {
            if (!row.held) fail("the connection was replaced");
          }, (error: Error) => fail(error.message));
      }, 2000);
    });
    lost.catch(() => {});
    return {
      lost,
      release: () => {
        clearInterval(timer);
        void conn.end({ timeout: 1 }).catch(() => {});
      },
    };
  }

  /** Tells the other queens where to forward to: this queen serves now. */
  async announce(url: string): Promise<void> {
    await this.#sql`INSERT INTO strider_meta (key, value) VALUES ('leader-url', ${url})
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
  }

  /**
   * The address of the queen that serves, as it announced it (read at most every 250 ms), or
   * undefined while the one that announced last is not the one holding the lead.
   */
  async leaderUrl(fresh = false): Promise<string | undefined> {
    if (!fresh && Date.now() - this.#leader.at < 250) return this.#leader.url;
    const [row] = await this.#sql`SELECT
        (SELECT value FROM strider_meta WHERE key = 'leader-url') AS url,
        EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
          AND ((classid::bigint << 32) | objid::bigint) = ${LEADER_LOCK}) AS held`;
    this.#leader = {
      url: row?.held ? String(row.url ?? "") || undefined : undefined,
      at: Date.now(),
    };
    return this.#leader.url;
  }
}
