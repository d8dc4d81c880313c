/**
 * Fetching a job's code: git (branch, commit id, or any fetch refspec) and Mercurial. Every
 * ref and URL was validated by the protocol and is passed after `--`, so no value can become an
 * option. Credentials reach git only through askpass or a 0600 key file, never the command line.
 */
import { join } from "node:path";
import type { DispatchedJob, RepoAuth } from "../protocol/mod.ts";

/** Runs a VCS command, streaming its output into the job; returns exit code and stderr tail. */
export type VcsRunner = (
  program: string,
  args: string[],
  env: Record<string, string>,
) => Promise<{ exitCode: number; stderr: string; stdout: string }>;

/** What fetching produced: the checked-out commit, or a clear reason it failed. */
export type FetchOutcome = { ok: true; commit: string } | { ok: false; error: string };

/** Environment and files that carry repository credentials; `cleanup` removes the files. */
interface Credentials {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

const ASKPASS = `#!/bin/sh
case "$1" in
  Username*|username*) printf '%s\\n' "$STRIDER_GIT_USERNAME" ;;
  *) printf '%s\\n' "$STRIDER_GIT_PASSWORD" ;;
esac
`;

/** Characters that would let a value start a new line of an hgrc (and so any setting). */
const HGRC_UNSAFE = /[\r\n\0]/;

/**
 * Everything the VCS needs to authenticate, without a secret on any command line: an askpass
 * script reading the password from the environment (git over HTTP), a 0600 key file (ssh), and
 * for Mercurial, which reads neither, a private 0600 `~/.hgrc` with an `[auth]` section and
 * `ui.ssh`. Ssh always runs in batch mode: a job never waits on a prompt.
 */
async function credentialsFor(
  auth: RepoAuth | undefined,
  tmp: string,
  vcs: "git" | "hg",
): Promise<Credentials | { error: string }> {
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: "0" };
  const files: string[] = [];
  const cleanup = async () => {
    for (const file of files.reverse()) {
      await Deno.remove(file, { recursive: true }).catch(() => {});
    }
  };
  let ssh = "ssh -o BatchMode=yes";
  if (auth?.type === "https") {
    const askpass = join(tmp, "askpass.sh");
    await Deno.writeTextFile(askpass, ASKPASS, { mode: 0o700 });
    files.push(askpass);
    env.GIT_ASKPASS = askpass;
    env.STRIDER_GIT_USERNAME = auth.username;
    env.STRIDER_GIT_PASSWORD = auth.password;
  }
  if (auth?.type === "ssh") {
    const key = join(tmp, "id_key");
    const known = join(tmp, "known_hosts");
    await Deno.writeTextFile(key, auth.key.endsWith("\n") ? auth.key : auth.key + "\n", {
      mode: 0o600,
    });
    files.push(key, known);
    ssh = `ssh -i '${key}' -o IdentitiesOnly=yes -o BatchMode=yes ` +
      `-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile='${known}'`;
  }
  env.GIT_SSH_COMMAND = ssh;
  if (vcs === "hg") {
    const lines = ["[ui]", `ssh = ${ssh}`, "interactive = False"];
    if (auth?.type === "https") {
      if (HGRC_UNSAFE.test(auth.username) || HGRC_UNSAFE.test(auth.password)) {
        await cleanup();
        return { error: "repo.auth username and password must not contain line breaks" };
      }
      lines.push(
        "[auth]",
        "strider.prefix = *",
        "strider.schemes = http https",
        `strider.username = ${auth.username}`,
        `strider.password = ${auth.password}`,
      );
    }
    // A private HOME for hg alone: its ~/.hgrc carries the settings, the system's still apply.
    const home = join(tmp, "hg-home");
    await Deno.mkdir(home, { mode: 0o700 });
    files.push(home);
    await Deno.writeTextFile(join(home, ".hgrc"), lines.join("\n") + "\n", { mode: 0o600 });
    env.HOME = home;
  }
  return { env, cleanup };
}

/** Turns git's or hg's complaint into a sentence that says what went wrong. */
export function explainFetchFailure(stderr: string, what: string): string {
  const text = stderr.toLowerCase();
  if (
    text.includes("authentication failed") || text.includes("could not read username") ||
    text.includes("permission denied") || text.includes("http basic: access denied") ||
    text.includes("authorization failed") || text.includes("authorization required") ||
    text.includes("401")
  ) {
    return "authentication failed: check the job's repo.auth credentials";
  }
  if (text.includes("host key verification failed")) {
    return "the SSH server's host key could not be verified: add it to the worker's known_hosts " +
      "or give the job repo.auth";
  }
  if (text.includes("couldn't find remote ref") || text.includes("unknown revision")) {
    return `ref not found: ${what}`;
  }
  if (
    text.includes("not found") || text.includes("does not appear to be a git repository") ||
    text.includes("does not exist") || text.includes("repository not found") ||
    text.includes("no such file") || text.includes("not a mercurial repository") ||
    text.includes("repository") && text.includes("not")
  ) {
    return "repository not found: check repo.url";
  }
  const last = stderr.trim().split("\n").pop() ?? "";
  return `fetching the code failed${last ? `: ${last}` : ""}`;
}

function describeRef(job: DispatchedJob): string {
  const ref = job.ref;
  return "fetch" in ref ? ref.fetch : ref.id ? `${ref.branch} at ${ref.id}` : ref.branch;
}

/** The command people see for the fetch step (no credentials: the URL never carries any). */
export function fetchScreen(job: DispatchedJob): string {
  const ref = job.ref;
  if (job.repo.vcs === "hg" && "branch" in ref) {
    // The commands fetchHg runs, as run (`hg fetch` is an extension command, not this).
    return `hg clone --noupdate -- ${job.repo.url} src && ` +
      `hg update --clean --rev ${ref.id ?? ref.branch}`;
  }
  return `${job.repo.vcs === "hg" ? "hg" : "git"} fetch ${job.repo.url} ${describeRef(job)}`;
}

/** Where and how to fetch. */
export interface FetchOptions {
  /** The checkout folder; must not exist yet. */
  dir: string;
  /** A private folder for credential files, removed by the caller. */
  tmp: string;
  run: VcsRunner;
  /** Folder of per-repository git mirrors; without it every job clones afresh. */
  cacheDir?: string;
  /** Adds a line of explanation to the fetch's output. */
  note: (text: string) => void;
}

/** Fetches the job's code into `dir` (which must not exist yet) and checks out its ref. */
export async function fetchCode(job: DispatchedJob, options: FetchOptions): Promise<FetchOutcome> {
  const credentials = await credentialsFor(job.repo.auth, options.tmp, job.repo.vcs ?? "git");
  if ("error" in credentials) return { ok: false, error: credentials.error };
  try {
    return job.repo.vcs === "hg"
      ? await fetchHg(job, options, credentials.env)
      : await fetchGit(job, options, credentials.env);
  } finally {
    await credentials.cleanup();
  }
}

/** One fetch at a time per mirror: git's ref locks would fail a concurrent second one. */
const mirrorLocks = new Map<string, Promise<unknown>>();

async function withMirrorLock<T>(mirror: string, body: () => Promise<T>): Promise<T> {
  const before = mirrorLocks.get(mirror) ?? Promise.resolve();
  const mine = before.catch(() => {}).then(body);
  mirrorLocks.set(mirror, mine);
  try {
    return await mine;
  } finally {
    if (mirrorLocks.get(mirror) === mine) mirrorLocks.delete(mirror);
  }
}

/** The mirror cache folder for `url`: one bare repository per repository URL. */
async function mirrorPath(cacheDir: string, url: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return join(cacheDir, `${hex.slice(0, 32)}.git`);
}

/** The refspec that stores the job's ref in the mirror under its own name. */
function mirrorRefspec(ref: DispatchedJob["ref"]): string {
  if (!("fetch" in ref)) return `+refs/heads/${ref.branch}:refs/heads/${ref.branch}`;
  const [source, destination] = ref.fetch.replace(/^\+/, "").split(":");
  return `+${source}:${destination ?? source}`;
}

/**
 * Brings the job's ref (and commit) from the repository into the mirror, so that the checkout
 * fetches locally and a repeat job transfers only new objects.
 */
async function updateMirror(
  job: DispatchedJob,
  mirror: string,
  options: { run: VcsRunner; note: (text: string) => void },
  env: Record<string, string>,
): Promise<FetchOutcome | undefined> {
  const { run, note } = options;
  return await withMirrorLock(mirror, async () => {
    let fresh = false;
    try {
      await Deno.stat(join(mirror, "HEAD"));
    } catch {
      fresh = true;
      await Deno.mkdir(mirror, { recursive: true });
      const init = await run("git", ["init", "--bare", "-q", mirror], env);
      if (init.exitCode !== 0) {
        return { ok: false, error: `git init of the mirror cache failed: ${init.stderr.trim()}` };
      }
    }
    note(fresh ? "creating the mirror cache\n" : "updating the mirror cache\n");
    const ref = job.ref;
    const fetched = await run(
      "git",
      ["-C", mirror, "fetch", "--no-tags", "--", job.repo.url, mirrorRefspec(ref)],
      env,
    );
    if (fetched.exitCode !== 0) {
      const what = "fetch" in ref ? ref.fetch : `branch ${ref.branch}`;
      return { ok: false, error: explainFetchFailure(fetched.stderr, what) };
    }
    if ("branch" in ref && ref.id) {
      const known = await run("git", ["-C", mirror, "cat-file", "-e", `${ref.id}^{commit}`], env);
      if (known.exitCode !== 0) {
        // A commit no longer on the branch (force-pushed) can still be fetched by its id.
        const byId = await run(
          "git",
          ["-C", mirror, "fetch", "--no-tags", "--", job.repo.url, ref.id],
          env,
        );
        if (byId.exitCode !== 0) return { ok: false, error: `ref not found: commit ${ref.id}` };
      }
    }
    return undefined;
  });
}

async function fetchGit(
  job: DispatchedJob,
  { dir, run, cacheDir, note }: FetchOptions,
  env: Record<string, string>,
): Promise<FetchOutcome> {
  const git = (args: string[]) => run("git", ["-C", dir, ...args], env);
  let source = job.repo.url;
  if (cacheDir) {
    const mirror = await mirrorPath(cacheDir, job.repo.url);
    const failed = await updateMirror(job, mirror, { run, note }, env);
    if (failed) return failed;
    source = mirror;
  }
  const init = await run("git", ["init", "-q", "--template=", dir], env);
  if (init.exitCode !== 0) return { ok: false, error: `git init failed: ${init.stderr.trim()}` };
  if (source !== job.repo.url) {
    // Borrowing the mirror's objects makes the checkout's fetch nearly free.
    await Deno.writeTextFile(
      join(dir, ".git", "objects", "info", "alternates"),
      join(source, "objects") + "\n",
    );
  }
  const ref = job.ref;
  let target: string;
  if ("fetch" in ref) {
    const fetched = await git(["fetch", "--no-tags", "--", source, ref.fetch]);
    if (fetched.exitCode !== 0) {
      return { ok: false, error: explainFetchFailure(fetched.stderr, ref.fetch) };
    }
    target = "FETCH_HEAD";
  } else {
    const tracking = `refs/remotes/origin/${ref.branch}`;
    const fetched = await git([
      "fetch",
      "--no-tags",
      "--",
      source,
      `+refs/heads/${ref.branch}:${tracking}`,
    ]);
    if (fetched.exitCode !== 0) {
      return { ok: false, error: explainFetchFailure(fetched.stderr, `branch ${ref.branch}`) };
    }
    target = tracking;
    if (ref.id) {
      const known = await git(["cat-file", "-e", `${ref.id}^{commit}`]);
      if (known.exitCode !== 0) {
        const byId = await git(["fetch", "--no-tags", "--", source, ref.id]);
        if (byId.exitCode !== 0) return { ok: false, error: `ref not found: commit ${ref.id}` };
      }
      target = ref.id;
    }
  }
  const checkout = await git(["checkout", "-q", "--detach", target]);
  if (checkout.exitCode !== 0) {
    return {
      ok: false,
      error: `checkout of ${describeRef(job)} failed: ${checkout.stderr.trim()}`,
    };
  }
  try {
    await Deno.stat(join(dir, ".gitmodules"));
    const submodules = await git(["submodule", "update", "--init", "--recursive"]);
    if (submodules.exitCode !== 0) {
      return { ok: false, error: `submodules failed: ${submodules.stderr.trim()}` };
    }
  } catch {
    // No submodules.
  }
  // A detached HEAD holds the commit id itself: no process needed to read it.
  const head = (await Deno.readTextFile(join(dir, ".git", "HEAD"))).trim();
  if (/^[0-9a-f]{40,64}$/.test(head)) return { ok: true, commit: head };
  const parsed = await git(["rev-parse", "HEAD"]);
  return { ok: true, commit: parsed.stdout.trim() };
}

async function fetchHg(
  job: DispatchedJob,
  { dir, run }: FetchOptions,
  env: Record<string, string>,
): Promise<FetchOutcome> {
  const ref = job.ref;
  if ("fetch" in ref) {
    return {
      ok: false,
      error: "Mercurial repositories take ref {branch, id}, not a fetch refspec",
    };
  }
  const cloned = await run("hg", ["clone", "--noupdate", "--", job.repo.url, dir], env);
  if (cloned.exitCode !== 0) {
    return { ok: false, error: explainFetchFailure(cloned.stderr, `branch ${ref.branch}`) };
  }
  const rev = ref.id ?? ref.branch;
  const updated = await run("hg", ["--cwd", dir, "update", "--clean", "--rev", rev], env);
  if (updated.exitCode !== 0) return { ok: false, error: `ref not found: ${describeRef(job)}` };
  const id = await run("hg", ["--cwd", dir, "id", "--id", "--debug"], env);
  return { ok: true, commit: id.stdout.trim().replace(/\+$/, "") };
}
