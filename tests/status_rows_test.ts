/**
 * The commit-status rows behave the same in the queen's SQLite file and in PostgreSQL, where any
 * queen taking over carries on reporting.
 */
import { deepEqual, equal } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { migrate } from "../queen/sqlite_schema.ts";
import { PostgresStatusRows, SqliteStatusRows } from "../queen/forge_status/rows.ts";
import type { StatusRows } from "../queen/forge_status/rows.ts";
import { PostgresStore } from "../queen/postgres/store.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { newRecord } from "../queen/recorder.ts";
import { JobSpecSchema } from "../protocol/mod.ts";
import { postgresCluster } from "./helpers/postgres.ts";

const spec = JobSpecSchema.parse({
  repo: { url: "https://git.example/app.git" },
  ref: { branch: "main" },
});

const SUBJECTS: { name: string; open: () => Promise<{ rows: StatusRows; close(): unknown }> }[] = [
  {
    name: "SQLite",
    open: () => {
      const db = new DatabaseSync(":memory:");
      migrate(db);
      return Promise.resolve({ rows: new SqliteStatusRows(db), close: () => db.close() });
    },
  },
  {
    name: "PostgreSQL",
    open: async () => {
      const url = await (await postgresCluster()).newDatabase();
      const store = await PostgresStore.open(
        { url, max: 2 },
        new SecretBox(crypto.getRandomValues(new Uint8Array(32)), []),
      );
      // Statuses belong to jobs (and go with them).
      await store.createJob(newRecord("j1", { ...spec, job_id: "j1" }, 0));
      return { rows: new PostgresStatusRows(store.sql), close: () => store.close() };
    },
  },
];

for (const { name, open } of SUBJECTS) {
  Deno.test(`${name} status rows: pending, tries, sent, and what is left to send`, async () => {
    const { rows, close } = await open();
    try {
      await rows.insert("j1", "github", "octo/hello", "abc", 5);
      await rows.insert("j1", "gitlab", "other", "def", 6);
      const first = (await rows.get("j1"))!;
      equal(first.forge, "github", "a second insert changes nothing");
      equal(first.wanted, "pending");
      equal(first.sent, null);
      deepEqual(await rows.unsettled(), ["j1"]);
      await rows.note("j1", 2, "forge down");
      equal((await rows.get("j1"))!.tries, 2);
      await rows.sent("j1", "pending", 10);
      deepEqual(await rows.unsettled(), ["j1"], "pending sent: the result may come while down");
      await rows.want("j1", "passed");
      const wanted = (await rows.get("j1"))!;
      equal(wanted.tries, 0, "a new state gets every retry");
      equal(wanted.error, null);
      await rows.sent("j1", "passed", 20);
      const done = (await rows.get("j1"))!;
      deepEqual([done.sent, done.sent_at, done.tries], ["passed", 20, 0]);
      deepEqual(await rows.unsettled(), []);
      equal(await rows.get("nope"), undefined);
    } finally {
      await close();
    }
  });
}
