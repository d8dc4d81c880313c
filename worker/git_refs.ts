/**
 * Which commit a ref names, found without starting a process: read from a local repository's
 * files, or asked of a smart-HTTP server with one protocol-v2 `ls-refs` request. A repeat job
 * whose mirror already holds that commit then needs no `git fetch` (a process, a remote helper, a
 * credential helper and three HTTP requests). Over HTTP(S) the same request is the job's proof
 * that it may read the repository, which the mirror (shared by every job of that URL) cannot give.
 * Every other answer is only a shortcut: `unknown` means "ask git", which then reports any error
 * as before.
 */
import { join } from "node:path";
import type { RepoAuth } from "../protocol/mod.ts";

const OID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/**
 * The commit `name` (a full `refs/...` name) points at in the repository whose git folder is
 * `gitDir`: its loose ref file, else its line in `packed-refs`. Anything else (a symbolic ref,
 * another ref storage) is `undefined`.
 */
export async function readRef(gitDir: string, name: string): Promise<string | undefined> {
  try {
    const loose = (await Deno.readTextFile(join(gitDir, name))).trim();
    return OID.test(loose) ? loose : undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return undefined;
  }
  try {
    const packed = await Deno.readTextFile(join(gitDir, "packed-refs"));
    for (const line of packed.split("\n")) {
      const space = line.indexOf(" ");
      if (space > 0 && line.slice(space + 1) === name) {
        const id = line.slice(0, space);
        return OID.test(id) ? id : undefined;
      }
    }
  } catch {
    // No packed refs.
  }
  return undefined;
}

/**
 * Whether the object folder `objects` holds object `id`: a loose file, or an entry of a pack
 * index (version 2; only the fanout table and the one slice of names that can hold `id` are
 * read). `undefined` when that cannot be told (an index of another version).
 */
export async function hasObject(objects: string, id: string): Promise<boolean | undefined> {
  if (!OID.test(id)) return false;
  if (await isFile(join(objects, id.slice(0, 2), id.slice(2)))) return true;
  const size = id.length / 2;
  const want = new Uint8Array(size);
  for (let i = 0; i < size; i++) want[i] = parseInt(id.slice(i * 2, i * 2 + 2), 16);
  let unsure = false;
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(join(objects, "pack"))) names.push(entry.name);
  } catch {
    return false;
  }
  for (const name of names.filter((n) => n.endsWith(".idx"))) {
    const found = await inPackIndex(join(objects, "pack", name), want).catch(() => undefined);
    if (found) return true;
    if (found === undefined) unsure = true;
  }
  return unsure ? undefined : false;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Reads exactly `length` bytes at `offset` of `file`. */
async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) throw new Error("short pack index");
    got += n;
  }
  return out;
}

/** Whether the version-2 pack index at `path` lists `want`; `undefined` for other versions. */
async function inPackIndex(path: string, want: Uint8Array): Promise<boolean | undefined> {
  const file = await Deno.open(path);
  try {
    const head = await readAt(file, 0, 8 + 256 * 4);
    const view = new DataView(head.buffer);
    if (view.getUint32(0) !== 0xff744f63 || view.getUint32(4) !== 2) return undefined;
    const first = want[0] === 0 ? 0 : view.getUint32(8 + (want[0] - 1) * 4);
    const end = view.getUint32(8 + want[0] * 4);
    if (end <= first) return false;
    const size = want.length;
    const slice = await readAt(file, 8 + 256 * 4 + first * size, (end - first) * size);
    let lo = 0;
    let hi = end - first;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      let order = 0;
      for (let i = 0; i < size && order === 0; i++) order = slice[mid * size + i] - want[i];
      if (order === 0) return true;
      if (order < 0) lo = mid + 1;
      else hi = mid;
    }
    return false;
  } finally {
    file.close();
  }
}

/** The git folder of the local repository at `url` (a path or `file://`), if it is one. */
async function localGitDir(url: string): Promise<string | undefined> {
  let path = url;
  if (url.startsWith("file://")) {
    try {
      const parsed = new URL(url);
      if (parsed.host !== "" && parsed.host !== "localhost") return undefined;
      path = decodeURIComponent(parsed.pathname);
    } catch {
      return undefined;
    }
  }
  if (!path.startsWith("/")) return undefined;
  // A work tree's `.git` folder, else a bare repository (a `.git` file, a worktree: ask git).
  for (const dir of [join(path, ".git"), path]) {
    try {
      if ((await Deno.stat(join(dir, "HEAD"))).isFile) return dir;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** One pkt-line: four hex digits of length (itself included), then the data. */
function pkt(data: string): string {
  return (data.length + 4).toString(16).padStart(4, "0") + data;
}

/**
 * The refs of an `ls-refs` answer (protocol v2: `<oid> <name>` pkt-lines ending in a flush), or
 * `undefined` when the answer is anything else (an `ERR`, a server speaking only v0, a cut).
 */
export function parseLsRefs(body: Uint8Array): Map<string, string> | undefined {
  const text = new TextDecoder().decode(body);
  const refs = new Map<string, string>();
  let at = 0;
  while (at + 4 <= text.length) {
    const size = parseInt(text.slice(at, at + 4), 16);
    if (!/^[0-9a-f]{4}$/.test(text.slice(at, at + 4)) || Number.isNaN(size)) return undefined;
    if (size === 0) return at + 4 === text.length ? refs : undefined;
    if (size < 5 || at + size > text.length) return undefined;
    const line = text.slice(at + 4, at + size).replace(/\n$/, "");
    const [id, name] = line.split(" ");
    if (!OID.test(id) || !name) return undefined;
    refs.set(name, id);
    at += size;
  }
  return undefined;
}

/**
 * The body of `response`, or `undefined` past `limit` bytes (the rest is not read: a server that
 * sends without end costs the worker no memory).
 */
async function readCapped(response: Response, limit: number): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  if (!reader) return new Uint8Array();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** An answer about one ref is a line or two; anything this long is not one. */
const ANSWER_LIMIT = 64 * 1024;

/** Repositories that could not be asked (no v2, a proxy, a certificate): until when. */
const unreachable = new Map<string, number>();
const FORGET_MS = 10 * 60_000;
const PROBE_TIMEOUT_MS = 10_000;

/**
 * What a repository said about a ref. `answered`: it answered this job's request (`id` is
 * `undefined` when it has no such ref), so the job can read it. `refused`: it turned the job's
 * credential (or its lack of one) away with 401 or 403. `unknown`: it could not be told this way
 * (ssh, a server without protocol v2, a redirect, a 404 as dumb-HTTP servers give, the network):
 * git must be asked, with the job's credential.
 */
export type RefAnswer =
  | { kind: "answered"; id: string | undefined }
  | { kind: "refused"; status: number }
  | { kind: "unknown" };

const UNKNOWN: RefAnswer = { kind: "unknown" };

/**
 * Asks the smart-HTTP server at `url` which commit `name` names: one `POST git-upload-pack` with
 * protocol v2's `ls-refs`, limited to that ref. The credential goes, as git would send it, in an
 * `Authorization` header to the repository's own URL, and nowhere else: redirects are not
 * followed (git is asked instead, with its own rules).
 */
async function askHttp(
  url: string,
  name: string,
  auth: RepoAuth | undefined,
  signal?: AbortSignal,
): Promise<RefAnswer> {
  if ((unreachable.get(url) ?? 0) > Date.now()) return UNKNOWN;
  const headers: Record<string, string> = {
    "content-type": "application/x-git-upload-pack-request",
    "accept": "application/x-git-upload-pack-result",
    "git-protocol": "version=2",
    // Some forges serve the smart protocol only to a git user agent.
    "user-agent": "git/2-strider",
  };
  if (auth?.type === "https") {
    const pair = new TextEncoder().encode(`${auth.username}:${auth.password}`);
    headers.authorization = `Basic ${btoa(String.fromCharCode(...pair))}`;
  }
  const body = pkt("command=ls-refs\n") + "0001" + pkt(`ref-prefix ${name}\n`) + "0000";
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
  try {
    const response = await fetch(`${url.replace(/\/+$/, "")}/git-upload-pack`, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel().catch(() => {});
      // Not remembered: the next job may have a credential that works.
      return { kind: "refused", status: response.status };
    }
    const data = await readCapped(response, ANSWER_LIMIT);
    const type = response.headers.get("content-type") ?? "";
    const refs = data && response.status === 200 &&
        type.startsWith("application/x-git-upload-pack-result")
      ? parseLsRefs(data)
      : undefined;
    if (refs) return { kind: "answered", id: refs.get(name) };
    // A server that cannot answer this way will not learn to soon: ask git for a while. Not
    // for a 404, which a forge gives a job that may not see the repository (git then says so)
    // and which must not slow down the jobs that may.
    if (response.status !== 404) unreachable.set(url, Date.now() + FORGET_MS);
    return UNKNOWN;
  } catch {
    if (!signal?.aborted) unreachable.set(url, Date.now() + FORGET_MS);
    return UNKNOWN;
  }
}

/**
 * Whether `resolveRemoteRef` may answer for `url`: a local repository, or an HTTP(S) one whose
 * server did not fail the question lately. For others a speculative checkout would be wasted.
 */
export function canAsk(url: string): boolean {
  if (isHttpUrl(url)) return (unreachable.get(url) ?? 0) <= Date.now();
  return isLocalUrl(url);
}

/** Whether `url` is a path on the worker (or `file://`), read with the worker's own access. */
export function isLocalUrl(url: string): boolean {
  return url.startsWith("/") || url.startsWith("file://");
}

/**
 * What the repository at `url` says `name` (a full `refs/...` name) points at, found without a
 * process: for HTTP(S) one `ls-refs` request with the job's credential, which also tells whether
 * this job may read the repository at all; for a local path its ref files (a ref that cannot be
 * read there is `unknown`); anything else (ssh, git://) is `unknown`, so that git is asked. Never
 * rejects: it runs while the checkout's folder is written.
 */
export async function resolveRemoteRef(
  url: string,
  name: string,
  auth: RepoAuth | undefined,
  signal?: AbortSignal,
): Promise<RefAnswer> {
  try {
    if (isHttpUrl(url)) return await askHttp(url, name, auth, signal);
    const gitDir = await localGitDir(url);
    const id = gitDir ? await readRef(gitDir, name) : undefined;
    return id ? { kind: "answered", id } : UNKNOWN;
  } catch {
    // Never a reason to fail the fetch: git is asked instead.
    return UNKNOWN;
  }
}

/** Whether `url` is fetched over HTTP(S), where the server decides who may read. */
export function isHttpUrl(url: string): boolean {
  return /^https?:\/\//i.test(url);
}
