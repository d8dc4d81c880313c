/** Unit tests of the worker's fetch error explanations and credential handling. */
import { equal, match, ok } from "node:assert/strict";
import type { DispatchedJob } from "../protocol/mod.ts";
import { explainFetchFailure, fetchCode } from "../worker/vcs.ts";

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
