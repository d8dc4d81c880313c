/**
 * The worker's job caches on disk: restore and save, keys with file digests, the size cap and
 * least-recently-used eviction, concurrent saves, and symlinks that try to lead out of the
 * workspace.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { renderCacheKey } from "../worker/cache_key.ts";
import { CacheStore } from "../worker/cache_store.ts";
import type { CacheLayout } from "../worker/cache_store.ts";

async function workspace(): Promise<CacheLayout> {
  const root = await Deno.makeTempDir({ prefix: "strider-cache-ws-" });
  const layout = { workspace: root, src: join(root, "src"), home: join(root, "home") };
  await Deno.mkdir(layout.src);
  await Deno.mkdir(layout.home);
  return layout;
}

async function write(path: string, text: string | Uint8Array) {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  if (typeof text === "string") await Deno.writeTextFile(path, text);
  else await Deno.writeFile(path, text);
}

const exists = async (path: string) => !!(await Deno.lstat(path).catch(() => undefined));

Deno.test("a saved cache is restored byte for byte into a fresh workspace", async () => {
  const store = new CacheStore(await Deno.makeTempDir(), 64 * 1024 * 1024);
  const first = await workspace();
  const blob = crypto.getRandomValues(new Uint8Array(60_000));
  await write(join(first.home, ".npm", "_cacache", "blob"), blob);
  await write(join(first.src, "node_modules", "left-pad", "index.js"), "module.exports = 1;\n");
  const saved = await store.save("repo-a", "k1", ["~/.npm", "node_modules", "absent"], first);
  ok(saved.done, saved.note);
  match(saved.note, /saved cache k1/);

  const second = await workspace();
  const restored = await store.restore("repo-a", "k1", ["~/.npm", "node_modules"], second);
  ok(restored.done, restored.note);
  deepEqual(await Deno.readFile(join(second.home, ".npm", "_cacache", "blob")), blob);
  equal(
    await Deno.readTextFile(join(second.src, "node_modules", "left-pad", "index.js")),
    "module.exports = 1;\n",
  );
  const entries = [];
  for await (const e of Deno.readDir(second.workspace)) entries.push(e.name);
  deepEqual(entries.sort(), ["home", "src"], "the staging folder is removed");
});

Deno.test("caches are per repository and key; a saved key is never rewritten", async () => {
  const store = new CacheStore(await Deno.makeTempDir(), 64 * 1024 * 1024);
  const a = await workspace();
  await write(join(a.src, "out", "v"), "one");
  ok((await store.save("repo-a", "k", ["out"], a)).done);
  await write(join(a.src, "out", "v"), "two");
  const again = await store.save("repo-a", "k", ["out"], a);
  equal(again.done, false);
  match(again.note, /already saved/);

  const other = await workspace();
  equal((await store.restore("repo-b", "k", ["out"], other)).done, false, "another repository");
  equal((await store.restore("repo-a", "k2", ["out"], other)).done, false, "another key");
  ok((await store.restore("repo-a", "k", ["out"], other)).done);
  equal(await Deno.readTextFile(join(other.src, "out", "v")), "one");
});

Deno.test("past the size cap the least recently used caches go first", async () => {
  const dir = await Deno.makeTempDir();
  // Room for two archives of 40 KB (50 KiB as tar records), not three.
  const store = new CacheStore(dir, 120_000);
  const ws = await workspace();
  for (const key of ["old", "used", "new"]) {
    await write(join(ws.src, key, "blob"), crypto.getRandomValues(new Uint8Array(40_000)));
  }
  ok((await store.save("r", "old", ["old"], ws)).done);
  ok((await store.save("r", "used", ["used"], ws)).done);
  // Backdate both, then use "used": "old" is now the least recently used.
  for await (const repo of Deno.readDir(dir)) {
    for await (const f of Deno.readDir(join(dir, repo.name))) {
      await Deno.utime(join(dir, repo.name, f.name), 1_000, 1_000);
    }
  }
  ok((await store.restore("r", "used", ["used"], await workspace())).done);
  ok((await store.save("r", "new", ["new"], ws)).done);
  equal((await store.restore("r", "old", ["old"], await workspace())).done, false, "old kept");
  ok((await store.restore("r", "used", ["used"], await workspace())).done, "used evicted");
  ok((await store.restore("r", "new", ["new"], await workspace())).done, "new evicted");
});

Deno.test("a cache bigger than the cap is not saved, and says which flag to raise", async () => {
  const dir = await Deno.makeTempDir();
  const store = new CacheStore(dir, 50_000);
  const ws = await workspace();
  await write(join(ws.src, "big", "blob"), crypto.getRandomValues(new Uint8Array(60_000)));
  const saved = await store.save("r", "big", ["big"], ws);
  equal(saved.done, false);
  match(saved.note, /over the cache limit.*--cache-max-mib/);
  const left = [];
  for await (const repo of Deno.readDir(dir)) {
    for await (const f of Deno.readDir(join(dir, repo.name))) left.push(f.name);
  }
  deepEqual(left, [], "no archive or temporary file is left behind");
});

Deno.test("concurrent saves and restores of one key each see a whole archive", async () => {
  const store = new CacheStore(await Deno.makeTempDir(), 64 * 1024 * 1024);
  const sources = await Promise.all([1, 2, 3, 4].map(async (n) => {
    const ws = await workspace();
    await write(join(ws.src, "dep", "file"), `content ${n}\n`.repeat(5000));
    return ws;
  }));
  const saves = await Promise.all(sources.map((ws) => store.save("r", "shared", ["dep"], ws)));
  equal(saves.filter((s) => s.done).length, 1, "exactly one save wins; the rest find it saved");
  const restores = await Promise.all([1, 2, 3, 4].map(async () => {
    const ws = await workspace();
    const outcome = await store.restore("r", "shared", ["dep"], ws);
    return outcome.done ? await Deno.readTextFile(join(ws.src, "dep", "file")) : "";
  }));
  for (const text of restores) match(text, /^(content \d\n){5000}$/);
});

Deno.test("symlinks cannot carry a save or a restore out of the workspace", async () => {
  const outside = await Deno.makeTempDir({ prefix: "strider-outside-" });
  await write(join(outside, "secret.txt"), "worker's own file\n");
  const store = new CacheStore(await Deno.makeTempDir(), 64 * 1024 * 1024);

  // Save: a cache path that is a link to a folder outside is left out.
  const ws = await workspace();
  await Deno.symlink(outside, join(ws.src, "linked"));
  await write(join(ws.src, "real", "f"), "ok");
  const saved = await store.save("r", "k", ["linked", "real"], ws);
  ok(saved.done, saved.note);
  const fresh = await workspace();
  ok((await store.restore("r", "k", ["linked", "real"], fresh)).done);
  equal(await exists(join(fresh.src, "linked")), false, "the outside folder was cached");
  equal(await Deno.readTextFile(join(fresh.src, "real", "f")), "ok");

  // Restore: a checkout whose folder is a link outside does not receive the cache.
  const other = await workspace();
  await write(join(other.src, "deps", "x"), "cached");
  ok((await store.save("r", "deps", ["deps/x"], other)).done);
  const victim = await workspace();
  await Deno.symlink(outside, join(victim.src, "deps"));
  const restored = await store.restore("r", "deps", ["deps/x"], victim);
  match(restored.note, /left as found: deps\/x/);
  equal(await exists(join(outside, "x")), false, "the restore wrote outside the workspace");
});

Deno.test("cache keys render file digests, os and arch; bad templates say what to use", async () => {
  const ws = await workspace();
  await write(join(ws.src, "package-lock.json"), '{"lockfileVersion":3}');
  const a = await renderCacheKey('npm-{{ checksum "package-lock.json" }}-{{ os }}', ws.src);
  ok(a.ok);
  match(a.key, new RegExp(`^npm-[0-9a-f]{64}-${Deno.build.os}$`));
  await write(join(ws.src, "package-lock.json"), '{"lockfileVersion":2}');
  const b = await renderCacheKey('npm-{{ checksum "package-lock.json" }}-{{ os }}', ws.src);
  ok(b.ok && b.key !== a.key, "a changed file changes the key");
  const missing = await renderCacheKey('x-{{ checksum "nope.lock" }}', ws.src);
  deepEqual(missing, { ok: true, key: "x-missing" });
  const outside = await Deno.makeTempDir();
  await write(join(outside, "secret"), "s");
  await Deno.symlink(join(outside, "secret"), join(ws.src, "link.lock"));
  deepEqual(await renderCacheKey('{{ checksum "link.lock" }}', ws.src), {
    ok: true,
    key: "missing",
  });
  const bad = await renderCacheKey("{{ branch }}", ws.src);
  ok(!bad.ok);
  match(bad.error, /unknown \{\{ branch \}\}.*checksum "FILE"/);
  const escape = await renderCacheKey('{{ checksum "../x" }}', ws.src);
  ok(!escape.ok);
  match(escape.error, /'\.\.'/);
});
