/**
 * The project stores, in memory and in the queen's SQLite file: the same behaviour from both,
 * and the SQLite one keeps projects and deliveries across a reopen (migration 2).
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import type { ProjectInput } from "../protocol/mod.ts";
import { ProjectSchema } from "../protocol/mod.ts";
import { MemoryProjectStore } from "../queen/projects/memory_store.ts";
import { repoKey } from "../queen/projects/repo_key.ts";
import {
  DELIVERY_MEMORY_MS,
  ProjectExistsError,
  SqliteProjectStore,
} from "../queen/projects/store.ts";
import type { ProjectStore } from "../queen/projects/store.ts";
import { MIGRATIONS } from "../queen/sqlite_schema.ts";
import { SqliteStore } from "../queen/sqlite_store.ts";
import { PostgresStore } from "../queen/postgres/store.ts";
import { PostgresProjectStore } from "../queen/postgres/projects.ts";
import { SecretBox } from "../queen/secret_box.ts";
import { postgresCluster } from "./helpers/postgres.ts";

const project = (input: Partial<ProjectInput> = {}) =>
  ProjectSchema.parse({
    name: "octo-org/hello-world",
    repo: { url: "https://github.com/octo-org/hello-world.git" },
    secrets: { DEPLOY_KEY: "k-123456" },
    ...input,
  });

function contract(
  name: string,
  open: () => Promise<{ store: ProjectStore; close(): void | Promise<void> }>,
) {
  Deno.test(`${name}: create, get without case, list, update, delete`, async () => {
    const { store, close } = await open();
    try {
      const created = await store.create(project(), 1000);
      equal(created.createdAt, 1000);
      equal((await store.get("Octo-Org/Hello-World"))?.project.name, "octo-org/hello-world");
      deepEqual((await store.get("octo-org/hello-world"))?.project.secrets, {
        DEPLOY_KEY: "k-123456",
      });
      await rejects(
        async () => await store.create(project({ name: "OCTO-ORG/hello-world" }), 2000),
        ProjectExistsError,
      );
      await store.create(project({ name: "a/b", repo: { url: "/srv/git/b" } }), 3000);
      deepEqual((await store.list()).map((s) => s.project.name), ["a/b", "octo-org/hello-world"]);
      const updated = await store.update(
        project({
          name: "OCTO-ORG/HELLO-WORLD",
          secrets: {},
          branches: { main: { deploy: true } },
        }),
        4000,
      );
      equal(updated?.project.name, "octo-org/hello-world", "the stored spelling stays");
      equal(updated?.createdAt, 1000);
      equal(updated?.updatedAt, 4000);
      deepEqual((await store.get("octo-org/hello-world"))?.project.branches, {
        main: { deploy: true },
      });
      equal(await store.update(project({ name: "no/such" }), 5000), undefined);
      ok(await store.delete("A/B"));
      ok(!await store.delete("a/b"));
      equal(await store.get("a/b"), undefined);
    } finally {
      await close();
    }
  });

  Deno.test(`${name}: a webhook finds its project by full name or any clone URL`, async () => {
    const { store, close } = await open();
    try {
      await store.create(project({ repo: { url: "git@github.com:octo-org/hello-world.git" } }), 1);
      await store.create(project({ name: "local/repo", repo: { url: "/tmp/some/repo" } }), 1);
      const find = async (...names: string[]) => (await store.findByRepo(names))?.project.name;
      equal(await find("octo-org/hello-world"), "octo-org/hello-world");
      equal(await find("OCTO-ORG/Hello-World"), "octo-org/hello-world");
      equal(
        await find("someone/else", "https://github.com/octo-org/hello-world.git"),
        "octo-org/hello-world",
      );
      equal(await find("ssh://git@github.com/octo-org/hello-world"), "octo-org/hello-world");
      equal(await find("git://github.com/octo-org/hello-world.git"), "octo-org/hello-world");
      equal(await find("local/repo", "https://example.com/local/repo.git"), "local/repo");
      equal(await find("https://gitlab.com/octo-org/hello-world.git"), undefined, "another host");
      equal(await find("nobody/nothing"), undefined);
      equal(await find(), undefined);
    } finally {
      await close();
    }
  });

  Deno.test(`${name}: deliveries are remembered for a month`, async () => {
    const { store, close } = await open();
    try {
      const now = Date.now();
      await store.recordDelivery("github", "d-1", "job-1", now);
      equal(await store.deliveryJob("github", "d-1"), "job-1");
      equal(await store.deliveryJob("gitlab", "d-1"), undefined, "per forge");
      equal(await store.deliveryJob("github", "d-2"), undefined);
      await store.recordDelivery("github", "d-old", "job-0", now - DELIVERY_MEMORY_MS - 1);
      equal(await store.deliveryJob("github", "d-old"), undefined);
    } finally {
      await close();
    }
  });
}

contract(
  "memory project store",
  () => Promise.resolve({ store: new MemoryProjectStore(), close() {} }),
);

contract("SQLite project store", () => {
  const dir = Deno.makeTempDirSync({ prefix: "strider-projects-" });
  const jobs = new SqliteStore(dir);
  return Promise.resolve({
    store: new SqliteProjectStore(jobs.database, jobs.secretBox),
    close() {
      jobs.close();
      Deno.removeSync(dir, { recursive: true });
    },
  });
});

contract("PostgreSQL project store", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const jobs = await PostgresStore.open(
    { url, max: 2 },
    new SecretBox(crypto.getRandomValues(new Uint8Array(32)), []),
  );
  return { store: new PostgresProjectStore(jobs.sql, jobs.secretBox), close: () => jobs.close() };
});

Deno.test("PostgreSQL keeps a project's secrets sealed at rest", async () => {
  const url = await (await postgresCluster()).newDatabase();
  const jobs = await PostgresStore.open(
    { url, max: 2 },
    new SecretBox(crypto.getRandomValues(new Uint8Array(32)), []),
  );
  try {
    await new PostgresProjectStore(jobs.sql, jobs.secretBox).create(project(), 1);
    const [row] = await jobs.sql`SELECT data FROM projects`;
    ok(String(row.data).startsWith("enc:v1:"), "sealed");
    ok(!String(row.data).includes("k-123456"), "the secret is not readable in the row");
  } finally {
    await jobs.close();
  }
});

Deno.test("the SQLite project store keeps projects and deliveries across a reopen", () => {
  const dir = Deno.makeTempDirSync({ prefix: "strider-projects-" });
  try {
    let jobs = new SqliteStore(dir);
    const version = jobs.database.prepare("PRAGMA user_version").get() as { user_version: number };
    equal(version.user_version, MIGRATIONS.length);
    new SqliteProjectStore(jobs.database, jobs.secretBox).create(project(), 1);
    new SqliteProjectStore(jobs.database, jobs.secretBox).recordDelivery(
      "gitea",
      "x",
      "job-9",
      Date.now(),
    );
    jobs.close();
    jobs = new SqliteStore(dir);
    const store = new SqliteProjectStore(jobs.database, jobs.secretBox);
    deepEqual(store.get("octo-org/hello-world")?.project, project());
    equal(store.deliveryJob("gitea", "x"), "job-9");
    jobs.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("repository keys ignore scheme, user, .git and case", () => {
  const key = "github.com/octo-org/hello-world";
  for (
    const url of [
      "https://github.com/octo-org/hello-world.git",
      "https://github.com/Octo-Org/Hello-World/",
      "git@github.com:octo-org/hello-world.git",
      "ssh://git@github.com:22/octo-org/hello-world.git",
      "git://github.com/octo-org/hello-world",
    ]
  ) equal(repoKey(url), key, url);
  equal(repoKey("/srv/git/repo.git/"), "/srv/git/repo");
  equal(repoKey("file:///srv/git/repo.git"), "/srv/git/repo");
});
