/**
 * End to end: the environment a job's commands see (what common suites expect of a CI machine),
 * `--env-pass`, the seed's own job data, DEPLOY semantics, Mercurial's logged commands and the
 * CLI on a closed pipe.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  CLIENT_PERMISSIONS,
  customJob,
  ENTRY,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { makeHgRepo } from "./helpers/hg_repo.ts";
import { API_TOKEN } from "./helpers/cluster.ts";

Deno.test("jobs get the environment test suites expect, and the seed's job data", async (t) => {
  const repo = await makeRepo({ "README": "hello\n" });
  const queen = await startQueen();
  const worker = await startWorker(queen, {
    name: "env-worker",
    args: ["--env-pass", "SITE_CA_BUNDLE", "--env-pass", "SITE_UNSET"],
    env: { SITE_CA_BUNDLE: "/etc/site/ca.pem", NOT_PASSED: "worker-only" },
  });
  try {
    await t.step("tput and $SHELL work; TERM, USER, LOGNAME, HOME, TMPDIR are set", async () => {
      const id = await submitJob(
        queen,
        customJob(repo.path, {
          test: [
            'echo "cols=$(tput cols) colors=$(tput colors)"',
            "tput setaf 1 >/dev/null && echo setaf-ok",
            '"$SHELL" -c \'echo "shell=$0"\'',
            'echo "term=$TERM user=$USER logname=$LOGNAME"',
            'echo "home=$HOME tmpdir=$TMPDIR pwd=$PWD"',
            'test -d "$HOME" && test -w "$TMPDIR" && echo dirs-ok',
            'echo "ca=$SITE_CA_BUNDLE unset=${SITE_UNSET-none} leaked=${NOT_PASSED-none}"',
          ].join("\n"),
        }),
      );
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", await jobLog(queen, id));
      // The command's output alone: the log also shows the script.
      const log = job.phases.test.commands[0].output;
      match(log, /cols=\d+ colors=\d+/);
      match(log, /setaf-ok/);
      match(log, /shell=\/bin\/(bash|sh)/);
      match(log, /term=xterm user=\S+ logname=\S+/);
      const [, user, logname] = log.match(/user=(\S+) logname=(\S+)/)!;
      equal(user, logname);
      const [, home, tmpdir] = log.match(/home=(\S+) tmpdir=(\S+)/)!;
      ok(home.endsWith(`/jobs/${id}.1/home`), home);
      ok(tmpdir.endsWith(`/jobs/${id}.1/tmp`), tmpdir);
      match(log, /dirs-ok/);
      match(log, /ca=\/etc\/site\/ca.pem unset=none leaked=none/);
    });

    await t.step("the seed's repo.url and an epoch-ms trigger timestamp give 201", async () => {
      const response = await api(queen, "/api/jobs", {
        method: "POST",
        body: JSON.stringify({
          user_id: "jaredly",
          repo: { url: "github.com/jaredly/jared.git", provider: "github", vcs: "git" },
          ref: { branch: "master" },
          job_type: "TEST",
          labels: ["nobody-has-this-label"],
          trigger: {
            type: "manual",
            author: { name: "Jared Forsyth", url: "github.com/jaredly" },
            timestamp: 1393606800000,
            source: { type: "UI", page: "dashboard" },
          },
          plugins: ["custom"],
          config: { custom: { test: "true" } },
        }),
      });
      const body = await response.json();
      equal(response.status, 201, JSON.stringify(body));
      const view = await getJob(queen, body.id);
      equal(view.spec.repo.url, "https://github.com/jaredly/jared.git");
      equal(view.spec.trigger?.timestamp, "2014-02-28T17:00:00.000Z");
      await api(queen, `/api/jobs/${body.id}/cancel`, { method: "POST" });
    });

    await t.step("the older format's epoch-ms commit timestamp gives 201", async () => {
      const response = await api(queen, "/api/jobs", {
        method: "POST",
        body: JSON.stringify({
          repo_ssh_url: "git@github.com:jaredly/jared.git",
          job_type: "TEST_ONLY",
          github_commit_info: { id: "abcdef12", branch: "master", timestamp: 1393606800000 },
        }),
      });
      const body = await response.json();
      equal(response.status, 201, JSON.stringify(body));
      equal((await getJob(queen, body.id)).spec.trigger?.timestamp, "2014-02-28T17:00:00.000Z");
      await api(queen, `/api/jobs/${body.id}/cancel`, { method: "POST" });
    });

    await t.step("DEPLOY runs the test phase first and deploys only when it passes", async () => {
      const failing = await submitJob(
        queen,
        customJob(repo.path, { test: "echo TESTED; exit 3", deploy: "echo DEPLOYED" }, {
          job_type: "DEPLOY",
        }),
      );
      const failed = await waitForJob(queen, failing);
      equal(failed.result, "failed");
      const failedLog = await jobLog(queen, failing);
      match(failedLog, /TESTED/);
      ok(!failedLog.includes("DEPLOYED"), "a DEPLOY job deployed after a failing test");

      const passing = await submitJob(
        queen,
        customJob(repo.path, { test: "echo TESTED", deploy: "echo DEPLOYED" }, {
          job_type: "DEPLOY",
        }),
      );
      const passed = await waitForJob(queen, passing);
      equal(passed.result, "passed");
      equal(passed.tested, 0);
      equal(passed.deployed, 0);
      match(await jobLog(queen, passing), /TESTED[\s\S]*DEPLOYED/);
    });

    await t.step("a Mercurial fetch logs the commands it really runs", async () => {
      const hgRepo = await makeHgRepo({ "hello.txt": "from hg\n" });
      const id = await submitJob(queen, {
        ...customJob(hgRepo.path, { test: "cat hello.txt" }),
        repo: { url: hgRepo.path, vcs: "hg" },
        ref: { branch: "default" },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      const fetch = job.phases.prepare.commands[0].command;
      equal(
        fetch,
        `hg clone --noupdate -- ${hgRepo.path} src && hg update --clean --rev default`,
      );
    });

    await t.step("CLI commands exit quietly when the reader closes the pipe", async () => {
      const ids = (await (await api(queen, "/api/jobs")).json()).jobs.map((j: { id: string }) =>
        j.id
      );
      ok(ids.length > 0);
      const strider = ["deno", "run", ...CLIENT_PERMISSIONS, ENTRY].join(" ");
      for (const command of ["jobs", "drones", `logs ${ids[0]}`, "--version"]) {
        for (const reader of ["head -1", "true"]) {
          const out = await new Deno.Command("sh", {
            args: ["-c", `${strider} ${command} --queen ${queen.url} | ${reader}`],
            env: { STRIDER_API_TOKEN: API_TOKEN, NO_COLOR: "1" },
            stdout: "piped",
            stderr: "piped",
          }).output();
          const stderr = new TextDecoder().decode(out.stderr);
          equal(stderr, "", `strider ${command} | ${reader} printed:\n${stderr}`);
          equal(out.code, 0);
        }
      }
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

Deno.test("--env-pass refuses the worker's own STRIDER_ settings", async () => {
  const queen = await startQueen();
  try {
    const worker = await startWorker(queen, {
      name: "bad-pass",
      args: ["--env-pass", "STRIDER_WORKER_TOKEN"],
      wait: false,
    });
    const status = await worker.exit(30_000);
    equal(status.code, 2);
    match(worker.stderr, /--env-pass: 'STRIDER_WORKER_TOKEN' is the worker's own setting/);
    deepEqual((await (await api(queen, "/api/drones")).json()).drones, []);
  } finally {
    await queen.proc.stop();
  }
});

/** Whether bubblewrap can make a sandbox here. */
function bwrapWorks(): boolean {
  try {
    return new Deno.Command("bwrap", {
      args: ["--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--", "true"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "under --run-as, USER and LOGNAME name the job's user (its uid when it has no name)",
  // Only a root worker switches users.
  ignore: Deno.uid() !== 0 || !bwrapWorks(),
  async fn(t) {
    const repo = await makeRepo({ "README": "hello\n" });
    const queen = await startQueen();
    let unnamed = 54321;
    while ((await getent(String(unnamed))) !== "") unnamed++;
    const workers = [
      await startWorker(queen, {
        name: "as-nobody",
        args: ["--isolation", "bwrap", "--labels", "nobody", "--keep-workspaces", "2"],
      }),
      await startWorker(queen, {
        name: "as-unnamed",
        args: [
          "--isolation",
          "bwrap",
          "--run-as",
          String(unnamed),
          "--labels",
          "unnamed",
          "--keep-workspaces",
          "2",
        ],
        // The worker's own name, which the job must not see as its own.
        env: { USER: "root", LOGNAME: "root" },
      }),
    ];
    try {
      for (
        const [label, uid, want] of [
          ["nobody", 65534, "nobody"],
          ["unnamed", unnamed, String(unnamed)],
        ] as const
      ) {
        await t.step(`run as ${want}`, async () => {
          const id = await submitJob(
            queen,
            customJob(repo.path, {
              test: [
                'echo "user=$USER logname=$LOGNAME"',
                'echo "home=$HOME"; touch "$HOME/made-here" && echo home-writable',
                'echo "PWD=$PWD"; echo mine > mine.txt',
              ].join("\n"),
            }, { labels: [label] }),
          );
          const job = await waitForJob(queen, id, 60_000);
          const out = job.phases.test.commands[0].output;
          equal(job.result, "passed", await jobLog(queen, id));
          match(out, new RegExp(`^user=${want} logname=${want}$`, "m"));
          match(out, /home-writable/);
          ok(out.match(/home=(\S+)/)![1].endsWith(`/jobs/${id}.1/home`), out);
          // USER names the uid that owns, outside the sandbox, what the job made.
          const pwd = out.match(/PWD=(\S+)/)![1];
          equal((await Deno.stat(`${pwd}/mine.txt`)).uid, uid);
        });
      }
    } finally {
      for (const worker of workers) await worker.stop();
      await queen.proc.stop();
    }
  },
});

/** `getent passwd KEY`'s line, or "" when there is no such user. */
async function getent(key: string): Promise<string> {
  const out = await new Deno.Command("getent", { args: ["passwd", key], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).trim();
}
