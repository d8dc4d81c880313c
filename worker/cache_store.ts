/**
 * The worker's caches: one tar archive per repository and key under `WORKDIR/cache/jobs`.
 * Archives are written to a temporary file and renamed into place (a reader sees a whole archive
 * or none), never rewritten once saved (a key names one content), and evicted least recently
 * used first once all of them together pass the size cap. The worker restores and saves them
 * itself, outside any sandbox; a job's commands never see this folder.
 */
import { dirname, join, relative } from "node:path";
import { hex } from "../protocol/hex.ts";

/** Where a cache's paths live: relative to the checkout, or to HOME with `~/`. */
export interface CacheLayout {
  /** The job's workspace; `src` and `home` are inside it. */
  workspace: string;
  src: string;
  home: string;
}

/** What a restore or save did, as shown in the job's log. */
export type CacheOutcome =
  | { done: true; bytes: number; note: string }
  | { done: false; note: string };

async function sha256(text: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

async function lstat(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch {
    return undefined;
  }
}

/** Whether `path` is `root` or below it. */
const inside = (root: string, path: string) => path === root || path.startsWith(root + "/");

/** Temporary archives older than this are leftovers of a crash. */
const STALE_TEMP_MS = 60 * 60_000;

const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

export class CacheStore {
  readonly #dir: string;
  readonly #maxBytes: number;
  /** Saves and evictions one at a time: eviction must see every finished save. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, maxBytes: number) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
  }

  async #archive(repo: string, key: string): Promise<string> {
    return join(this.#dir, (await sha256(repo)).slice(0, 32), `${await sha256(key)}.tar`);
  }

  /** The workspace-relative form of a cache path (`src/...` or `home/...`). */
  static member(path: string, layout: CacheLayout): string {
    const full = path.startsWith("~/") ? join(layout.home, path.slice(2)) : join(layout.src, path);
    return relative(layout.workspace, full);
  }

  /**
   * Restores `repo`'s cache `key` into the workspace: unpacked into a staging folder, then each
   * path moved into place only where nothing is yet and its folder resolves inside the workspace
   * (a checkout's symlink cannot redirect a restore out of it).
   */
  async restore(
    repo: string,
    key: string,
    paths: string[],
    layout: CacheLayout,
  ): Promise<CacheOutcome> {
    const archive = await this.#archive(repo, key);
    const info = await lstat(archive);
    if (!info?.isFile) return { done: false, note: `no cache for key ${key}` };
    const staging = await Deno.makeTempDir({ dir: layout.workspace, prefix: ".cache-restore-" });
    try {
      const untar = await tar(["-x", "-f", archive, "-C", staging]);
      if (!untar.ok) return { done: false, note: `cache ${key} could not be read: ${untar.error}` };
      // Marks the archive as used for least-recently-used eviction.
      await Deno.utime(archive, new Date(), new Date()).catch(() => {});
      const workspace = await Deno.realPath(layout.workspace);
      const skipped: string[] = [];
      for (const path of paths) {
        const member = CacheStore.member(path, layout);
        const from = join(staging, member);
        const to = join(layout.workspace, member);
        if (!await lstat(from)) continue;
        if (await lstat(to) || !await folderInside(dirname(to), workspace)) {
          skipped.push(path);
          continue;
        }
        try {
          await Deno.mkdir(dirname(to), { recursive: true });
          await Deno.rename(from, to);
        } catch {
          skipped.push(path);
        }
      }
      const note = `restored cache ${key} (${mib(info.size)})` +
        (skipped.length ? `; left as found: ${skipped.join(", ")}` : "");
      return { done: true, bytes: info.size, note };
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Saves `paths` as `repo`'s cache `key`, unless that key is already saved (a key names one
   * content) or the archive passes the cap. Paths that resolve outside the workspace are left
   * out; symlinks inside are stored as links, never followed.
   */
  save(repo: string, key: string, paths: string[], layout: CacheLayout): Promise<CacheOutcome> {
    const run = this.#queue.catch(() => {}).then(() => this.#save(repo, key, paths, layout));
    this.#queue = run;
    return run;
  }

  async #save(
    repo: string,
    key: string,
    paths: string[],
    layout: CacheLayout,
  ): Promise<CacheOutcome> {
    const archive = await this.#archive(repo, key);
    if (await lstat(archive)) return { done: false, note: `cache ${key} is already saved` };
    const workspace = await Deno.realPath(layout.workspace);
    const members: string[] = [];
    for (const path of paths) {
      const member = CacheStore.member(path, layout);
      const full = join(layout.workspace, member);
      if (!await lstat(full)) continue;
      let real: string;
      try {
        real = await Deno.realPath(full);
      } catch {
        continue;
      }
      if (inside(workspace, real) && real !== workspace) members.push(member);
    }
    if (members.length === 0) return { done: false, note: `cache ${key}: none of its paths exist` };
    await Deno.mkdir(dirname(archive), { recursive: true, mode: 0o700 });
    const temp = `${archive}.${crypto.randomUUID()}.tmp`;
    try {
      const made = await tar(["-c", "-f", temp, "-C", layout.workspace, "--", ...members]);
      if (!made.ok) return { done: false, note: `cache ${key} was not saved: ${made.error}` };
      const size = (await Deno.stat(temp)).size;
      if (size > this.#maxBytes) {
        return {
          done: false,
          note: `cache ${key} was not saved: ${mib(size)} is over the cache limit ` +
            `of ${mib(this.#maxBytes)} (--cache-max-mib)`,
        };
      }
      await Deno.rename(temp, archive);
      await this.#evict(archive);
      return { done: true, bytes: size, note: `saved cache ${key} (${mib(size)})` };
    } finally {
      await Deno.remove(temp).catch(() => {});
    }
  }

  /** Removes least recently used archives until all fit under the cap; `keep` goes last. */
  async #evict(keep: string): Promise<void> {
    const archives: { path: string; size: number; used: number }[] = [];
    const now = Date.now();
    for await (const repoDir of readDir(this.#dir)) {
      if (!repoDir.isDirectory) continue;
      for await (const entry of readDir(join(this.#dir, repoDir.name))) {
        const path = join(this.#dir, repoDir.name, entry.name);
        const info = await lstat(path);
        if (!info?.isFile) continue;
        const used = info.mtime?.getTime() ?? 0;
        if (entry.name.endsWith(".tmp")) {
          if (now - used > STALE_TEMP_MS) await Deno.remove(path).catch(() => {});
          continue;
        }
        archives.push({ path, size: info.size, used: path === keep ? Infinity : used });
      }
    }
    archives.sort((a, b) => a.used - b.used);
    let total = archives.reduce((sum, a) => sum + a.size, 0);
    for (const archive of archives) {
      if (total <= this.#maxBytes) break;
      await Deno.remove(archive.path).catch(() => {});
      total -= archive.size;
    }
  }
}

async function* readDir(path: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(path);
  } catch {
    // Not there yet.
  }
}

/**
 * Whether the folder `path`, or its nearest existing ancestor, resolves inside `root`. A
 * dangling symlink on the way counts as outside: creating folders through it would leave root.
 */
async function folderInside(path: string, root: string): Promise<boolean> {
  let probe = path;
  while (true) {
    if (await lstat(probe)) {
      try {
        return inside(root, await Deno.realPath(probe));
      } catch {
        return false;
      }
    }
    const up = dirname(probe);
    if (up === probe) return false;
    probe = up;
  }
}

async function tar(args: string[]): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    const out = await new Deno.Command("tar", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { LANG: "C", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      clearEnv: true,
    }).output();
    if (out.success) return { ok: true };
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    return { ok: false, error: lines.slice(-1)[0] || `tar exited ${out.code}` };
  } catch (error) {
    return { ok: false, error: `tar could not run (${(error as Error).message}): install tar` };
  }
}
