/**
 * A queen's liveness in a shared database: a PostgreSQL session advisory lock keyed on the queen,
 * held on a connection of its own. The server releases it the moment that connection ends,
 * whatever ended it (the queen stopped, crashed, was killed, or its network was cut), so the
 * other queens know a queen is dead exactly when its lock is free: no timers, no home-made
 * election.
 */
import type { Sql } from "postgres";
import { connectPostgres } from "./store.ts";

/** How often the holder checks that its connection still holds the lock. */
const CHECK_EVERY_MS = 2000;

/** A lock held for a queen's life. */
export interface HeldLock {
  /** Rejects when the lock is lost: the queen must stop (another may adopt its jobs). */
  lost: Promise<never>;
  release(): void;
}

/**
 * Takes the session advisory lock `key` on a one-connection client of its own, waiting while
 * another session holds it (a queen's own key is never held by another).
 *
 * Not `sql.reserve()`: postgres.js 3.4.9 throws an uncatchable error when a reserved connection's
 * backend dies (porsager/postgres issue 1208), which would crash the queen instead of stopping it.
 */
export async function holdLock(url: string, key: bigint, queen?: string): Promise<HeldLock> {
  let conn: Sql;
  // A wait cut short (the database restarted, the connection dropped) starts again.
  for (let tries = 1;; tries++) {
    let attempt: Sql | undefined;
    try {
      attempt = await connectPostgres({ url, max: 1, queen });
      await attempt`SELECT pg_advisory_lock(${key.toString()}::bigint)`;
      conn = attempt;
      break;
    } catch (error) {
      await attempt?.end({ timeout: 0 }).catch(() => {});
      if (tries === 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  let timer: ReturnType<typeof setInterval> | undefined;
  const lost = new Promise<never>((_, reject) => {
    const fail = (why: string) => {
      clearInterval(timer);
      reject(new Error(`lost the database connection that holds this queen's lock: ${why}`));
    };
    timer = setInterval(() => {
      // Still this session's lock: a reconnected client would answer, without holding it.
      conn`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
          AND pid = pg_backend_pid()
          AND ((classid::bigint << 32) | objid::bigint) = ${key.toString()}::bigint) AS held`
        .then(([row]) => {
          if (!row.held) fail("the connection was replaced");
        }, (error: Error) => fail(error.message));
    }, CHECK_EVERY_MS);
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
