/**
 * A connection the database server closed must not end the queen: postgres.js can reject a
 * write to it where no caller can catch it (queen/postgres/closed_sockets.ts).
 */
import { deepEqual, equal } from "node:assert/strict";

Deno.test("a 'socket ended' rejection from the database client is logged, and the queen lives on", async () => {
  // In a process of its own: the handler is global.
  const script = `
    import { tolerateClosedSockets } from ${
    JSON.stringify(new URL("../queen/postgres/closed_sockets.ts", import.meta.url).href)
  };
    tolerateClosedSockets((m) => console.log(m));
    Promise.reject(new Error("This socket has been ended by the other party"));
    await new Promise((r) => setTimeout(r, 50));
    console.log("still running");
    Promise.reject(new Error("some other bug"));
    await new Promise((r) => setTimeout(r, 50));
    console.log("not reached");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  deepEqual(lines, [
    "a database connection was closed by the server: This socket has been ended by the other party",
    "still running",
  ]);
  equal(out.success, false, "any other unhandled rejection still ends the process");
});
