/**
 * End to end: a real queen and two real workers (subprocesses), real git repositories, the HTTP
 * API and the CLI, exactly as a user would run them.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  API_TOKEN,
  cli,
  CLUSTER,
  customJob,
  droneNames,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";

Deno.test("a queen with two workers runs real jobs end to end", async (t) => {
  const repo = await makeRepo({ "greeting.txt": "hello from the repository\n" });
  const queen = await startQueen();
  const workers = [
    await startWorker(queen, { name: "alpha", args: ["--capacity", "2"] }),
    await startWorker(queen, { name: "beta", args: ["--capacity", "2", "--speed", "2"] }),
  ];
  try {
    await t.step("both workers are listed as drones with their plugins", async () => {
      const body = await (await api(queen, "/api/drones")).json();
      const names = body.drones.map((d: { name: string }) => d.name).sort();
      deepEqual(names, ["alpha", "beta"]);
      for (const drone of body.drones) deepEqual(drone.plugins, ["env", "custom", "node", "deno"]);
    });

    await t.step("three jobs pass, each with its own output in its log", async () => {
      const ids = await Promise.all([1, 2, 3].map((n) =>
        submitJob(queen, {
          ...customJob(repo.path, {}),
          config: {
            env: { JOB_WORD: `word-${n}` },
            custom: {
              prepare: `echo preparing job ${n}`,
              test: `cat greeting.txt && echo "job ${n} says $JOB_WORD"`,
            },
          },
        })
      ));
      for (const [i, id] of ids.entries()) {
        const job = await waitForJob(queen, id);
        equal(job.result, "passed", `job ${i + 1}: ${job.error}`);
        equal(job.tested, 0);
        ok(job.drone === "alpha" || job.drone === "beta");
        const log = await jobLog(queen, id);
        match(log, /hello from the repository/);
        match(log, new RegExp(`job ${i + 1} says word-${i + 1}`));
        match(log, new RegExp(`preparing job ${i + 1}`));
        for (const other of [1, 2, 3].filter((n) => n !== i + 1)) {
          ok(!log.includes(`job ${other} says`), `job ${i + 1}'s log holds job ${other}'s output`);
        }
        const test = job.phases.test.commands[0];
        equal(test.exitCode, 0);
        match(test.output, /hello from the repository/);
        equal(job.phases.prepare.commands[0].command, `git fetch ${repo.path} main`);
      }
    });

    await t.step("a failing test fails the job, skips deploy and still runs cleanup", async () => {
      const id = await submitJob(
        queen,
        customJob(repo.path, {
          test: "echo about to fail; exit 3",
          deploy: "echo DEPLOYED",
          cleanup: "echo cleaning up after failure",
        }, { job_type: "TEST&DEPLOY" }),
      );
      const job = await waitForJob(queen, id);
      equal(job.result, "failed");
      equal(job.tested, 3);
      equal(job.deployed, null);
      equal(job.phases.deploy.commands.length, 0);
      equal(job.phases.cleanup.commands[0].exitCode, 0);
      const log = await jobLog(queen, id);
      match(log, /about to fail/);
      match(log, /cleaning up after failure/);
      ok(!log.includes("DEPLOYED"));
    });

    await t.step("a passing TEST&DEPLOY job deploys after its test", async () => {
      const id = await submitJob(
        queen,
        customJob(repo.path, { test: "true", deploy: "echo DEPLOYED" }, {
          job_type: "TEST&DEPLOY",
        }),
      );
      const job = await waitForJob(queen, id);
      equal(job.result, "passed");
      equal(job.deployed, 0);
      match(await jobLog(queen, id), /DEPLOYED/);
    });

    await t.step("a fetch refspec checks out that ref", async () => {
      await git(repo.path, "checkout", "-q", "-b", "pr-141");
      const prCommit = await commitFiles(
        repo.path,
        { "pr.txt": "pull request 141 content\n" },
        "pr",
      );
      await git(repo.path, "update-ref", "refs/pull/141/merge", prCommit);
      await git(repo.path, "checkout", "-q", "main");
      const id = await submitJob(queen, {
        ...customJob(repo.path, { test: "cat pr.txt; echo commit=$(git rev-parse HEAD)" }),
        ref: { fetch: "+refs/pull/141/merge" },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      const log = await jobLog(queen, id);
      match(log, /pull request 141 content/);
      match(log, new RegExp(`commit=${prCommit}`));
    });

    await t.step("a commit id on a branch checks out that commit", async () => {
      const second = await commitFiles(repo.path, { "greeting.txt": "second version\n" }, "two");
      const id = await submitJob(queen, {
        ...customJob(repo.path, { test: "cat greeting.txt" }),
        ref: { branch: "main", id: repo.commit },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed");
      const log = await jobLog(queen, id);
      match(log, /hello from the repository/);
      ok(!log.includes("second version"), `checked out ${second} instead of ${repo.commit}`);
    });

    await t.step(
      "a repeat job of a repository fetches into the worker's mirror cache",
      async () => {
        const cached = await makeRepo({ "v.txt": "one\n" });
        const first = await submitJob(queen, customJob(cached.path, { test: "cat v.txt" }));
        const one = await waitForJob(queen, first);
        equal(one.result, "passed");
        match(one.phases.prepare.commands[0].output, /creating the mirror cache/);
        await commitFiles(cached.path, { "v.txt": "two\n" }, "two");
        const second = await submitJob(queen, customJob(cached.path, { test: "cat v.txt" }));
        const two = await waitForJob(queen, second);
        equal(two.result, "passed");
        equal(two.drone, one.drone, "both jobs go to the fastest open drone");
        match(two.phases.prepare.commands[0].output, /updating the mirror cache/);
        match(two.phases.test.commands[0].output, /^two$/m);
      },
    );

    await t.step(
      "a commit the mirror never saw on its branch is fetched by id, beside origin/<branch>",
      async () => {
        const moved = await makeRepo({ "v.txt": "main\n" });
        const warm = await submitJob(queen, customJob(moved.path, { test: "true" }));
        equal((await waitForJob(queen, warm)).result, "passed");
        // A commit only on another branch (as after a force-push): not in the mirror yet.
        await git(moved.path, "checkout", "-q", "-b", "side");
        const side = await commitFiles(moved.path, { "v.txt": "side\n" }, "side");
        await git(moved.path, "checkout", "-q", "main");
        const id = await submitJob(queen, {
          ...customJob(moved.path, {
            test: "cat v.txt; echo head=$(git rev-parse HEAD) origin=$(git rev-parse origin/main)",
          }),
          ref: { branch: "main", id: side },
        });
        const job = await waitForJob(queen, id);
        equal(job.result, "passed", job.error ?? "");
        const log = await jobLog(queen, id);
        match(log, /^side$/m);
        match(log, new RegExp(`head=${side} origin=${moved.commit}`));
      },
    );

    await t.step("an invalid job spec gets 400 naming every bad field", async () => {
      const response = await api(queen, "/api/jobs", {
        method: "POST",
        body: JSON.stringify({
          repo: { url: "javascript:alert(1)" },
          ref: { branch: "--upload-pack=touch /tmp/x" },
          job_type: "TEST_ONLY",
        }),
      });
      equal(response.status, 400);
      const body = await response.json();
      const paths = body.issues.map((i: { path: string }) => i.path).sort();
      deepEqual(paths, ["job_type", "ref.branch", "repo.url"]);
      match(body.error, /ref\.branch: must not start with '-'/);
    });

    await t.step("a request without the API token gets 401 and creates nothing", async () => {
      const before = (await (await api(queen, "/api/jobs?limit=1000")).json()).jobs.length;
      for (const token of [null, "wrong-token"]) {
        const response = await api(queen, "/api/jobs", {
          method: "POST",
          token,
          body: JSON.stringify(customJob(repo.path, { test: "true" })),
        });
        equal(response.status, 401);
        match((await response.json()).error, /API token/);
      }
      const after = (await (await api(queen, "/api/jobs?limit=1000")).json()).jobs.length;
      equal(after, before);
    });

    await t.step("a worker with a wrong token is refused and never listed", async () => {
      const intruder = await startWorker(queen, {
        name: "intruder",
        token: "not-the-token",
        wait: false,
      });
      const status = await intruder.exit(30_000);
      equal(status.code, 1);
      match(intruder.stderr, /refused the worker token/);
      ok(!(await droneNames(queen)).includes("intruder"));
    });

    await t.step("the SSE stream of a finished job carries the seed's event names", async () => {
      const id = await submitJob(queen, customJob(repo.path, { test: "echo out; echo err >&2" }));
      await waitForJob(queen, id);
      const response = await api(queen, `/api/jobs/${id}/events`);
      equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const text = await response.text();
      const names = [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
      for (
        const name of [
          "job:started",
          "job:cmd:start",
          "job:cmd:stdout",
          "job:cmd:stderr",
          "job:cmd:done",
          "job:tested",
          "job:done",
        ]
      ) ok(names.includes(name), `${name} missing from ${names.join(", ")}`);
      equal(names[names.length - 1], "job:done");
      const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
      deepEqual(ids, ids.map((_, i) => i + 1));
      // Resuming after an event id gives only the events after it.
      const resumed = await (await api(queen, `/api/jobs/${id}/events`, {
        headers: { "last-event-id": String(ids.length - 1) },
      })).text();
      deepEqual([...resumed.matchAll(/^event: (.+)$/gm)].map((m) => m[1]), ["job:done"]);
    });

    await t.step(
      "strider submit --follow exits 0 for a passing job and 1 for a failing one",
      async () => {
        const env = { STRIDER_API_TOKEN: API_TOKEN };
        const pass = await cli([
          "submit",
          "--queen",
          queen.url,
          "--repo",
          repo.path,
          "--test",
          "echo followed output",
          "--follow",
        ], env);
        equal((await pass.status).code, 0, pass.stderr);
        match(pass.stdout, /followed output/);
        match(pass.stderr, /passed/);
        const fail = await cli([
          "submit",
          "--queen",
          queen.url,
          "--repo",
          repo.path,
          "--test",
          "echo failing now; exit 1",
          "--follow",
        ], env);
        equal((await fail.status).code, 1, fail.stderr);
        match(fail.stdout, /failing now/);
        match(fail.stderr, /failed/);
      },
    );

    await t.step("the CLI lists jobs and drones and prints a log", async () => {
      const list = await cli(["jobs", "--queen", queen.url]);
      match(list.stdout, /passed/);
      match(list.stdout, /failed/);
      const drones = await cli(["drones", "--queen", queen.url]);
      match(drones.stdout, /alpha/);
      match(drones.stdout, /beta/);
      const id = list.stdout.split("\n")[0].split(/\s+/)[0];
      const logs = await cli(["logs", id, "--queen", queen.url]);
      equal((await logs.status).code, 0);
      match(logs.stdout, /^\$ git fetch/m);
    });

    await t.step(
      "GET /metrics reports jobs, drones and dispatch latency to Prometheus",
      async () => {
        const response = await api(queen, "/metrics", { token: null });
        equal(response.status, 200);
        match(response.headers.get("content-type") ?? "", /^text\/plain/);
        const text = await response.text();
        if (CLUSTER) {
          // /metrics is per queen (each is scraped); through the balancer one of the two
          // answers, holding some of the drones and jobs: only the fleet's count is whole.
          match(text, /^strider_fleet_drones_connected 2$/m);
          match(text, /^strider_dispatch_latency_seconds_count \d+$/m);
          return;
        }
        match(text, /^strider_drones_connected 2$/m);
        match(text, /^strider_jobs_finished_total\{result="passed"\} \d+$/m);
        match(text, /^strider_jobs_finished_total\{result="failed"\} [1-9]\d*$/m);
        match(text, /^strider_dispatch_latency_seconds_count [1-9]\d*$/m);
        match(text, /^strider_output_bytes_total [1-9]\d*$/m);
      },
    );

    await t.step("a job waiting on a missing label stays queued and says why", async () => {
      const id = await submitJob(
        queen,
        customJob(repo.path, { test: "true" }, { labels: ["gpu"] }),
      );
      await new Promise((r) => setTimeout(r, 300));
      const job = await getJob(queen, id);
      equal(job.status, "queued");
      match(job.waiting ?? "", /labels: gpu/);
      const cancel = await api(queen, `/api/jobs/${id}/cancel`, { method: "POST" });
      equal(cancel.status, 202);
      equal((await getJob(queen, id)).result, "cancelled");
    });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await queen.proc.stop();
  }
});

Deno.test("the CLI refuses bad flags with exit code 2 and the usage", async () => {
  const unknown = await cli(["submit", "--repo", "/tmp/x", "--bogus"]);
  equal((await unknown.status).code, 2);
  match(unknown.stderr, /Unknown option '--bogus'/);
  match(unknown.stderr, /usage: strider submit/);
  const badValue = await cli([
    "worker",
    "--connect",
    "http://127.0.0.1:1",
    "--token",
    "t",
    "--capacity",
    "lots",
  ]);
  equal((await badValue.status).code, 2);
  match(badValue.stderr, /--capacity must be a whole number/);
  const envValue = await cli(["queen", "--help"], { STRIDER_PORT: "x" });
  equal((await envValue.status).code, 0);
  match(envValue.stdout, /env STRIDER_PORT/);
  const version = await cli(["--version"]);
  match(version.stdout, /^strider \d+\.\d+\.\d+/);
});
