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
