/**
 * Bounds on every PostgreSQL round trip, so that a queen whose database stops answering (a
 * frozen server, a network path that drops packets without a reset, a half-open connection)
 * answers errors within seconds instead of waiting for ever; postgres.js has no query timeout of
 * its own, and a TCP connection to a peer that went silent can stay open for hours.
 *
 * Three layers, each for what the others cannot see:
 * - **Server side**, in every connection's startup parameters: `statement_timeout` (a statement
 *   that runs or waits for a lock too long is cancelled by PostgreSQL, which answers an error)
 *   and `idle_in_transaction_session_timeout` (a transaction whose client vanished ends).
 * - **Per statement**, on the client: a statement not answered within the bound rejects with
 *   `DatabaseUnavailableError`, whatever holds it (a dead connection, a queue waiting for one).
 * - **Per connection**: a socket that was written to and has read nothing since, for longer than
 *   the server's own bound plus a grace, is destroyed. postgres.js then fails what it had sent on
 *   it and opens a new connection for the next statement; without this, a half-open connection
 *   would hold its pipelined statements (and every later one routed to it) for ever.
 * @module
 */
import net from "node:net";
import type { Sql } from "postgres";
import { DatabaseUnavailableError } from "../errors.ts";

/** Default seconds a statement may take (`--database-timeout`). */
export const DEFAULT_STATEMENT_SECONDS = 30;
/** How much longer than the server's bound a silent connection is given before it is cut. */
const GRACE_MS = 5_000;

/** How long statements may take, in milliseconds. */
export interface Deadlines {
  /** PostgreSQL's `statement_timeout` and the client's bound on each statement. */
  statementMs: number;
}

export function deadlinesOf(seconds = DEFAULT_STATEMENT_SECONDS): Deadlines {
  return { statementMs: Math.max(1, Math.round(seconds * 1000)) };
}

/** The startup parameters that make the server enforce the bound too. */
export function serverBounds(deadlines: Deadlines): Record<string, string> {
  return {
    statement_timeout: String(deadlines.statementMs),
    idle_in_transaction_session_timeout: String(Math.max(10_000, 2 * deadlines.statementMs)),
  };
}

interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
  ssl?: unknown;
}

let nextHost = 0;

/**
 * postgres.js's `socket` option: a plain TCP (or Unix) socket to the server, cut when it was
 * written to and then stays silent past `silentMs`.
 */
export function watchedSocket(silentMs: number) {
  return (target: SocketTarget): net.Socket => {
    let socket: net.Socket;
    if (target.path) socket = net.connect(target.path);
    else {
      const i = nextHost++ % target.host.length;
      socket = net.connect({ host: target.host[i], port: target.port[i] ?? target.port[0] });
      // postgres.js names the TLS server by this (SNI, certificate check).
      Object.assign(socket, { host: target.host[i] });
    }
    // Under TLS the bytes move through the TLS socket postgres.js puts on top of this one, whose
    // counters are not these: such connections rely on the statement deadline and TCP keepalive.
    if (!target.ssl) watch(socket, silentMs);
    return socket;
  };
}

function watch(socket: net.Socket, silentMs: number): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let readAtArm = 0;
  let writes = 0;
  let writesAtArm = 0;
  const arm = () => {
    readAtArm = socket.bytesRead;
    writesAtArm = writes;
    timer = setTimeout(check, silentMs);
    Deno.unrefTimer(timer as unknown as number);
  };
  const check = () => {
    timer = undefined;
    if (socket.destroyed) return;
    if (socket.bytesRead === readAtArm) {
      socket.destroy(
        new DatabaseUnavailableError(
          `PostgreSQL sent nothing for ${Math.round(silentMs / 1000)} s after a request: ` +
            "the connection is taken as dead and a new one is opened",
        ),
      );
      return;
    }
    // It answered something; what was written since is watched from now.
    if (writes > writesAtArm) arm();
  };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    writes++;
    if (timer === undefined) arm();
    return write(...args);
  }) as typeof socket.write;
  socket.once("close", () => clearTimeout(timer));
}

/** Whether `error` says the database could not be reached or answered too late. */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  // postgres.js's own connection errors, the system's, and PostgreSQL's "cancelled by
  // statement_timeout", "shutting down" and connection-exception classes.
  return /^(CONNECT_TIMEOUT|CONNECTION_|E[A-Z]+$)/.test(code) || code === "57014" ||
    code.startsWith("57P") || code.startsWith("08");
}

function unavailable(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError || !isUnavailable(error)) return error;
  const wrapped = new DatabaseUnavailableError(
    `the database did not answer: ${(error as Error).message}`,
  );
  Object.assign(wrapped, { code: (error as { code?: string }).code, cause: error });
  return wrapped;
}

type Query = Promise<unknown> & { reject?: (error: unknown) => void; execute?: unknown };

/**
 * Gives `query` (a postgres.js query, run when first awaited) a deadline: it rejects with
 * `DatabaseUnavailableError` when not answered within `ms`, and connection errors become that
 * error too, so that the HTTP edge answers 503.
 */
function bound<T>(query: T, ms: number): T {
  const q = query as unknown as Query;
  if (!q || typeof q.then !== "function" || typeof q.execute !== "function") return query;
  const then = q.then;
  let armed = false;
  Object.defineProperty(q, "then", {
    configurable: true,
    value(onFulfilled?: (value: unknown) => unknown, onRejected?: (error: unknown) => unknown) {
      if (!armed) {
        armed = true;
        const timer = setTimeout(() => {
          q.reject?.(
            new DatabaseUnavailableError(
              `the database did not answer within ${Math.round(ms / 1000)} s ` +
                "(--database-timeout)",
            ),
          );
        }, ms);
        then.call(q, () => clearTimeout(timer), () => clearTimeout(timer));
      }
      return then.call(
        q,
        onFulfilled,
        (error: unknown) => {
          const mapped = unavailable(error);
          if (onRejected) return onRejected(mapped);
          throw mapped;
        },
      );
    },
  });
  return query;
}

/**
 * `sql` with a deadline on every statement it runs, inside transactions too. Fragments
 * (`sql\`...\`` never awaited, composed into another statement) are left as they are.
 */
export function withDeadlines(sql: Sql, deadlines: Deadlines): Sql {
  const ms = deadlines.statementMs + GRACE_MS / 2;
  return new Proxy(sql, {
    apply(target, self, args) {
      return bound(Reflect.apply(target, self, args), ms);
    },
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key === "unsafe") {
        return (...args: unknown[]) => bound((value as (...a: unknown[]) => unknown)(...args), ms);
      }
      if (key === "begin") {
        return (...args: unknown[]) => {
          const fn = args.pop() as (tx: Sql) => unknown;
          return (value as (...a: unknown[]) => Promise<unknown>)(
            ...args,
            (tx: Sql) => fn(withDeadlines(tx, deadlines)),
          ).catch((error) => {
            throw unavailable(error);
          });
        };
      }
      return value;
    },
  });
}

/** How long a silent connection is given: past the server's own bound, so it answers first. */
export function silentMs(deadlines: Deadlines): number {
  return deadlines.statementMs + GRACE_MS;
}
