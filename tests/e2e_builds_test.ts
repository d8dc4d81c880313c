/**
 * End to end: builds. A real queen, workers with different labels and real git repositories:
 * a 3×2 matrix lands each combination on a matching worker; a suite of 24 test files split into
 * 4 shards over 2 workers runs every file exactly once; fail-fast cancels the rest (their cleanup
 * runs); a re-run of the failed jobs only; the CLI follows a whole build; a build survives a
 * worker killed with SIGKILL.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { BuildView, Submitted } from "../protocol/mod.ts";
import { BuildViewSchema } from "../protocol/mod.ts";
import {
  api,
  API_TOKEN,
  cli,
  customJob,
  getJob,
  jobLog,
  ROOT,
  startQueen,
  startWorker,
  type TestQueen,
  waitUntil,
} from "./helpers/cluster.ts";
import { commitFiles, makeRepo } from "./helpers/git_repo.ts";
import { ForgeStandIn } from "./helpers/forge_standin.ts";
import { deliver, fixture } from "./helpers/webhooks.ts";

async function submitBuild(queen: TestQueen, spec: unknown): Promise<Submitted> {
  const response = await api(queen, "/api/jobs", { method: "POST", body: JSON.stringify(spec) });
  const body = await response.json();
  if (response.status !== 201) {
    throw new Error(`submit: ${response.status} ${JSON.stringify(body)}`);
  }
  return body;
}

async function getBuild(queen: TestQueen, id: string): Promise<BuildView> {
  return BuildViewSchema.parse(await (await api(queen, `/api/builds/${id}`)).json());
}

async function waitForBuild(queen: TestQueen, id: string, timeoutMs = 120_000) {
  let build: BuildView | undefined;
  await waitUntil(
    async () => (build = await getBuild(queen, id)).status === "done",
    timeoutMs,
    `build ${id}`,
  );
  return build!;
}

/** The labels each worker carries. */
const LABELS: Record<string, string[]> = {
  alpha: ["node-18", "node-20", "os-linux", "bats"],
  beta: ["node-22", "os-linux", "os-bsd", "bats"],
  gamma: ["node-18", "node-20", "os-bsd"],
};

/** `strider shard` as a job runs it: this checkout's CLI with the test's Deno cache. */
const SHARD = `"${Deno.execPath()}" run --quiet --config "${join(ROOT, "deno.json")}" ` +
  `--allow-env --allow-read "${join(ROOT, "main.ts")}" shard`;

Deno.test("builds: matrix, shards, fail-fast, re-runs and the CLI on real workers", async (t) => {
  const mark = await Deno.makeTempDir({ prefix: "strider-builds-mark-" });
  const files: Record<string, string> = {};
  for (let n = 1; n <= 24; n++) {
    const name = `t/test_${String(n).padStart(2, "0")}.sh`;
    files[name] = n === 7
      ? `[ -z "$BREAK" ] || [ -f "${mark}/fixed" ] || { echo "test 7 broke"; exit 1; }\n`
      : `echo "test ${n} ok"\n`;
  }
  const repo = await makeRepo(files);
  const queen = await startQueen({ args: ["--lease", "3"] });
  const workers = await Promise.all(
    Object.entries(LABELS).map(([name, labels]) =>
      startWorker(queen, { name, args: ["--labels", labels.join(","), "--capacity", "2"] })
    ),
  );
  const env = { DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME")!, ".cache/deno") };
  // Runs this shard's files; writes a JUnit report of them for the next run's balance.
  const suite = `ls t/*.sh | ${SHARD} > mine.txt
echo "timings=\${STRIDER_SHARD_TIMINGS:+yes}"
echo '<testsuites>' > report.xml
for f in $(cat mine.txt); do
  echo "RAN $f"
  sh "$f"
  echo "<testsuite name=\\"$f\\" tests=\\"1\\" time=\\"0.25\\"></testsuite>" >> report.xml
done
echo '</testsuites>' >> report.xml`;
  try {
    await t.step("a 3×2 matrix runs each combination on a worker with its labels", async () => {
      const made = await submitBuild(
        queen,
        customJob(repo.path, {
          test: 'echo "node=$STRIDER_MATRIX_NODE os=$STRIDER_MATRIX_OS"',
        }, {
          matrix: { node: ["18", "20", "22"], os: ["linux", "bsd"] },
          labels: ["node-${node}", "os-${os}"],
        }),
      );
      equal(made.jobs.length, 6);
      const build = await waitForBuild(queen, made.build);
      equal(build.result, "passed", JSON.stringify(build.jobs));
      deepEqual(build.axes.map((a) => a.name), ["node", "os"]);
      const seen = new Set<string>();
      for (const job of build.jobs) {
        const { node, os } = job.matrix!;
        seen.add(`${node}/${os}`);
        ok(job.drone, `job ${job.name} has no drone`);
        const labels = LABELS[job.drone!];
        ok(
          labels.includes(`node-${node}`) && labels.includes(`os-${os}`),
          `${job.name} on ${job.drone}`,
        );
        match(await jobLog(queen, job.id), new RegExp(`node=${node} os=${os}`));
      }
      equal(seen.size, 6);
      // The dashboard's build page: node values as rows, os values as columns, a cell per job.
      const page = await (await api(queen, `/builds/${made.build}`)).text();
      for (const job of build.jobs) ok(page.includes(`href="/jobs/${job.id}"`), job.id);
      for (const head of ["node=18", "node=22", "os=linux", "os=bsd"]) {
        ok(page.includes(head), head);
      }
      equal(page.match(/<tr/g)?.length, 4, "a header row and a row per node version");
      // One job re-run alone keeps its matrix values, as a build of its own.
      const one = build.jobs.find((j) => j.name === "node-22-os-bsd")!;
      const retried = await api(queen, `/api/jobs/${one.id}/retry`, { method: "POST" });
      equal(retried.status, 201);
      const alone: Submitted = await retried.json();
      equal(alone.build, alone.id);
      equal((await waitForBuild(queen, alone.build)).result, "passed");
      match(await jobLog(queen, alone.id), /node=22 os=bsd/);
      equal((await getJob(queen, alone.id)).drone, "beta");
    });

    let sharded: BuildView | undefined;
    await t.step("4 shards on 2 workers run every one of 24 files exactly once", async () => {
      const made = await submitBuild(
        queen,
        customJob(repo.path, { test: suite }, {
          parallelism: 4,
          labels: ["bats"],
          artifacts: ["report.xml"],
          config: { env, custom: { test: suite } },
        }),
      );
      const build = sharded = await waitForBuild(queen, made.build);
      equal(build.result, "passed", JSON.stringify(build.jobs));
      equal(build.jobs.length, 4);
      const ran: string[] = [];
      for (const job of build.jobs) {
        ok(job.drone === "alpha" || job.drone === "beta", `${job.name} ran on ${job.drone}`);
        const log = await jobLog(queen, job.id);
        ran.push(...[...log.matchAll(/^RAN (\S+)$/gm)].map((m) => m[1]));
      }
      deepEqual(ran.sort(), Object.keys(files).sort());
    });

    let broken: BuildView | undefined;
    await t.step("the build fails when one shard's file fails; timings are used", async () => {
      const made = await submitBuild(
        queen,
        customJob(repo.path, {}, {
          parallelism: 4,
          labels: ["bats"],
          config: { env: { ...env, BREAK: "1" }, custom: { test: suite } },
        }),
      );
      const build = broken = await waitForBuild(queen, made.build);
      equal(build.result, "failed");
      deepEqual(build.jobs.map((j) => j.result).filter((r) => r !== "passed"), ["failed"]);
      // The reports of the previous build balance this one.
      match(await jobLog(queen, build.jobs[0].id), /timings=yes/);
      // ... and travel to the worker, not to the API's viewers.
      equal((await getJob(queen, build.jobs[0].id)).spec.build?.timings, undefined);
    });

    await t.step("a re-run of the failed jobs only re-runs the failed shard", async () => {
      await Deno.writeTextFile(join(mark, "fixed"), "");
      const response = await api(queen, `/api/builds/${broken!.id}/rerun-failed`, {
        method: "POST",
      });
      equal(response.status, 201);
      const made: Submitted = await response.json();
      const build = await waitForBuild(queen, made.build);
      equal(build.result, "passed", JSON.stringify(build.jobs));
      equal(build.rerunOf, broken!.id);
      const failed = broken!.jobs.find((j) => j.result === "failed")!;
      const kept = broken!.jobs.filter((j) => j.result === "passed").map((j) => j.id).sort();
      deepEqual(build.jobs.filter((j) => kept.includes(j.id)).map((j) => j.id).sort(), kept);
      const again = build.jobs.filter((j) => !kept.includes(j.id));
      equal(again.length, 1);
      equal(again[0].name, failed.name);
      equal((await getJob(queen, again[0].id)).retryOf, failed.id);
      // A build that passed has nothing to re-run.
      const none = await api(queen, `/api/builds/${sharded!.id}/rerun-failed`, { method: "POST" });
      equal(none.status, 409);
      await none.body?.cancel();
    });

    await t.step("fail-fast cancels the other jobs, and their cleanup runs", async () => {
      const made = await submitBuild(
        queen,
        customJob(repo.path, {
          test: `if [ "$STRIDER_MATRIX_N" = bad ]; then
  while [ "$(ls "${mark}" | grep -c '^started-')" -lt 2 ]; do sleep 0.2; done
  exit 1
fi
touch "${mark}/started-$STRIDER_MATRIX_N"
sleep 120`,
          cleanup: `touch "${mark}/cleaned-$STRIDER_MATRIX_N"`,
        }, { matrix: { n: ["bad", "s1", "s2"] }, fail_fast: true }),
      );
      const build = await waitForBuild(queen, made.build);
      equal(build.result, "failed");
      const results = Object.fromEntries(build.jobs.map((j) => [j.matrix!.n, j.result]));
      deepEqual(results, { bad: "failed", s1: "cancelled", s2: "cancelled" });
      ok(existsSync(join(mark, "cleaned-s1")), "s1's cleanup did not run");
      ok(existsSync(join(mark, "cleaned-s2")), "s2's cleanup did not run");
    });

    await t.step("a matrix past the limit is refused with a clear 400", async () => {
      const values = Array.from({ length: 9 }, (_, i) => `v${i}`);
      const response = await api(queen, "/api/jobs", {
        method: "POST",
        body: JSON.stringify(customJob(repo.path, { test: "true" }, {
          matrix: { a: values, b: values },
        })),
      });
      equal(response.status, 400);
      match((await response.json()).error, /81 combinations, over the limit of 64/);
    });

    await t.step("the CLI follows a whole build and lists builds", async () => {
      const cliEnv = { STRIDER_API_TOKEN: API_TOKEN };
      const run = await cli([
        "submit",
        "--queen",
        queen.url,
        "--repo",
        repo.path,
        "--test",
        'echo "hello from $STRIDER_MATRIX_NODE shard $STRIDER_SHARD_INDEX"',
        "--matrix",
        "node=18,20",
        "--parallel",
        "2",
        "--label",
        "node-${node}",
        "--follow",
      ], cliEnv);
      equal((await run.status).code, 0, run.stderr);
      match(run.stdout, /^\[node-20-shard-1\] hello from 20 shard 1$/m);
      match(run.stdout, /^\[node-18-shard-0\] hello from 18 shard 0$/m);
      const id = run.stderr.match(/^build (\S+) passed$/m)?.[1];
      ok(id, run.stderr);
      match(run.stderr, /JOB\s+RESULT\s+DRONE/);
      const list = await cli(["builds", "--queen", queen.url], cliEnv);
      match(list.stdout, new RegExp(`^${id}\\tpassed\\t4/4 passed`, "m"));
      const failing = await cli([
        "submit",
        "--queen",
        queen.url,
        "--repo",
        repo.path,
        "--test",
        '[ "$STRIDER_SHARD_INDEX" = 0 ]',
        "--parallel",
        "2",
        "--follow",
      ], cliEnv);
      equal((await failing.status).code, 1, failing.stderr);
      match(failing.stderr, /failed$/m);
    });

    await t.step("a build survives a worker killed with SIGKILL", async () => {
      const victim = await startWorker(queen, { name: "victim", args: ["--labels", "kill"] });
      workers.push(victim);
      const made = await submitBuild(
        queen,
        customJob(repo.path, {
          test: `touch "${mark}/k-$STRIDER_SHARD_INDEX-$STRIDER_ATTEMPT"
[ "$STRIDER_ATTEMPT" != 1 ] || sleep 60
echo "shard $STRIDER_SHARD_INDEX done"`,
        }, { parallelism: 2, labels: ["kill"] }),
      );
      await waitUntil(
        () => existsSync(join(mark, "k-0-1")) && existsSync(join(mark, "k-1-1")),
        60_000,
        "both shards to start",
      );
      victim.signal("SIGKILL");
      await victim.exit();
      workers.push(await startWorker(queen, { name: "rescuer", args: ["--labels", "kill"] }));
      const build = await waitForBuild(queen, made.build);
      equal(build.result, "passed", JSON.stringify(build.jobs));
      for (const job of build.jobs) {
        equal(job.drone, "rescuer");
        match(await jobLog(queen, job.id), /shard \d done/);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await queen.proc.stop();
    await Deno.remove(mark, { recursive: true }).catch(() => {});
  }
});

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("a build goes on across a queen SIGKILL; cancel, re-run whole; nobody joins a build", async () => {
  const mark = await Deno.makeTempDir({ prefix: "strider-builds-mark-" });
  const repo = await makeRepo({ "README.md": "builds\n" });
  const data = await Deno.makeTempDir({ prefix: "strider-builds-queen-" });
  const args = ["--port", String(freePort()), "--lease", "5"];
  let queen = await startQueen({ data, args });
  const worker = await startWorker(queen, { name: "steady", args: ["--capacity", "3"] });
  try {
    const made = await submitBuild(
      queen,
      customJob(repo.path, {
        test: `touch "${mark}/up-$STRIDER_MATRIX_SIDE"
[ "$STRIDER_MATRIX_SIDE" != fail ] || exit 3
while [ ! -f "${mark}/go" ]; do sleep 0.1; done
echo "side $STRIDER_MATRIX_SIDE went"`,
      }, { matrix: { side: ["left", "right", "fail"], allow_failure: [{ side: "fail" }] } }),
    );
    await waitUntil(
      async () =>
        existsSync(join(mark, "up-left")) && existsSync(join(mark, "up-right")) &&
        (await getBuild(queen, made.build)).jobs.some((j) => j.result === "failed"),
      60_000,
      "the jobs to start and the allowed failure to end",
    );
    queen.proc.signal("SIGKILL");
    await queen.proc.exit();
    queen = await startQueen({ data, args });
    equal((await getBuild(queen, made.build)).status, "running");
    await Deno.writeTextFile(join(mark, "go"), "");
    const build = await waitForBuild(queen, made.build);
    equal(build.result, "passed", "an allowed failure does not fail the build");
    deepEqual(
      Object.fromEntries(build.jobs.map((j) => [j.name, j.result])),
      { "side-left": "passed", "side-right": "passed", "side-fail": "failed" },
    );
    for (const side of ["left", "right"]) {
      match(await jobLog(queen, `${made.build}.side-${side}`), new RegExp(`side ${side} went`));
    }

    // A submitter cannot add a job to a build, not even a finished one of its own.
    const joining = await api(queen, "/api/jobs", {
      method: "POST",
      body: JSON.stringify(customJob(repo.path, { test: "true" }, {
        build: { id: made.build, name: "intruder" },
      })),
    });
    equal(joining.status, 400);
    match((await joining.json()).error, /build: is set by the queen/);
    equal((await getBuild(queen, made.build)).jobs.length, 3);
    // A taken build id is a conflict, and nothing of the second build is queued.
    const again = await api(queen, "/api/jobs", {
      method: "POST",
      body: JSON.stringify(customJob(repo.path, { test: "true" }, {
        job_id: made.build,
        parallelism: 2,
      })),
    });
    equal(again.status, 409);
    await again.body?.cancel();
    // Ids of a build's jobs grow from the build's: too long an id is refused up front.
    const long = await api(queen, "/api/jobs", {
      method: "POST",
      body: JSON.stringify(customJob(repo.path, { test: "true" }, {
        job_id: "x".repeat(60),
        parallelism: 2,
      })),
    });
    equal(long.status, 400);
    match((await long.json()).error, /at most 56 characters/);
    // Cancel a running build: every job ends cancelled; a re-run of it all is a new build.
    const held = await submitBuild(
      queen,
      customJob(repo.path, { test: `while [ ! -f "${mark}/release" ]; do sleep 0.1; done` }, {
        parallelism: 2,
      }),
    );
    await waitUntil(
      async () => (await getBuild(queen, held.build)).jobs.every((j) => j.status === "started"),
      60_000,
      "the held build to start",
    );
    const cancel = await api(queen, `/api/builds/${held.build}/cancel`, { method: "POST" });
    equal(cancel.status, 202);
    await cancel.body?.cancel();
    const cancelled = await waitForBuild(queen, held.build);
    equal(cancelled.result, "cancelled");
    deepEqual(cancelled.jobs.map((j) => j.result), ["cancelled", "cancelled"]);
    const twice = await api(queen, `/api/builds/${held.build}/cancel`, { method: "POST" });
    equal(twice.status, 409);
    await twice.body?.cancel();
    await Deno.writeTextFile(join(mark, "release"), "");
    const whole = await api(queen, `/api/builds/${held.build}/rerun`, { method: "POST" });
    equal(whole.status, 201);
    const rerun = await waitForBuild(queen, (await whole.json() as Submitted).build);
    equal(rerun.result, "passed");
    equal(rerun.rerunOf, held.build);
    equal(
      rerun.jobs.filter((j) => held.jobs.includes(j.id)).length,
      0,
      "a whole re-run reuses a job",
    );
    deepEqual(rerun.jobs.map((j) => j.shard), [{ index: 0, total: 2 }, { index: 1, total: 2 }]);

    // The dashboard's build page acts through forms with the session's CSRF token.
    const login = await fetch(`${queen.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: API_TOKEN, next: "/" }),
      redirect: "manual",
    });
    await login.body?.cancel();
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    const page = await (await fetch(`${queen.url}/builds/${held.build}`, { headers: { cookie } }))
      .text();
    const csrf = page.match(/<meta name="csrf-token" content="([^"]+)"/)?.[1] ?? "";
    ok(page.includes(`action="/builds/${held.build}/rerun-failed"`), "no Re-run failed");
    ok(!page.includes(`action="/builds/${held.build}/cancel"`), "a finished build has Cancel");
    const act = (action: string, token: string) =>
      fetch(`${queen.url}/builds/${held.build}/${action}`, {
        method: "POST",
        headers: { cookie },
        body: new URLSearchParams({ _csrf: token }),
        redirect: "manual",
      });
    const forged = await act("rerun-failed", "forged");
    await forged.body?.cancel();
    equal(forged.status, 403);
    const viaForm = await act("rerun-failed", csrf);
    await viaForm.body?.cancel();
    equal(viaForm.status, 303);
    const next = viaForm.headers.get("location")!.replace("/builds/", "");
    ok(next !== held.build);
    equal((await waitForBuild(queen, next)).result, "passed");
    const late = await act("cancel", csrf);
    await late.body?.cancel();
    equal(late.status, 409);

    // Unknown builds are 404s on every route.
    for (const [method, path] of [["GET", ""], ["POST", "/cancel"], ["POST", "/rerun-failed"]]) {
      const response = await api(queen, `/api/builds/nope${path}`, { method });
      equal(response.status, 404, `${method} ${path}`);
      await response.body?.cancel();
    }
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await Deno.remove(mark, { recursive: true }).catch(() => {});
  }
});

Deno.test("one push makes one build; each job reports its own status, the build a summary", async () => {
  const secret = "builds-webhook-secret-42";
  const repo = await makeRepo({ "marker.txt": "one\n" });
  const standIn = new ForgeStandIn();
  const queen = await startQueen({
    env: { STRIDER_WEBHOOK_SECRET: secret },
    args: ["--public-url", "https://ci.example.test"],
  });
  const worker = await startWorker(queen, { name: "hooked", args: ["--capacity", "3"] });
  try {
    const created = await api(queen, "/api/projects", {
      method: "POST",
      body: JSON.stringify({
        name: "octo-org/hello-world",
        repo: { url: repo.path },
        branches: {
          "*": {
            plugins: ["custom"],
            config: { custom: { test: '[ "$STRIDER_MATRIX_NODE" != 20 ]' } },
            matrix: { node: ["18", "20"] },
          },
        },
        secrets: { FORGE_TOKEN: "ghp-builds-token" },
        status: { api: `${standIn.url}/github` },
      }),
    });
    equal(created.status, 201, await created.text());
    const sha = await commitFiles(repo.path, { "marker.txt": "two\n" }, "second");
    const payload = await fixture("github_push");
    Object.assign(payload, { ref: "refs/heads/main", after: sha });
    const response = await deliver(queen.url, "github", { event: "push", payload, secret });
    const made = await response.json();
    equal(response.status, 201, JSON.stringify(made));
    equal(made.jobs.length, 2);
    const build = await waitForBuild(queen, made.build);
    equal(build.result, "failed");
    const final = (context: string) =>
      standIn.calls.filter((c) => c.sha === sha && c.body.context === context)
        .map((c) => String(c.body.state));
    await waitUntil(
      () => ["strider", "strider/node-18", "strider/node-20"].every((c) => final(c).length === 2),
      30_000,
      `statuses (got ${JSON.stringify(standIn.calls.map((c) => c.body))})`,
    );
    deepEqual(final("strider/node-18"), ["pending", "success"]);
    deepEqual(final("strider/node-20"), ["pending", "failure"]);
    deepEqual(final("strider"), ["pending", "failure"]);
    const summary = standIn.calls.find((c) => c.sha === sha && c.body.context === "strider")!;
    equal(summary.body.target_url, `https://ci.example.test/builds/${made.build}`);
    deepEqual(standIn.refused, []);

    // Without plugins in the project, strider.json decides, and its matrix grows the build from
    // its plan job: the commit's summary status stays pending until the whole build ends, and
    // each job the matrix added reports its own, as the project's matrix jobs do.
    const patched = await api(queen, "/api/projects/octo-org/hello-world", {
      method: "PATCH",
      body: JSON.stringify({ branches: { main: {} } }),
    });
    equal(patched.status, 200, await patched.text());
    const sha2 = await commitFiles(repo.path, {
      "strider.json": JSON.stringify({
        plugins: ["custom"],
        config: { custom: { test: '[ "$STRIDER_MATRIX_OS" != bsd ] || { sleep 1; exit 1; }' } },
        matrix: { os: ["linux", "bsd"] },
      }),
    }, "a matrix in strider.json");
    Object.assign(payload, { after: sha2 });
    const second = await deliver(queen.url, "github", { event: "push", payload, secret });
    const plan = await second.json();
    equal(second.status, 201, JSON.stringify(plan));
    const grown = await waitForBuild(queen, plan.build);
    equal(grown.result, "failed");
    equal(grown.jobs.length, 3);
    const finalOf = (context: string) =>
      standIn.calls.filter((c) => c.sha === sha2 && c.body.context === context)
        .map((c) => String(c.body.state));
    const contexts = ["strider", "strider/os-linux", "strider/os-bsd"];
    await waitUntil(
      () => contexts.every((c) => finalOf(c).length === 2),
      30_000,
      `statuses of ${sha2}: ${JSON.stringify(standIn.calls.filter((c) => c.sha === sha2))}`,
    );
    deepEqual(finalOf("strider"), ["pending", "failure"], "the whole build");
    deepEqual(finalOf("strider/os-linux"), ["pending", "success"]);
    deepEqual(finalOf("strider/os-bsd"), ["pending", "failure"]);
    equal(standIn.statesOf(sha2).length, 6, "no other status was sent");
    const linux = grown.jobs.find((j) => j.name === "os-linux")!;
    const linuxCall = standIn.calls.find((c) => c.body.context === "strider/os-linux")!;
    equal(linuxCall.body.target_url, `https://ci.example.test/jobs/${linux.id}`);
    deepEqual(standIn.refused, []);
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await standIn.close();
  }
});

Deno.test("a matrix in the repository's strider.json makes the build, on the fetched commit", async () => {
  const repo = await makeRepo({
    "strider.json": JSON.stringify({
      plugins: ["custom"],
      config: { custom: { test: 'echo "node=$STRIDER_MATRIX_NODE shard=$STRIDER_SHARD_INDEX"' } },
      matrix: { node: ["18", "20"] },
      parallelism: 2,
    }),
  });
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "reader", args: ["--capacity", "2"] });
  try {
    const made = await submitBuild(queen, {
      repo: { url: repo.path },
      ref: { branch: "main" },
    });
    equal(made.build, made.id, "it starts as a build of one");
    const build = await waitForBuild(queen, made.build);
    equal(build.result, "passed", JSON.stringify(build.jobs));
    deepEqual(build.jobs.map((j) => j.name), [
      "plan",
      "node-18-shard-0",
      "node-18-shard-1",
      "node-20-shard-0",
      "node-20-shard-1",
    ]);
    deepEqual(build.axes, [{ name: "node", values: ["18", "20"] }]);
    for (const job of build.jobs.slice(1)) {
      const view = await getJob(queen, job.id);
      deepEqual(view.spec.ref, { branch: "main", id: repo.commit });
      const [node, shard] = [job.matrix!.node, job.shard!.index];
      match(await jobLog(queen, job.id), new RegExp(`node=${node} shard=${shard}`));
    }
    equal((await jobLog(queen, made.id)).includes("node="), false, "the plan job ran the tests");
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
