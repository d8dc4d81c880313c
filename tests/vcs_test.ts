/** The worker's fetch: error explanations, credential handling, the checkout from the mirror. */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { DispatchedJob } from "../protocol/mod.ts";
import { explainFetchFailure, fetchCode } from "../worker/vcs.ts";
import { hasObject, parseLsRefs } from "../worker/git_refs.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";
import { startGitHttpServer } from "./helpers/git_http_server.ts";
import { startSshd } from "./helpers/sshd.ts";

Deno.test("fetch failures are explained by their cause", () => {
  const cases: [string, RegExp][] = [
    ["fatal: Authentication failed for 'https://h/r.git/'", /^authentication failed/],
    ["fatal: could not read Username for 'https://h': terminal prompts disabled", /^auth/],
    [
      "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
      /^auth/,
    ],
    ["abort: http authorization required for http://127.0.0.1:1/", /^authentication failed/],
    [
      "Host key verification failed.\r\nfatal: Could not read from remote repository.\n\n" +
      "Please make sure you have the correct access rights\nand the repository exists.",
      /host key could not be verified/,
    ],
    ["fatal: couldn't find remote ref refs/heads/nope", /^ref not found: branch nope/],
    ["fatal: '/nowhere' does not appear to be a git repository", /^repository not found/],
    ["abort: repository /nowhere not found", /^repository not found/],
  ];
  for (const [stderr, expected] of cases) {
    match(explainFetchFailure(stderr, "branch nope"), expected, stderr);
  }
});

function hgJob(auth: DispatchedJob["repo"]["auth"]): DispatchedJob {
  return {
    job_id: "j1",
    repo: { url: "http://127.0.0.1:1/repo", vcs: "hg", auth },
    ref: { branch: "default" },
    job_type: "TEST",
    trigger: { type: "manual" },
  } as DispatchedJob;
}

Deno.test("Mercurial gets its credentials from a private hgrc, never its command line", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "strider-vcs-test-" });
  try {
    const seen: { args: string[]; hgrc: string; mode: number }[] = [];
    const outcome = await fetchCode(
      hgJob({ type: "https", username: "u", password: "pw-123456" }),
      {
        dir: `${tmp}/src`,
        tmp,
        note: () => {},
        run: async (_program, args, env) => {
          const hgrc = await Deno.readTextFile(`${env.HOME}/.hgrc`);
          const mode = (await Deno.stat(`${env.HOME}/.hgrc`)).mode! & 0o777;
          seen.push({ args, hgrc, mode });
          return { exitCode: 1, stderr: "abort: http authorization required", stdout: "" };
        },
      },
    );
    equal(outcome.ok, false);
    equal(seen.length, 1);
    ok(!seen[0].args.join(" ").includes("pw-123456"), "the password is on the command line");
    match(seen[0].hgrc, /^strider\.password = pw-123456$/m);
    equal(seen[0].mode, 0o600);
    // Nothing is left behind for the job's own commands to read.
    equal([...Deno.readDirSync(tmp)].length, 0);

    // A line break would let the password add settings (hooks run commands): refused.
    const refused = await fetchCode(
      hgJob({ type: "https", username: "u", password: "x\n[hooks]\npre-clone = touch /tmp/p" }),
      { dir: `${tmp}/src`, tmp, note: () => {}, run: () => Promise.reject(new Error("ran")) },
    );
    equal(refused.ok, false);
    match(!refused.ok ? refused.error : "", /line breaks/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Runs `fetchCode` for `job`, calling `probe` with the fetch's environment instead of git. */
async function withFetchEnv(
  job: DispatchedJob,
  probe: (env: Record<string, string>) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "strider-vcs-test-" });
  try {
    await fetchCode(job, {
      dir: `${tmp}/src`,
      tmp,
      note: () => {},
      run: async (_program, _args, env) => {
        await probe(env);
        return { exitCode: 1, stderr: "stop here", stdout: "" };
      },
    });
    // Nothing is left behind for the job's own commands to read.
    equal([...Deno.readDirSync(tmp)].length, 0);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

function gitJob(url: string, auth: DispatchedJob["repo"]["auth"]): DispatchedJob {
  return { ...hgJob(auth), repo: { url, vcs: "git", auth }, ref: { branch: "main" } };
}

/** What `git credential fill` answers for `url` in `env`: the password, or null. */
async function gitCredential(env: Record<string, string>, url: string): Promise<string | null> {
  const child = new Deno.Command("git", {
    args: ["credential", "fill"],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: "/nonexistent", ...env },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(`url=${url}\n\n`));
  await writer.close();
  const out = new TextDecoder().decode((await child.output()).stdout);
  return /^password=(.*)$/m.exec(out)?.[1] ?? null;
}

Deno.test("git offers the password only to the repository's own scheme, host and port", async () => {
  const job = gitJob("https://git.example:8443/team/repo.git", {
    type: "https",
    username: "ci",
    password: "pw-only-for-origin",
  });
  await withFetchEnv(job, async (env) => {
    equal(
      await gitCredential(env, "https://git.example:8443/team/other.git"),
      "pw-only-for-origin",
    );
    for (
      const other of [
        "https://attacker.example/x.git",
        "http://git.example:8443/team/repo.git",
        "https://git.example/team/repo.git",
        "https://git.example:8444/team/repo.git",
        "https://git.example:8443.attacker.example/repo.git",
      ]
    ) {
      equal(await gitCredential(env, other), null, other);
    }
    ok(!JSON.stringify(env).includes("askpass"), "an askpass program answers every host");
  });
});

/** What the ssh wrapper runs for `args` in `env`, with a fake `ssh` that prints its arguments. */
async function sshWrapper(env: Record<string, string>, args: string[]): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "strider-fake-ssh-" });
  try {
    await Deno.writeTextFile(`${bin}/ssh`, '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
    const out = await new Deno.Command("sh", {
      args: ["-c", `${env.GIT_SSH_COMMAND} "$@"`, "sh", ...args],
      env: { ...env, PATH: `${bin}:/usr/bin:/bin` },
      clearEnv: true,
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

Deno.test("the ssh key is used only for the repository's own user, host and port", async () => {
  const job = gitJob("ssh://git@git.example:2222/team/repo.git", {
    type: "ssh",
    key: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----\n",
  });
  await withFetchEnv(job, async (env) => {
    const upload = "git-upload-pack '/team/repo.git'";
    match(
      await sshWrapper(env, [
        "-o",
        "SendEnv=GIT_PROTOCOL",
        "-p",
        "2222",
        "git@git.example",
        upload,
      ]),
      /-i \S+id_key/,
    );
    for (
      const args of [
        ["-p", "2222", "git@attacker.example", upload],
        ["git@git.example", upload],
        ["-p", "22", "git@git.example", upload],
        ["-p", "2222", "root@git.example", upload],
      ]
    ) {
      const ran = await sshWrapper(env, args);
      ok(ran.includes(args.at(-2)!), ran);
      ok(!ran.includes("id_key"), `the key went to ${args.join(" ")}: ${ran}`);
    }
  });
});

Deno.test("Mercurial's [auth] entry is scoped to the repository's scheme, host and port", async () => {
  await withFetchEnv(
    hgJob({ type: "https", username: "u", password: "pw-123456" }),
    async (env) => {
      const hgrc = await Deno.readTextFile(`${env.HOME}/.hgrc`);
      match(hgrc, /^strider\.prefix = http:\/\/127\.0\.0\.1:1\/$/m);
      ok(!/prefix = \*/.test(hgrc), hgrc);
    },
  );
});

/**
 * Fetches `job` with a mirror cache, running git for real; returns the outcome. Each git
 * command it runs is added to `ran` (its first word after the options).
 */
function realFetch(
  job: DispatchedJob,
  dir: string,
  tmp: string,
  cacheDir: string,
  ran: string[] = [],
) {
  return fetchCode(job, {
    dir,
    tmp,
    cacheDir,
    note: () => {},
    run: async (program, args, env) => {
      ran.push(args.find((arg, i) => !arg.startsWith("-") && args[i - 1] !== "-C") ?? "");
      const out = await new Deno.Command(program, {
        args,
        env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: tmp, ...env },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      return { exitCode: out.code, stderr: text(out.stderr), stdout: text(out.stdout) };
    },
  });
}

Deno.test("a checkout from the mirror has the refs a fetch would give, and borrows its objects", async () => {
  const repo = await makeRepo({ "a.txt": "one\n" });
  const root = await Deno.makeTempDir({ prefix: "strider-vcs-mirror-" });
  try {
    await git(repo.path, "checkout", "-q", "-b", "feature/deep/x");
    const feature = await commitFiles(repo.path, { "a.txt": "feature\n" }, "feature");
    await git(repo.path, "update-ref", "refs/pull/7/head", feature);
    const cache = `${root}/cache`;
    const base = { ...hgJob(undefined), repo: { url: repo.path, vcs: "git" as const } };

    const branch = await realFetch(
      { ...base, ref: { branch: "feature/deep/x" } },
      `${root}/one/src`,
      root,
      cache,
    );
    ok(branch.ok, !branch.ok ? branch.error : "");
    equal(branch.ok && branch.commit, feature);
    equal(await git(`${root}/one/src`, "rev-parse", "origin/feature/deep/x"), feature);
    equal(await Deno.readTextFile(`${root}/one/src/a.txt`), "feature\n");
    // Nothing copied: the objects are the mirror's, mounted read-only in a sandbox.
    const alternates = await Deno.readTextFile(`${root}/one/src/.git/objects/info/alternates`);
    equal(alternates.trim(), branch.ok ? branch.objects : "");

    const pr = await realFetch(
      { ...base, ref: { fetch: "+refs/pull/7/head:refs/remotes/pr/7" } },
      `${root}/two/src`,
      root,
      cache,
    );
    ok(pr.ok, !pr.ok ? pr.error : "");
    equal(await git(`${root}/two/src`, "rev-parse", "refs/remotes/pr/7"), feature);

    // A commit id that exists nowhere: a clear error, not a checkout of something else.
    const missing = await realFetch(
      { ...base, ref: { branch: "main", id: "0123456789abcdef0123456789abcdef01234567" } },
      `${root}/three/src`,
      root,
      cache,
    );
    equal(missing.ok, false);
    match(!missing.ok ? missing.error : "", /ref not found: commit 0123456789abcdef/);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(repo.path, { recursive: true });
  }
});

Deno.test("the mirror's objects are found without a process, packed or loose", async () => {
  const repo = await makeRepo({ "a.txt": "packed\n" });
  try {
    const objects = `${repo.path}/.git/objects`;
    const loose = await commitFiles(repo.path, { "a.txt": "loose\n" }, "loose");
    equal(await hasObject(objects, loose), true);
    await git(repo.path, "gc", "-q");
    const stillLoose = await commitFiles(repo.path, { "a.txt": "after gc\n" }, "after gc");
    for (const id of [repo.commit, loose, stillLoose]) equal(await hasObject(objects, id), true);
    // Ids that sort before, after and among the packed ones, and one that is not an id at all.
    for (const id of ["0".repeat(40), "f".repeat(40), repo.commit.slice(0, 39) + "x", "HEAD"]) {
      equal(await hasObject(objects, id), false, id);
    }
    const flipped = repo.commit.slice(0, 39) + (repo.commit.endsWith("0") ? "1" : "0");
    equal(await hasObject(objects, flipped), false);
  } finally {
    await Deno.remove(repo.path, { recursive: true });
  }
});

Deno.test("an ls-refs answer is read only when it is whole and well formed", () => {
  const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, "0") + s;
  const id = "a".repeat(40);
  const bytes = (s: string) => new TextEncoder().encode(s);
  const good = parseLsRefs(bytes(pkt(`${id} refs/heads/main\n`) + "0000"));
  equal(good?.get("refs/heads/main"), id);
  equal(parseLsRefs(bytes("0000"))?.size, 0);
  for (
    const bad of [
      "", // a v0-only server's silence
      pkt(`${id} refs/heads/main\n`), // cut before the flush
      pkt("ERR upload-pack: not our ref\n") + "0000",
      pkt(`${id.slice(1)} refs/heads/main\n`) + "0000",
      "00zz" + "0000",
      pkt(`${id} refs/heads/main\n`) + "0000" + "0000", // something after the end
    ]
  ) {
    equal(parseLsRefs(bytes(bad)), undefined, bad);
  }
});

Deno.test("a repeat job of a local repository runs only the checkout until the branch moves", async () => {
  const repo = await makeRepo({ "a.txt": "one\n" });
  const root = await Deno.makeTempDir({ prefix: "strider-vcs-repeat-" });
  try {
    const cache = `${root}/cache`;
    const job = {
      ...hgJob(undefined),
      repo: { url: repo.path, vcs: "git" as const },
      ref: { branch: "main" },
    };
    const fetchInto = async (name: string) => {
      const ran: string[] = [];
      const outcome = await realFetch(job, `${root}/${name}/src`, root, cache, ran);
      ok(outcome.ok, !outcome.ok ? outcome.error : "");
      return { commit: outcome.ok && outcome.commit, ran };
    };
    const first = await fetchInto("one");
    equal(first.commit, repo.commit);
    ok(first.ran.includes("fetch"), first.ran.join(" "));
    const again = await fetchInto("two");
    equal(again.commit, repo.commit);
    equal(again.ran.join(" "), "checkout");
    // The branch moves (here even to a commit that does not descend from the last): fetched.
    await git(repo.path, "checkout", "-q", "--orphan", "other");
    await git(repo.path, "rm", "-q", "-r", "-f", ".");
    const moved = await commitFiles(repo.path, { "b.txt": "two\n" }, "rewritten");
    await git(repo.path, "branch", "-f", "main", moved);
    await git(repo.path, "pack-refs", "--all");
    const after = await fetchInto("three");
    equal(after.commit, moved);
    ok(after.ran.includes("fetch"), after.ran.join(" "));
    equal(await Deno.readTextFile(`${root}/three/src/b.txt`), "two\n");
    // Exactly that tree: nothing left of the commit the mirror had before.
    equal(await Deno.stat(`${root}/three/src/a.txt`).then(() => true, () => false), false);
    // Read from packed-refs now: still known, still no fetch.
    equal((await fetchInto("four")).ran.join(" "), "checkout");
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(repo.path, { recursive: true });
  }
});

Deno.test("over HTTP a job the server turns away gets nothing of the mirror, whatever it answers", async () => {
  const repo = await makeRepo({ "a.txt": "private\n" });
  const root = await Deno.makeTempDir({ prefix: "strider-vcs-denied-" });
  const served = `${root}/served`;
  await Deno.mkdir(served);
  const credentials = { username: "ci", password: "right-pw" };
  const upstream = startGitHttpServer(served, credentials);
  // In front of it: the right credential goes through, anyone else gets `denial` (forges say 401,
  // 403 or, hiding the repository, 404).
  let denial = 401;
  const expected = "Basic " + btoa(`${credentials.username}:${credentials.password}`);
  const gate = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    const url = new URL(r.url);
    if (r.headers.get("authorization") !== expected) {
      await r.body?.cancel();
      return new Response("no\n", {
        status: denial,
        headers: denial === 401 ? { "WWW-Authenticate": 'Basic realm="git"' } : {},
      });
    }
    const headers = new Headers(r.headers);
    for (const name of ["host", "content-length"]) headers.delete(name);
    const body = r.method === "GET" ? undefined : new Uint8Array(await r.arrayBuffer());
    const answer = await fetch(`${upstream.origin}${url.pathname}${url.search}`, {
      method: r.method,
      headers,
      body,
    });
    const out = new Headers(answer.headers);
    for (const name of ["content-length", "content-encoding", "transfer-encoding"]) {
      out.delete(name);
    }
    return new Response(new Uint8Array(await answer.arrayBuffer()), {
      status: answer.status,
      headers: out,
    });
  });
  try {
    await git(served, "clone", "-q", "--bare", repo.path, "r.git");
    const url = `http://127.0.0.1:${gate.addr.port}/r.git`;
    const cache = `${root}/cache`;
    const job = (auth: DispatchedJob["repo"]["auth"], ref: DispatchedJob["ref"]) => ({
      ...hgJob(undefined),
      repo: { url, vcs: "git" as const, ...(auth ? { auth } : {}) },
      ref,
    });
    const right = { type: "https" as const, ...credentials };
    const pinned = { branch: "main", id: repo.commit };
    let n = 0;
    const fetchAs = async (auth: DispatchedJob["repo"]["auth"], ref: DispatchedJob["ref"]) => {
      const ran: string[] = [];
      const dir = `${root}/job${++n}/src`;
      await Deno.mkdir(`${root}/job${n}`);
      const outcome = await realFetch(job(auth, ref), dir, `${root}/job${n}`, cache, ran);
      return { outcome, ran, dir };
    };
    const first = await fetchAs(right, pinned);
    ok(first.outcome.ok, !first.outcome.ok ? first.outcome.error : "");
    // The mirror now holds the commit: the authorised repeat runs no fetch.
    const repeat = await fetchAs(right, pinned);
    ok(repeat.outcome.ok, !repeat.outcome.ok ? repeat.outcome.error : "");
    equal(repeat.ran.join(" "), "checkout");
    for (const status of [401, 403, 404]) {
      denial = status;
      for (const auth of [undefined, { type: "https" as const, username: "ci", password: "no" }]) {
        for (const ref of [pinned, { branch: "main" }, { fetch: "refs/heads/main" }]) {
          const what = `${status} ${JSON.stringify({ auth, ref })}`;
          const denied = await fetchAs(auth, ref);
          equal(denied.outcome.ok, false, what);
          const error = !denied.outcome.ok ? denied.outcome.error : "";
          match(error, status === 404 ? /repository not found/ : /authentication failed/, what);
          // Nothing checked out, and no checkout folder (borrowing the mirror) left behind.
          ok(!denied.ran.includes("checkout"), `${what}: ${denied.ran.join(" ")}`);
          equal(await Deno.stat(denied.dir).then(() => true, () => false), false, what);
        }
      }
    }
    // A 404 (also a dumb-HTTP server's answer) did not stop the authorised from being asked.
    const after = await fetchAs(right, { branch: "main" });
    ok(after.outcome.ok, !after.outcome.ok ? after.outcome.error : "");
    equal(after.ran.join(" "), "checkout");
  } finally {
    await gate.shutdown();
    await upstream.close();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(repo.path, { recursive: true });
  }
});

Deno.test("over ssh a pinned job fetches with its own key before the mirror's copy is used", async () => {
  const sshd = await startSshd();
  const repo = await makeRepo({ "a.txt": "private over ssh\n" });
  const root = await Deno.makeTempDir({ prefix: "strider-vcs-ssh-" });
  try {
    await git(root, "clone", "-q", "--bare", repo.path, "r.git");
    const url = `ssh://root@127.0.0.1:${sshd.port}${root}/r.git`;
    const other = `${root}/other_key`;
    await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "", "-f", other],
    }).output();
    const cache = `${root}/cache`;
    let n = 0;
    const fetchAs = async (auth: DispatchedJob["repo"]["auth"]) => {
      const ran: string[] = [];
      await Deno.mkdir(`${root}/job${++n}`);
      const dir = `${root}/job${n}/src`;
      const job = {
        ...hgJob(undefined),
        repo: { url, vcs: "git" as const, ...(auth ? { auth } : {}) },
        ref: { branch: "main", id: repo.commit },
      };
      return { outcome: await realFetch(job, dir, `${root}/job${n}`, cache, ran), ran, dir };
    };
    const first = await fetchAs({ type: "ssh", key: sshd.privateKey });
    ok(first.outcome.ok, !first.outcome.ok ? `${first.outcome.error}\n${sshd.log()}` : "");
    for (const auth of [undefined, { type: "ssh" as const, key: await Deno.readTextFile(other) }]) {
      const denied = await fetchAs(auth);
      equal(denied.outcome.ok, false, JSON.stringify(auth));
      deepEqual(denied.ran, ["fetch"]);
      equal(await Deno.stat(denied.dir).then(() => true, () => false), false);
    }
    // The right key still gets the commit, after its own fetch.
    const again = await fetchAs({ type: "ssh", key: sshd.privateKey });
    ok(again.outcome.ok, !again.outcome.ok ? again.outcome.error : "");
    equal(again.ran.join(" "), "fetch checkout");
  } finally {
    await sshd.stop();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(repo.path, { recursive: true });
  }
});
