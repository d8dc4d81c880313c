/**
 * End to end: job caches on a real worker with real repositories. A cache is restored on the
 * second run and not on a changed key, saved only after a passing test, never saved by a pull
 * request job, kept by the node plugin by default, and all of it under --isolation bwrap too.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  customJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";

/** Whether bubblewrap can create a sandbox on this machine. */
function bwrapWorks(): boolean {
  try {
    return new Deno.Command("bwrap", {
      args: ["--ro-bind", "/", "/", "--", "true"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

/** Prints HIT with the job that filled the cache, or MISS and fills it. */
const PROBE = [
  'if [ -f "$HOME/.deps/filled-by" ] && [ -f vendor/lib.txt ]; then',
  '  echo "CACHE HIT from $(cat "$HOME/.deps/filled-by") $(cat vendor/lib.txt)"',
  "else",
  '  echo "CACHE MISS"; mkdir -p "$HOME/.deps" vendor',
  '  echo "$STRIDER_JOB_ID" > "$HOME/.deps/filled-by"; echo "vendored" > vendor/lib.txt',
  "fi",
].join("\n");

const CACHE = [{ key: 'deps-{{ checksum "deps.lock" }}', paths: ["~/.deps", "vendor"] }];

async function run(queen: TestQueen, spec: Record<string, unknown>) {
  const id = await submitJob(queen, spec);
  const job = await waitForJob(queen, id, 90_000);
  const log = await jobLog(queen, id);
  return { id, job, log };
}

for (const isolation of ["none", "bwrap"]) {
  Deno.test({
    name: `caches are restored on the second run, not on a changed key (isolation ${isolation})`,
    ignore: isolation === "bwrap" && !bwrapWorks(),
    fn: async (t) => {
      const repo = await makeRepo({ "deps.lock": "left-pad 1.0.0\n" });
      const queen = await startQueen();
      const worker = await startWorker(queen, {
        name: `cache-${isolation}`,
        args: ["--isolation", isolation],
      });
      const job = (test = "true", extra: Record<string, unknown> = {}) =>
        customJob(repo.path, { prepare: PROBE, test }, { cache: CACHE, ...extra });
      try {
        let first = "";
        await t.step("the first run misses and saves after its passing test", async () => {
          const { id, job: view, log } = await run(queen, job());
          equal(view.result, "passed", log);
          match(log, /CACHE MISS/);
          match(log, /no cache for key deps-[0-9a-f]{64}/);
          match(log, /saved cache deps-[0-9a-f]{64}/);
          const names = view.phases.prepare.commands.map((c) => c.command);
          match(names[1], /^cache restore deps-/, "restored after the fetch, before prepare");
          match(view.phases.test.commands.at(-1)!.command, /^cache save deps-/);
          first = id;
        });

        await t.step("the second run restores what the first saved", async () => {
          const { job: view, log } = await run(queen, job());
          equal(view.result, "passed", log);
          match(log, new RegExp(`CACHE HIT from ${first} vendored`));
          match(log, /restored cache deps-/);
          match(log, /cache deps-[0-9a-f]{64} is already saved/);
        });

        await t.step("a changed lockfile is a new key: no cache", async () => {
          await commitFiles(repo.path, { "deps.lock": "left-pad 1.0.1\n" }, "bump");
          const { log } = await run(queen, job("exit 1"));
          match(log, /CACHE MISS/);
          ok(!/saved cache/.test(log), "a failing test saved its cache");
          const { log: again } = await run(queen, job());
          match(again, /CACHE MISS/, "the failed job's cache was saved");
        });

        await t.step("a pull request job restores but never saves", async () => {
          await git(repo.path, "checkout", "-q", "-b", "pr");
          await commitFiles(repo.path, { "deps.lock": "pr-only 1.0.0\n" }, "pr");
          await git(repo.path, "update-ref", "refs/pull/7/head", "HEAD");
          await git(repo.path, "checkout", "-q", "main");
          const pr = job("true", { ref: { fetch: "+refs/pull/7/head" } });
          const { job: view, log } = await run(queen, pr);
          equal(view.result, "passed", log);
          match(log, /CACHE MISS/);
          match(log, /not saved: jobs of a fetch refspec/);
          const { log: again } = await run(queen, pr);
          match(again, /CACHE MISS/, "the pull request's cache was saved");
        });

        await t.step("the node plugin keeps npm's cache by default", async () => {
          // A stand-in npm first on PATH (node_modules/.bin): reports whether ~/.npm is warm.
          const npm = [
            "#!/bin/sh",
            'case "$1" in',
            '  ci) if [ -f "$HOME/.npm/_cacache/index" ]; then echo "NPM WARM";',
            '      else echo "NPM COLD"; mkdir -p "$HOME/.npm/_cacache";',
            '      echo x > "$HOME/.npm/_cacache/index"; fi ;;',
            '  test) echo "npm test ran" ;;',
            "esac",
          ].join("\n");
          const node = await makeRepo({
            "package.json": '{"name":"x","version":"1.0.0"}\n',
            "package-lock.json": '{"lockfileVersion":3}\n',
            "node_modules/.bin/npm": npm,
          });
          await Deno.chmod(`${node.path}/node_modules/.bin/npm`, 0o755);
          await git(node.path, "add", "-f", "node_modules/.bin/npm");
          await git(node.path, "commit", "-q", "-m", "executable npm");
          const spec = { repo: { url: node.path }, ref: { branch: "main" }, plugins: ["node"] };
          const cold = await run(queen, spec);
          equal(cold.job.result, "passed", cold.log);
          match(cold.log, /NPM COLD/);
          match(cold.log, /saved cache node-npm-[0-9a-f]{64}/);
          const warm = await run(queen, spec);
          match(warm.log, /NPM WARM/);
          const off = await run(queen, { ...spec, config: { node: { cache: false } } });
          match(off.log, /NPM COLD/);
          ok(!/cache restore/.test(off.log), "config.node.cache: false still restored");
        });
      } finally {
        await worker.stop();
        await queen.proc.stop();
      }
    },
  });
}

Deno.test("a worker with --cache-max-mib 0 keeps no caches", async () => {
  const repo = await makeRepo({ "deps.lock": "x\n" });
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "no-cache", args: ["--cache-max-mib", "0"] });
  try {
    for (let n = 0; n < 2; n++) {
      const { job, log } = await run(
        queen,
        customJob(repo.path, { prepare: PROBE, test: "true" }, { cache: CACHE }),
      );
      equal(job.result, "passed", log);
      match(log, /CACHE MISS/);
      ok(!/cache (restore|save)/.test(log));
    }
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

Deno.test("a cache in strider.json applies; a bad key template errors the job", async () => {
  const repo = await makeRepo({
    "deps.lock": "x\n",
    "strider.json": JSON.stringify({
      plugins: ["custom"],
      config: { custom: { prepare: PROBE, test: "true" } },
      cache: CACHE,
    }),
  });
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "json-cache" });
  try {
    const spec = { repo: { url: repo.path }, ref: { branch: "main" } };
    match((await run(queen, spec)).log, /CACHE MISS/);
    match((await run(queen, spec)).log, /CACHE HIT/);
    const bad = await run(queen, {
      ...customJob(repo.path, { test: "true" }),
      cache: [{ key: "{{ branch }}", paths: ["x"] }],
    });
    equal(bad.job.result, "errored");
    match(bad.job.error ?? "", /unknown \{\{ branch \}\}/);
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
