/**
 * Bounds on PostgreSQL round trips (queen/postgres/deadline.ts): a connection that goes silent (a
 * half-open TCP connection, through a proxy that stops forwarding without closing) fails its
 * statements with `DatabaseUnavailableError` within the bound, the pool replaces it, and the
 * server itself cancels a statement past `statement_timeout`.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { PostgresStore } from "../queen/postgres/store.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { DatabaseUnavailableError } from "../queen/errors.ts";
import { postgresCluster } from "./helpers/postgres.ts";
import { TcpProxy } from "./helpers/tcp_proxy.ts";

const key = () => crypto.getRandomValues(new Uint8Array(32));

Deno.test("PostgreSQL: a connection gone silent fails its statements within the bound, then the pool recovers", async () => {
  const url = new URL(await (await postgresCluster()).newDatabase());
  const proxy = new TcpProxy({ port: Number(url.port) });
  url.port = String(proxy.port);
  const store = await PostgresStore.open(
    { url: url.href, max: 2, statementSeconds: 1 },
    new SecretBox(key(), []),
  );
  try {
    equal((await store.listJobs({ limit: 5 })).records.length, 0);
    ok(proxy.freeze() > 0, "the pool's connections are frozen");
    // Every statement on a frozen connection fails instead of waiting for ever; the pool's next
    // connections (the proxy forwards new ones) answer again.
    const failures: unknown[] = [];
    let answered = false;
    for (let i = 0; i < 20 && !answered; i++) {
      try {
        await store.listJobs({ limit: 5 });
        answered = true;
      } catch (error) {
        failures.push(error);
      }
    }
    ok(failures.length > 0, "a statement on a frozen connection failed");
    ok(
      failures.every((e) => e instanceof DatabaseUnavailableError),
      `every failure says the database is unavailable: ${failures.map(String).join("; ")}`,
    );
    ok(answered, "after the silent connections were cut, the store answers again");
    // The server cancels what runs past statement_timeout, with an error the HTTP edge maps
    // to 503.
    await rejects(
      store.sql`SELECT pg_sleep(5)`,
      (error: Error) =>
        error instanceof DatabaseUnavailableError && /statement timeout/.test(error.message),
    );
  } finally {
    await store.close();
    await proxy.close();
  }
});
