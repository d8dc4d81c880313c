/**
 * postgres.js (3.4.9, upstream issue 1208) can write to a connection the server has already
 * closed (a failover, `pg_terminate_backend`, a network cut) from a timer of its own, and the
 * error of that write becomes a rejection no caller can catch, which would end the queen. The
 * connection is gone either way and the client opens a new one for its next query, so such a
 * rejection is logged instead; the liveness lock (`liveness.ts`) decides whether this queen may go on
 * serving.
 * @module
 */

let installed = false;

/** Turns postgres.js's uncatchable "socket ended" rejections into a log line (once per process). */
export function tolerateClosedSockets(log: (message: string) => void): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    const error = event.reason;
    if (error instanceof Error && /socket has been ended by the other party/.test(error.message)) {
      event.preventDefault();
      log(`a database connection was closed by the server: ${error.message}`);
    }
  });
}
