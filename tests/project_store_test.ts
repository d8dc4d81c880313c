/**
 * The project stores, in memory and in the queen's SQLite file: the same behaviour from both,
 * and the SQLite one keeps projects and deliveries across a reopen (migration 2).
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
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

const project = (input: Partial<ProjectInput> = {}) =>
  ProjectSchema.parse({
    name: "octo-org/hello-world",
    repo: { url: "https://github.com/octo-org/hello-world.git" },
    secrets: { DEPLOY_KEY: "k-123456" },
    ...input,
  });

function contract(name: string, open: () => { store: ProjectStore; close(): void }) {
  Deno.test(`${name}: create, get without case, list, update, delete`, () => {
    const { store, close } = open();
    try {
      const created = store.create(project(), 1000);
      equal(created.createdAt, 1000);
      equal(store.get("Octo-Org/Hello-World")?.project.name, "octo-org/hello-world");
      deepEqual(store.get("octo-org/hello-world")?.project.secrets, { DEPLOY_KEY: "k-123456" });
      throws(
        () => store.create(project({ name: "OCTO-ORG/hello-world" }), 2000),
        ProjectExistsError,
      );
      store.create(project({ name: "a/b", repo: { url: "/srv/git/b" } }), 3000);
      deepEqual(store.list().map((s) => s.project.name), ["a/b", "octo-org/hello-world"]);
      const updated = store.update(
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
      deepEqual(store.get("octo-org/hello-world")?.project.branches, { main: { deploy: true } });
      equal(store.update(project({ name: "no/such" }), 5000), undefined);
      ok(store.delete("A/B"));
      ok(!store.delete("a/b"));
      equal(store.get("a/b"), undefined);
    } finally {
      close();
    }
  });

  Deno.test(`${name}: a webhook finds its project by full name or any clone URL`, () => {
    const { store, close } = open();
    try {
      store.create(project({ repo: { url: "git@github.com:octo-org/hello-world.git" } }), 1);
      store.create(project({ name: "local/repo", repo: { url: "/tmp/some/repo" } }), 1);
      const find = (...names: string[]) => store.findByRepo(names)?.project.name;
      equal(find("octo-org/hello-world"), "octo-org/hello-world");
      equal(find("OCTO-ORG/Hello-World"), "octo-org/hello-world");
      equal(
        find("someone/else", "https://github.com/octo-org/hello-world.git"),
        "octo-org/hello-world",
      );
      equal(find("ssh://git@github.com/octo-org/hello-world"), "octo-org/hello-world");
      equal(find("git://github.com/octo-org/hello-world.git"), "octo-org/hello-world");
      equal(find("local/repo", "https://example.com/local/repo.git"), "local/repo");
      equal(find("https://gitlab.com/octo-org/hello-world.git"), undefined, "another host");
      equal(find("nobody/nothing"), undefined);
      equal(find(), undefined);
    } finally {
      close();
    }
  });

  Deno.test(`${name}: deliveries are remembered for a month`, () => {
    const { store, close } = open();
    try {
      const now = Date.now();
      store.recordDelivery("github", "d-1", "job-1", now);
      equal(store.deliveryJob("github", "d-1"), "job-1");
      equal(store.deliveryJob("gitlab", "d-1"), undefined, "per forge");
      equal(store.deliveryJob("github", "d-2"), undefined);
      store.recordDelivery("github", "d-old", "job-0", now - DELIVERY_MEMORY_MS - 1);
      equal(store.deliveryJob("github", "d-old"), undefined);
    } finally {
      close();
    }
  });
}

contract("memory project store", () => ({ store: new MemoryProjectStore(), close() {} }));

contract("SQLite project store", () => {
  const dir = Deno.makeTempDirSync({ prefix: "strider-projects-" });
  const jobs = new SqliteStore(dir);
  return {
    store: new SqliteProjectStore(jobs.database, jobs.secretBox),
    close() {
      jobs.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
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
