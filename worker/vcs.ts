/**
 * Fetching a job's code: git (branch, commit id, or any fetch refspec) and Mercurial. Every
 * ref and URL was validated by the protocol and is passed after `--`, so no value can become an
 * option. Credentials reach git only through a credential helper or a 0600 key file offered to the
 * repository's own host, never a command line, and are gone when the fetch is over.
 */
import { join } from "node:path";
import type { DispatchedJob, RepoAuth } from "../protocol/mod.ts";
import { hex } from "../protocol/hex.ts";
import { canAsk, hasObject, isHttpUrl, isLocalUrl, readRef, resolveRemoteRef } from "./git_refs.ts";
import type { RefAnswer } from "./git_refs.ts";

/** Runs a VCS command, streaming its output into the job; returns exit code and stderr tail. */
export type VcsRunner = (
  program: string,
  args: string[],
  env: Record<string, string>,
) => Promise<{ exitCode: number; stderr: string; stdout: string }>;

/** What fetching produced: the checked-out commit, or a clear reason it failed. */
export type FetchOutcome =
  /** `objects`: the mirror's object folder the checkout borrows from, when it does. */
  | { ok: true; commit: string; objects?: string }
  | { ok: false; error: string };

/** Environment and files that carry repository credentials; `cleanup` removes the files. */
interface Credentials {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/**
 * A git credential helper (a shell snippet in git's config, so no file holds it) that answers
 * only when git asks for the repository's own scheme and host (with port): a submodule or a
 * redirect to another host gets `quit`, never the password. The values come from the fetch's
 * environment, which job commands never get.
 */
const CREDENTIAL_HELPER = '!f() { test "$1" = get || return 0; p=; h=; ' +
  'while IFS= read -r l && test -n "$l"; do case "$l" in ' +
  "protocol=*) p=${l#protocol=};; host=*) h=${l#host=};; esac; done; " +
  'if test "$p" = "$STRIDER_GIT_PROTOCOL" && test "$h" = "$STRIDER_GIT_HOST"; then ' +
  'printf \'username=%s\\npassword=%s\\n\' "$STRIDER_GIT_USERNAME" "$STRIDER_GIT_PASSWORD"; ' +
  "else echo quit=1; fi; }; f";

/**
 * The ssh command for git and hg: the job's key only when ssh is asked to reach the repository's
 * own `[user@]host` and port (the two arguments before the remote command, and `-p`); any
 * other host (a submodule elsewhere) is reached without it.
 */
const SSH_WRAPPER = `#!/bin/sh
port=
prev=
for arg in "$@"; do
  [ "$prev" = "-p" ] && port=$arg
  prev=$arg
done
eval "dest=\\\${$(($# - 1))}"
if [ -n "$STRIDER_SSH_KEY" ] && [ "$dest" = "$STRIDER_SSH_DEST" ] && [ "$port" = "$STRIDER_SSH_PORT" ]; then
  exec ssh -i "$STRIDER_SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \\
    -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$STRIDER_SSH_KNOWN" "$@"
fi
exec ssh -o BatchMode=yes "$@"
`;

/** Characters that would let a value start a new line of an hgrc or a credential answer. */
const LINE_UNSAFE = /[\r\n\0]/;

/** Where a repository URL points: scheme, `host[:port]` as written, and for ssh user and port. */
export function repoOrigin(
  url: string,
): { scheme: string; host: string; sshDest: string; sshPort: string } | undefined {
  const full = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/]*)@)?([^/?#]+)/i.exec(url);
  if (full) {
    const [, scheme, user, host] = full;
    const port = /:(\d+)$/.exec(host)?.[1] ?? "";
    const bare = port ? host.slice(0, -(port.length + 1)) : host;
    const sshDest = user ? `${user.replace(/:.*/, "")}@${bare}` : bare;
    return { scheme: scheme.toLowerCase(), host, sshDest, sshPort: port };
  }
  // scp-like `[user@]host:path`: ssh on its default port.
  const scp = /^((?:[^@/:]+@)?[^/:]+):/.exec(url);
  if (scp) return { scheme: "ssh", host: scp[1].replace(/^.*@/, ""), sshDest: scp[1], sshPort: "" };
  return undefined;
}

/**
 * Everything the VCS needs to authenticate, offered only to the repository's own host and never
 * on a command line or in the job's environment: for git over HTTP a credential helper that
 * checks who asks; for ssh a 0600 key file used through a wrapper that checks the host; for
 * Mercurial, which reads neither, a private 0600 `~/.hgrc` whose `[auth]` prefix is the
 * repository's scheme, host and port. Ssh always runs in batch mode: a job never waits on a
 * prompt. Every file is removed once the fetch is over.
 */
async function credentialsFor(
  url: string,
  auth: RepoAuth | undefined,
  tmp: string,
  vcs: "git" | "hg",
): Promise<Credentials | { error: string }> {
  const origin = repoOrigin(url);
  const env: Record<string, string> = {
    GIT_TERMINAL_PROMPT: "0",
    // Only our helper may answer (an empty value drops any the system configures), local and
    // ext transports stay off for submodules whatever the system's git says.
    GIT_CONFIG_COUNT: "4",
    GIT_CONFIG_KEY_0: "credential.helper",
    GIT_CONFIG_VALUE_0: "",
    GIT_CONFIG_KEY_1: "credential.helper",
    GIT_CONFIG_VALUE_1: auth?.type === "https" ? CREDENTIAL_HELPER : "",
    GIT_CONFIG_KEY_2: "protocol.file.allow",
    GIT_CONFIG_VALUE_2: "user",
    GIT_CONFIG_KEY_3: "protocol.ext.allow",
    GIT_CONFIG_VALUE_3: "never",
  };
  const files: string[] = [];
  const cleanup = async () => {
    for (const file of files.reverse()) {
      await Deno.remove(file, { recursive: true }).catch(() => {});
    }
  };
  if (auth?.type === "https") {
    if (LINE_UNSAFE.test(auth.username) || LINE_UNSAFE.test(auth.password)) {
      return { error: "repo.auth username and password must not contain line breaks" };
    }
    if (!origin || (origin.scheme !== "http" && origin.scheme !== "https")) {
      return { error: "repo.auth of type https needs an http:// or https:// repo.url" };
    }
    env.STRIDER_GIT_PROTOCOL = origin.scheme;
    env.STRIDER_GIT_HOST = origin.host;
    env.STRIDER_GIT_USERNAME = auth.username;
    env.STRIDER_GIT_PASSWORD = auth.password;
  }
  const wrapper = join(tmp, "ssh-wrapper.sh");
  await Deno.writeTextFile(wrapper, SSH_WRAPPER, { mode: 0o700 });
  files.push(wrapper);
  if (auth?.type === "ssh") {
    if (!origin || origin.scheme !== "ssh") {
      return await cleanup().then(() => ({
        error: "repo.auth of type ssh needs an ssh:// or user@host:path repo.url",
      }));
    }
    const key = join(tmp, "id_key");
    const known = join(tmp, "known_hosts");
    await Deno.writeTextFile(key, auth.key.endsWith("\n") ? auth.key : auth.key + "\n", {
      mode: 0o600,
    });
    files.push(key, known);
    env.STRIDER_SSH_KEY = key;
    env.STRIDER_SSH_KNOWN = known;
    env.STRIDER_SSH_DEST = origin.sshDest;
    env.STRIDER_SSH_PORT = origin.sshPort;
  }
  // The wrapper is not called "ssh": say which options it takes.
  env.GIT_SSH_COMMAND = `'${wrapper.replaceAll("'", `'\\''`)}'`;
  env.GIT_SSH_VARIANT = "ssh";
  if (vcs === "hg") {
    const lines = ["[ui]", `ssh = ${env.GIT_SSH_COMMAND}`, "interactive = False"];
    if (auth?.type === "https" && origin) {
      lines.push(
        "[auth]",
        // hg matches the prefix against `host[:port]/path`; the slash keeps :80 from :8080.
        `strider.prefix = ${origin.scheme}://${origin.host}/`,
        `strider.schemes = ${origin.scheme}`,
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
    text.includes("401") || text.includes("returned error: 403")
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
  /** Ends the worker's own ref lookup (not a process) when the job is cancelled. */
  signal?: AbortSignal;
}

/** Fetches the job's code into `dir` (which must not exist yet) and checks out its ref. */
export async function fetchCode(job: DispatchedJob, options: FetchOptions): Promise<FetchOutcome> {
  const credentials = await credentialsFor(
    job.repo.url,
    job.repo.auth,
    options.tmp,
    job.repo.vcs ?? "git",
  );
  if ("error" in credentials) return { ok: false, error: credentials.error };
  try {
    const outcome = job.repo.vcs === "hg"
      ? await fetchHg(job, options, credentials.env)
      : await fetchGit(job, options, credentials.env);
    // A failed fetch leaves no checkout behind (not even one that borrows the mirror's objects)
    // for the cleanup phase, which runs all the same.
    if (!outcome.ok) await Deno.remove(options.dir, { recursive: true }).catch(() => {});
    return outcome;
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
  return join(cacheDir, `${hex(digest).slice(0, 32)}.git`);
}

/** The job's ref in the repository, and where the mirror stores it (under its own name). */
function mirrorRefs(ref: DispatchedJob["ref"]): { source: string; stored: string } {
  if (!("fetch" in ref)) {
    return { source: `refs/heads/${ref.branch}`, stored: `refs/heads/${ref.branch}` };
  }
  const [source, destination] = ref.fetch.replace(/^\+/, "").split(":");
  return { source, stored: destination ?? source };
}

/** The commit a `git fetch` just brought, from the first line of its FETCH_HEAD. */
async function fetchedCommit(gitDir: string): Promise<string | undefined> {
  try {
    const first = (await Deno.readTextFile(join(gitDir, "FETCH_HEAD"))).split("\n", 1)[0];
    const id = first.split("\t", 1)[0];
    return /^[0-9a-f]{40,64}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Brings the job's ref from the repository into the mirror, so that a repeat job transfers only
 * new objects; resolves to the commit the ref points at. When the worker can tell that commit
 * itself (a local repository's files, one `ls-refs` request over HTTP) and the mirror's copy of
 * the ref already names it, no process runs; otherwise one git process when the mirror exists.
 * A force-pushed ref names another commit, so it is fetched anew. A repository that refused the
 * job's credential is fetched by git, with that credential: git then decides.
 */
async function updateMirror(
  job: DispatchedJob,
  mirror: string,
  options: { run: VcsRunner; note: (text: string) => void; signal?: AbortSignal },
  env: Record<string, string>,
  /** What the repository says the ref names, when already asked. */
  asked?: Promise<RefAnswer>,
): Promise<{ ok: false; error: string } | { ok: true; tip: string }> {
  const { run, note } = options;
  const { source, stored } = mirrorRefs(job.ref);
  const [answer, mirrored] = await Promise.all([
    asked ?? resolveRemoteRef(job.repo.url, source, job.repo.auth, options.signal),
    readRef(mirror, stored),
  ]);
  const remote = answer.kind === "answered" ? answer.id : undefined;
  if (remote && mirrored === remote) {
    note(`the mirror cache has ${source} at ${remote}: nothing to fetch\n`);
    return { ok: true, tip: remote };
  }
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
      ["-C", mirror, "fetch", "--no-tags", "--", job.repo.url, `+${source}:${stored}`],
      env,
    );
    if (fetched.exitCode !== 0) {
      const what = "fetch" in ref ? ref.fetch : `branch ${ref.branch}`;
      return { ok: false, error: explainFetchFailure(fetched.stderr, what) };
    }
    // FETCH_HEAD names what was just fetched: no `rev-parse` process needed.
    let tip = await fetchedCommit(mirror);
    if (!tip) {
      const parsed = await run("git", ["-C", mirror, "rev-parse", "FETCH_HEAD"], env);
      tip = parsed.stdout.trim();
    }
    return { ok: true, tip };
  });
}

/** Fetches a commit the mirror lacks (no longer on its branch) by its id. */
async function fetchIntoMirror(
  job: DispatchedJob,
  mirror: string,
  run: VcsRunner,
  env: Record<string, string>,
  id: string,
): Promise<boolean> {
  return await withMirrorLock(mirror, async () => {
    const byId = await run(
      "git",
      ["-C", mirror, "fetch", "--no-tags", "--", job.repo.url, id],
      env,
    );
    return byId.exitCode === 0;
  });
}

/**
 * What `git init --template=` writes, without a process: a repository with no hooks and, when
 * `objects` is given, borrowing that object folder (the mirror's) so nothing is copied. The
 * files are written at once: on this slow disk each one waits its turn otherwise.
 */
async function initCheckout(dir: string, objects?: string): Promise<void> {
  const git = join(dir, ".git");
  await Deno.mkdir(join(git, "objects", "info"), { recursive: true });
  await Promise.all([
    Deno.mkdir(join(git, "refs")),
    Deno.writeTextFile(join(git, "HEAD"), "ref: refs/heads/main\n"),
    Deno.writeTextFile(
      join(git, "config"),
      "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n" +
        "\tlogallrefupdates = true\n",
    ),
    objects && Deno.writeTextFile(join(git, "objects", "info", "alternates"), objects + "\n"),
  ]);
}

/**
 * Points `ref` (a name the protocol validated) at `commit`, as the only line of `packed-refs`:
 * one file to write, where a loose ref needs its folders made first. No header: git then peels
 * the ref itself should it name a tag.
 */
async function writeRef(dir: string, ref: string, commit: string): Promise<void> {
  await Deno.writeTextFile(join(dir, ".git", "packed-refs"), `${commit} ${ref}\n`);
}

/**
 * With a mirror: at most one git process to update it (none when the mirror already has the
 * commit and, over HTTP(S), the job's one `ls-refs` request was answered), and one to check out, in a checkout that borrows the mirror's objects and whose refs
 * are written directly. Without: init, fetch and checkout.
 */
async function fetchGit(
  job: DispatchedJob,
  { dir, run, cacheDir, note, signal }: FetchOptions,
  env: Record<string, string>,
): Promise<FetchOutcome> {
  const git = (args: string[]) => run("git", ["-C", dir, ...args], env);
  const ref = job.ref;
  let target: string;
  let objects: string | undefined;
  if (cacheDir) {
    const mirror = await mirrorPath(cacheDir, job.repo.url);
    objects = join(mirror, "objects");
    const id = "branch" in ref ? ref.id : undefined;
    const { source, stored } = mirrorRefs(ref);
    // The mirror is shared by every job of the URL, whoever fetched into it, so a job uses its
    // content only once it has shown it may read the repository itself. Over HTTP(S) the server
    // decides: every job, a pinned one too, asks with its own credential, and nothing of the
    // mirror's reaches its checkout before the server has answered it. For a local path the
    // worker's own filesystem access decides, and the lookup is only a shortcut, run while the
    // checkout's folder is written (the mirror's copy of the ref is checked out meanwhile: usually
    // the answer). Over ssh and git:// git always fetches first, with the job's key.
    const http = isHttpUrl(job.repo.url);
    const asked = http || (!id && canAsk(job.repo.url))
      ? resolveRemoteRef(job.repo.url, source, job.repo.auth, signal)
      : undefined;
    const [, mirrored] = await Promise.all([
      initCheckout(dir, objects),
      asked && !id ? readRef(mirror, stored) : undefined,
    ]);
    const answer = http ? await asked : undefined;
    if (answer?.kind === "refused" && !job.repo.auth) {
      // git would send the same request, without a credential too, and fail the same way.
      return {
        ok: false,
        error: `authentication failed: the repository answered HTTP ${answer.status} to a job ` +
          "without credentials; give the job repo.auth",
      };
    }
    // A refused credential, a server that cannot be asked this way: git fetches, with the job's
    // credential, and its success is the proof (a public repository lets git in anonymously).
    const proven = http ? answer?.kind === "answered" : isLocalUrl(job.repo.url);
    // The ref the checkout would have had from fetching the job's ref itself.
    const tracking = "fetch" in ref
      ? ref.fetch.replace(/^\+/, "").split(":")[1]
      : `refs/remotes/origin/${ref.branch}`;
    // Forced: a checkout may follow one of another commit (the mirror's copy was old).
    const checkout = (commit: string) => git(["checkout", "-q", "-f", "--detach", commit]);
    let checkedOut: Awaited<ReturnType<typeof checkout>> | undefined;
    // A commit never changes: when the mirror has it, nothing need be fetched. Its branch is
    // taken to be where the job says the commit is. (When the lookup cannot tell, the checkout
    // does.) Over HTTP(S) the answer is known by now: the mirror's copy is checked out only when
    // it is the answer.
    let candidate: string | undefined;
    if (!proven) candidate = undefined;
    else if (id) candidate = await hasObject(objects, id) !== false ? id : undefined;
    else if (answer?.kind === "answered") candidate = answer.id === mirrored ? mirrored : undefined;
    else candidate = mirrored;
    if (candidate) {
      if (tracking) await writeRef(dir, tracking, candidate);
      const [said, tried] = await Promise.all([asked, checkout(candidate)]);
      const remote = said?.kind === "answered" ? said.id : undefined;
      if (tried.exitCode === 0 && (id || (remote && remote === mirrored))) {
        checkedOut = tried;
        note(
          `the mirror cache has ${id ? "commit" : `${source} at`} ${candidate}: nothing to fetch\n`,
        );
      }
    }
    if (!checkedOut) {
      const updated = await updateMirror(job, mirror, { run, note, signal }, env, asked);
      if (!updated.ok) return updated;
      if (tracking) await writeRef(dir, tracking, updated.tip);
      target = id ?? updated.tip;
      checkedOut = await checkout(target);
      if (checkedOut.exitCode !== 0 && id) {
        // A commit no longer on the branch (force-pushed) can still be fetched by its id.
        if (!await fetchIntoMirror(job, mirror, run, env, id)) {
          return { ok: false, error: `ref not found: commit ${id}` };
        }
        checkedOut = await checkout(target);
      }
    }
    if (checkedOut.exitCode !== 0) {
      return {
        ok: false,
        error: `checkout of ${describeRef(job)} failed: ${checkedOut.stderr.trim()}`,
      };
    }
  } else {
    // Not the hot path (workers always keep mirrors): git itself creates the folder.
    const init = await run("git", ["init", "-q", "--template=", dir], env);
    if (init.exitCode !== 0) return { ok: false, error: `git init failed: ${init.stderr.trim()}` };
    const source = job.repo.url;
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
  const borrowed = objects ? { objects } : {};
  // A detached HEAD holds the commit id itself: no process needed to read it.
  const head = (await Deno.readTextFile(join(dir, ".git", "HEAD"))).trim();
  if (/^[0-9a-f]{40,64}$/.test(head)) return { ok: true, commit: head, ...borrowed };
  const parsed = await git(["rev-parse", "HEAD"]);
  return { ok: true, commit: parsed.stdout.trim(), ...borrowed };
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
