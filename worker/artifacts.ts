/**
 * A job's artifacts on the worker: the checkout's files matching the job's patterns, each sent
 * to the queen with its SHA-256 and the attempt's lease token (`PUT
 * /worker/artifacts/:id/:attempt?path=P`, `x-strider-lease`): the queen keeps a file only for the
 * attempt that token proves, never on the worker token alone. Only regular
 * files are sent; a symlink is followed only when it resolves to a file inside the checkout,
 * folders behind symlinks are never entered, and `.git`/`.hg` are never looked at.
 */
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import { artifactPathProblem } from "../protocol/mod.ts";
import { type Backoff, backoff } from "../protocol/backoff.ts";

/** Files one job may send (past it, a note says how many were left out). */
export const MAX_ARTIFACT_FILES = 10_000;

/** Turns a pattern into a test of checkout-relative paths. */
export function artifactMatcher(patterns: string[]): (path: string) => boolean {
  const tests = patterns.map((pattern) => {
    if (pattern.endsWith("/")) return (path: string) => path.startsWith(pattern);
    if (!/[*?]/.test(pattern)) {
      return (path: string) => path === pattern || path.startsWith(pattern + "/");
    }
    let source = "";
    for (let i = 0; i < pattern.length; i++) {
      const char = pattern[i];
      if (char === "*" && pattern[i + 1] === "*") {
        const slash = pattern[i + 2] === "/";
        source += slash ? "(?:.*/)?" : ".*";
        i += slash ? 2 : 1;
      } else if (char === "*") source += "[^/]*";
      else if (char === "?") source += "[^/]";
      else source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    const regex = new RegExp(`^${source}$`);
    return (path: string) => regex.test(path);
  });
  return (path) => tests.some((test) => test(path));
}

/** A file to send: its path in the checkout and where to read it. */
export interface FoundArtifact {
  path: string;
  file: string;
}

/** The files of `src` that `patterns` match, and notes about what was left out and why. */
export async function findArtifacts(
  src: string,
  patterns: string[],
): Promise<{ found: FoundArtifact[]; notes: string[] }> {
  const matches = artifactMatcher(patterns);
  const root = await Deno.realPath(src);
  const found: FoundArtifact[] = [];
  const notes: string[] = [];
  let over = 0;
  const walk = async (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const entry of entries) {
      const full = join(dir, entry.name);
      const path = relative(src, full);
      if (entry.isDirectory) {
        if (dir === src && (entry.name === ".git" || entry.name === ".hg")) continue;
        await walk(full);
        continue;
      }
      if (!matches(path)) continue;
      if (artifactPathProblem(path)) {
        notes.push(`left out '${path}': not a name the queen can keep`);
        continue;
      }
      let file = full;
      if (entry.isSymlink) {
        let real: string;
        try {
          real = await Deno.realPath(full);
        } catch {
          notes.push(`left out '${path}': a symlink to nothing`);
          continue;
        }
        if (!real.startsWith(root + "/")) {
          notes.push(`left out '${path}': a symlink out of the checkout (not followed)`);
          continue;
        }
        if (!(await Deno.stat(real)).isFile) continue;
        file = real;
      } else if (!entry.isFile) continue;
      if (found.length >= MAX_ARTIFACT_FILES) {
        over++;
        continue;
      }
      found.push({ path, file });
    }
  };
  await walk(src);
  if (over) notes.push(`left out ${over} more files: at most ${MAX_ARTIFACT_FILES} per job`);
  return { found, notes };
}

/** The SHA-256 of a file, read as a stream. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  using handle = await Deno.open(file);
  for await (const chunk of handle.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Sends files to the queen for one attempt of one job. */
export interface ArtifactSender {
  /** Sends one file; `signal` (the job being cancelled) stops it. */
  send(job: string, attempt: number, artifact: FoundArtifact, signal?: AbortSignal): Promise<void>;
}

/** One file's send may take this long: a queen that stops reading must not hold the job. */
const SEND_TIMEOUT_MS = 15 * 60_000;

/** Statuses worth another try: the queen restarting, the worker reconnecting, overload. */
const RETRYABLE = new Set([409, 429, 500, 502, 503, 504]);

/** Sends over HTTP with the worker token, retrying with backoff what can pass on its own. */
export function httpArtifactSender(options: {
  /** The queen's base URL, or where the connection is now (several queens). */
  queen: string | (() => string);
  token: string;
  /** The lease token `queue:new` gave for the attempt, while this worker holds it. */
  lease: (job: string, attempt: number) => string | undefined;
  client?: Deno.HttpClient;
  /** Waits between tries; the default backs off from 1 s to 16 s, five retries. */
  retry?: Backoff;
}): ArtifactSender {
  const retry = options.retry ?? { minMs: 1_000, maxMs: 16_000, tries: 5 };
  return {
    async send(job, attempt, artifact, signal) {
      const lease = options.lease(job, attempt);
      if (!lease) throw new Error(`this worker holds no lease token for attempt ${attempt}`);
      const sha256 = await fileSha256(artifact.file);
      const url = new URL(
        `/worker/artifacts/${encodeURIComponent(job)}/${attempt}`,
        typeof options.queen === "string" ? options.queen : options.queen(),
      );
      url.searchParams.set("path", artifact.path);
      for (let tries = 0;; tries++) {
        let status = 0;
        let why = "";
        try {
          using handle = await Deno.open(artifact.file);
          const response = await fetch(url, {
            method: "PUT",
            headers: {
              authorization: `Bearer ${options.token}`,
              "x-strider-lease": lease,
              "x-strider-sha256": sha256,
              "content-type": "application/octet-stream",
            },
            body: handle.readable,
            client: options.client,
            signal: signal
              ? AbortSignal.any([signal, AbortSignal.timeout(SEND_TIMEOUT_MS)])
              : AbortSignal.timeout(SEND_TIMEOUT_MS),
          });
          status = response.status;
          const text = await response.text();
          if (response.ok) return;
          why = (() => {
            try {
              return JSON.parse(text).error ?? text;
            } catch {
              return text;
            }
          })();
        } catch (error) {
          if (signal?.aborted) throw new Error("the job was stopped");
          why = (error as Error).message;
        }
        const delay = backoff(tries, retry);
        if ((status !== 0 && !RETRYABLE.has(status)) || delay === undefined) {
          throw new Error(status ? `the queen refused it (${status}): ${why}` : why);
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    },
  };
}
