/**
 * End to end, as a hostile contributor would try it: repository credentials offered to a host a
 * repository names (a submodule elsewhere), credentials left where job commands can read them,
 * and a job under `--isolation bwrap` going after the worker, its token, other jobs, the queen's
 * data and the machine (fork bomb, memory, processes left behind after cancel or timeout).
 */
import { equal, match, ok } from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import {
  api,
  customJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import type { Proc, TestQueen } from "./helpers/cluster.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";
import { startGitHttpServer } from "./helpers/git_http_server.ts";
import { killLeftovers } from "../worker/process_ledger.ts";

const random = () => crypto.randomUUID().slice(0, 8);

/** Whole output lines of a job's log (the shown command holds the script's words too). */
async function outputLines(queen: TestQueen, id: string): Promise<string[]> {
  return (await jobLog(queen, id)).split("\n");
}

/** PIDs of processes whose command line holds `pattern`. */
async function pgrep(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
}

async function waitNoProcess(pattern: string, timeoutMs = 10_000): Promise<void> {
  try {
    await waitUntil(async () => (await pgrep(pattern)).length === 0, timeoutMs, pattern);
  } catch {
    throw new Error(`processes matching '${pattern}' survived: ${await pgrep(pattern)}`);
  }
}

async function reap(pattern: string): Promise<void> {
  for (const pid of await pgrep(pattern)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

/** An HTTP server that asks for Basic auth and records every Authorization header it gets. */
function startRecorder() {
  const seen: (string | null)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push(request.headers.get("authorization"));
    return new Response("authentication required\n", {
      status: 401,
      headers: { "WWW-Authenticate": 'Basic realm="attacker"' },
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/evil.git`,
    seen,
    close: () => server.shutdown(),
  };
}

/** A bare repository in `root` named `name` whose submodule `lib` points at `url`. */
async function repoWithSubmodule(root: string, name: string, url: string, commit: string) {
  const work = await makeRepo({ "main.txt": `${name} main content\n` });
  await commitFiles(work.path, {
    ".gitmodules": `[submodule "lib"]\n\tpath = lib\n\turl = ${url}\n`,
  }, "add submodule");
  await git(work.path, "update-index", "--add", "--cacheinfo", `160000,${commit},lib`);
  await git(work.path, "commit", "-q", "-m", "gitlink");
  await git(root, "clone", "-q", "--bare", work.path, `${name}.git`);
}

Deno.test("repository credentials reach only the repository's host, never job commands", async (t) => {
  const gitRoot = await Deno.makeTempDir({ prefix: "strider-creds-git-" });
  const username = "ci-user";
  const password = `repo-pw-${random()}-${random()}`;
  const server = startGitHttpServer(gitRoot, { username, password });
  const recorder = startRecorder();
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "creds-runner" });
  try {
    const sub = await makeRepo({ "sub.txt": "same-host submodule content\n" });
    await git(gitRoot, "clone", "-q", "--bare", sub.path, "sub.git");
    await repoWithSubmodule(gitRoot, "same-host", server.url("sub.git"), sub.commit);
    await repoWithSubmodule(gitRoot, "foreign", recorder.url, sub.commit);
    const auth = { type: "https", username, password };

    await t.step(
      "a submodule on another host gets no credential, and the job says why",
      async () => {
        const url = server.url("foreign.git");
        const id = await submitJob(queen, {
          ...customJob(url, { test: "echo SHOULD-NOT-RUN" }),
          repo: { url, auth },
        });
        const job = await waitForJob(queen, id);
        equal(job.result, "errored", await jobLog(queen, id));
        match(job.error ?? "", /submodules failed/);
        // git did ask the other host (so a leak would have shown here), and never with credentials.
        ok(recorder.seen.length > 0, "the submodule host was never contacted");
        equal(recorder.seen.filter((header) => header !== null).length, 0, `${recorder.seen}`);
        ok(server.requests.some((r) => r.user === username && r.status === 200));
      },
    );

    await t.step(
      "a submodule on the same host fetches; commands see the password nowhere",
      async () => {
        const url = server.url("same-host.git");
        // The script knows the password only encoded, so the job spec never carries it plainly.
        const encoded = btoa(password);
        const id = await submitJob(queen, {
          ...customJob(url, {
            test: [
              "cat lib/sub.txt",
              `P=$(printf %s '${encoded}' | base64 -d)`,
              'WORKDIR=$(dirname "$(dirname "$(dirname "$PWD")")")',
              'if env | grep -qF -- "$P"; then echo FOUND-IN-ENV; else echo env-clean; fi',
              'if grep -rlF -- "$P" "$WORKDIR" "$HOME" "$TMPDIR" 2>/dev/null; ' +
              "then echo FOUND-IN-FILES; else echo files-clean; fi",
              // No process left from the fetch carries it either (env or command line).
              'if grep -laF -- "$P" /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; ' +
              "then echo FOUND-IN-PROCESS; else echo processes-clean; fi",
            ].join("\n"),
          }),
          repo: { url, auth },
        });
        const job = await waitForJob(queen, id);
        const lines = await outputLines(queen, id);
        equal(job.result, "passed", `${job.error}\n${lines.join("\n")}`);
        ok(lines.includes("same-host submodule content"), lines.join("\n"));
        for (const clean of ["env-clean", "files-clean", "processes-clean"]) {
          ok(lines.includes(clean), `${clean} missing:\n${lines.join("\n")}`);
        }
      },
    );

    await t.step("a secret printed half on stdout, half on stderr, is masked", async () => {
      const repo = await makeRepo({ "a.txt": "a\n" });
      const id = await submitJob(queen, {
        ...customJob(repo.path, {
          test: "printf 'before split-'; sleep 0.3; printf 'across-streams after\\n' >&2; " +
            "sleep 0.3; printf 'split-across-'; sleep 0.3; printf 'streams\\n' >&2",
        }),
        secrets: { STREAM_SECRET: "split-across-streams" },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      const log = await jobLog(queen, id);
      match(log, /before \*\*\* after/);
      for (const half of ["split-", "across-streams"]) {
        ok(!log.split("\n").some((line) => !line.startsWith("$ ") && line.includes(half)), log);
      }
      // What the worker sent as output, stream by stream (not the shown command).
      const body = await (await api(queen, `/api/jobs/${id}/events`)).text();
      const output = [...body.matchAll(/"event":"job:cmd:std(?:out|err)"[^}]*"text":"([^"]*)"/g)]
        .map((m) => m[1]).join("|");
      ok(output.includes("***"), `no output events found in ${body.slice(0, 2000)}`);
      ok(!output.includes("across-streams"), `the second half was sent unmasked: ${output}`);
      ok(!output.includes("split-"), `the first half was sent unmasked: ${output}`);
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await server.close();
    await recorder.close();
    await Deno.remove(gitRoot, { recursive: true }).catch(() => {});
  }
});

/** Whether bubblewrap can create the sandbox jobs get (user and PID namespaces) here. */
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

/** Whether this bwrap's help names `option`. */
function bwrapHas(option: string): boolean {
  const help = new Deno.Command("bwrap", { args: ["--help"], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(help.stdout).includes(option);
}

Deno.test({
  name: "a job under --isolation bwrap cannot reach the worker, its token, other jobs or the queen",
  ignore: !bwrapWorks(),
  async fn(t) {
    const tag = random();
    const tokenDir = await Deno.makeTempDir({ prefix: "strider-token-" });
    const tokenFile = join(tokenDir, "worker-token");
    await Deno.writeTextFile(tokenFile, WORKER_TOKEN, { mode: 0o600 });
    const queen = await startQueen();
    let worker: Proc | undefined;
    try {
      worker = await startWorker(queen, {
        name: "contained",
        args: [
          "--isolation",
          "bwrap",
          "--keep-workspaces",
          "10",
          "--kill-grace",
          "1",
          "--max-procs",
          "64",
          "--max-memory",
          "256",
        ],
        env: { STRIDER_WORKER_TOKEN: WORKER_TOKEN },
      });
      const repo = await makeRepo({ "a.txt": "a\n" });

      // Another job, whose kept workspace holds something of its own.
      const first = await submitJob(
        queen,
        customJob(repo.path, { test: `echo other-job-${tag} > mine.txt; echo "PWD=$PWD"` }),
      );
      equal((await waitForJob(queen, first)).result, "passed");
      const otherSrc = (await outputLines(queen, first)).find((l) => l.startsWith("PWD="))!
        .slice(4);
      ok(await Deno.stat(join(otherSrc, "mine.txt")), "the first job's file is not there");
      const workdir = dirname(dirname(dirname(otherSrc)));

      await t.step(
        "the worker, its token, other jobs and the queen's data are out of reach",
        async () => {
          const probes: [string, string][] = [
            ["SAW-WORKER", `kill -0 ${worker!.pid}`],
            ["KILLED-WORKER", `kill -9 ${worker!.pid}`],
            ["READ-TOKEN-FILE", `cat ${tokenFile}`],
            ["READ-TOKEN-CMDLINE", `cat /proc/*/cmdline | tr '\\0' ' ' | grep -q "$P"`],
            ["READ-TOKEN-ENV", `cat /proc/*/environ | tr '\\0' '\\n' | grep -q "$P"`],
            ["SAW-OTHER-JOB", `cat ${otherSrc}/mine.txt`],
            // Its own workspace's parent exists (made for the mount); nothing else is in it.
            ["SAW-WORKDIR", `ls -a ${workdir}/jobs | grep -F ${basename(dirname(otherSrc))}`],
            ["SAW-QUEEN-DATA", `ls ${queen.data}`],
            ["READ-SHADOW", "grep -q root /etc/shadow"],
            ["IS-ROOT", 'test "$(id -u)" = 0'],
            ...(bwrapHas("--disable-userns") ? [["NESTED-USERNS", "unshare --user true"]] : []),
          ] as [string, string][];
          const script = [
            // The token only encoded: the job's own command line must not hold it.
            `T=$(printf %s '${btoa(WORKER_TOKEN)}' | base64 -d)`,
            // As a pattern whose own text ([t]est...) does not match, so grep cannot find itself.
            `P=$(printf %s "$T" | sed 's/^./[&]/')`,
            `echo "visible-processes=$(ls -d /proc/[0-9]* | wc -l)"`,
            ...probes.map(([name, probe]) =>
              `if ${probe} >/dev/null 2>&1; then echo ${name}; else echo "blocked ${name}"; fi`
            ),
          ].join("\n");
          const id = await submitJob(queen, customJob(repo.path, { test: script }));
          const job = await waitForJob(queen, id);
          const lines = await outputLines(queen, id);
          equal(job.result, "passed", `${job.error}\n${lines.join("\n")}`);
          for (const [name] of probes) {
            ok(lines.includes(`blocked ${name}`), `${name}:\n${lines.join("\n")}`);
          }
          // Only the sandbox's own few processes: bwrap's init, the shell, ls.
          const visible = Number(lines.find((l) => l.startsWith("visible-processes="))?.slice(18));
          ok(visible > 0 && visible < 8, `the job saw ${visible} processes`);
          equal(worker!.exited, false, "the worker died");
        },
      );

      await t.step("killing everything it can reach ends only the job", async () => {
        const id = await submitJob(queen, customJob(repo.path, { test: "kill -9 -1; sleep 5" }));
        const job = await waitForJob(queen, id);
        equal(job.result, "failed", await jobLog(queen, id));
        equal(worker!.exited, false, "the worker died");
      });

      await t.step("a fork bomb stops at --max-procs and the worker stays healthy", async () => {
        const marker = `bomb-${tag}`;
        try {
          const id = await submitJob(queen, {
            ...customJob(repo.path, {
              // Counts each child it manages to start; the count stays under the limit.
              test: `n=0; while [ $n -lt 500 ]; do sleep 600 & n=$((n+1)); echo $n > started; done`,
              cleanup: `echo "started=$(cat started)"`,
            }),
          });
          const job = await waitForJob(queen, id, 60_000);
          const lines = await outputLines(queen, id);
          equal(job.result, "failed", lines.join("\n"));
          const started = Number(lines.find((l) => l.startsWith("started="))?.slice(8));
          ok(started > 10 && started < 64, `started ${started}:\n${lines.join("\n")}`);
          ok(/fork|resource temporarily unavailable/i.test(lines.join("\n")), lines.join("\n"));

          // A bomb that keeps every process waiting on its children, ended by the job's timeout
          // (or by giving up at the limit): nothing of it is left afterwards.
          const bomb = await submitJob(queen, {
            ...customJob(repo.path, {
              test: `b() { echo ${marker} >/dev/null; b | b & wait; }; b; wait`,
            }),
            timeout: 5,
          });
          await waitForJob(queen, bomb, 60_000);
          await waitNoProcess(marker);
          // And the worker runs the next job as before.
          const next = await submitJob(queen, customJob(repo.path, { test: "echo still-healthy" }));
          equal((await waitForJob(queen, next)).result, "passed");
          ok((await outputLines(queen, next)).includes("still-healthy"));
          equal(worker!.exited, false, "the worker died");
        } finally {
          await reap(marker);
        }
      });

      await t.step("a process may not take more than --max-memory", async () => {
        const id = await submitJob(
          queen,
          customJob(repo.path, {
            test: "python3 -c 'bytearray(512 * 1024 * 1024)' 2>&1 || echo allocation-refused",
          }),
        );
        await waitForJob(queen, id);
        ok((await outputLines(queen, id)).includes("allocation-refused"), await jobLog(queen, id));
      });

      for (const how of ["cancel", "timeout"] as const) {
        await t.step(`${how} leaves no process behind, even one that left the group`, async () => {
          const seconds = `1000.${Math.floor(Math.random() * 1e6)}`;
          // The script names the time through a variable: only the sleeps match the marker.
          const marker = `sleep ${seconds}`;
          try {
            const id = await submitJob(queen, {
              ...customJob(repo.path, {
                // The shell takes SIGTERM as a chance to clean up; one child ignores it.
                test: `trap 'echo got-term; exit 0' TERM; ` +
                  `S=${seconds}; setsid sleep $S & (trap '' TERM; exec sleep $S) & ` +
                  `nohup sleep $S >/dev/null 2>&1 & echo children-started; wait`,
              }),
              ...(how === "timeout" ? { timeout: 4 } : {}),
            });
            await waitUntil(
              async () => (await jobLog(queen, id)).includes("\nchildren-started"),
              30_000,
              "children-started",
            );
            await waitUntil(async () => (await pgrep(marker)).length === 3, 10_000, "3 children");
            if (how === "cancel") {
              equal((await api(queen, `/api/jobs/${id}/cancel`, { method: "POST" })).status, 202);
            }
            const job = await waitForJob(queen, id, 30_000);
            equal(job.result, how === "cancel" ? "cancelled" : "timeout");
            // SIGTERM came first, inside the sandbox, before the sandbox was killed.
            ok((await outputLines(queen, id)).includes("got-term"), await jobLog(queen, id));
            await waitNoProcess(marker);
          } finally {
            await reap(marker);
          }
        });
      }
    } finally {
      await worker?.stop();
      await queen.proc.stop();
      await Deno.remove(tokenDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("without isolation, cancel and timeout still end processes that left the group", async (t) => {
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "uncontained", args: ["--kill-grace", "1"] });
  try {
    const repo = await makeRepo({ "a.txt": "a\n" });
    for (const how of ["cancel", "timeout"] as const) {
      await t.step(how, async () => {
        const seconds = `1000.${Math.floor(Math.random() * 1e6)}`;
        const marker = `sleep ${seconds}`;
        try {
          const id = await submitJob(queen, {
            ...customJob(repo.path, {
              test: `S=${seconds}; setsid sleep $S & nohup sleep $S >/dev/null 2>&1 & ` +
                `(setsid sh -c "exec sleep $S" &) ; echo children-started; wait`,
            }),
            ...(how === "timeout" ? { timeout: 4 } : {}),
          });
          await waitUntil(
            async () => (await jobLog(queen, id)).includes("\nchildren-started"),
            30_000,
            "children-started",
          );
          await waitUntil(async () => (await pgrep(marker)).length === 3, 10_000, "3 children");
          if (how === "cancel") {
            equal((await api(queen, `/api/jobs/${id}/cancel`, { method: "POST" })).status, 202);
          }
          const job = await waitForJob(queen, id, 30_000);
          equal(job.result, how === "cancel" ? "cancelled" : "timeout");
          await waitNoProcess(marker);
        } finally {
          await reap(marker);
        }
      });
    }
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});

/** Runs `script` as uid/gid 65534 (another local user); its exit code. Needs root. */
async function asOtherUser(script: string): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    uid: 65534,
    gid: 65534,
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code;
}

Deno.test({
  name: "another local user can neither read a worker's checkouts nor write its process ledger",
  async fn(t) {
    const queen = await startQueen();
    const repo = await makeRepo({ "private.txt": "private source\n" });
    const workers: Proc[] = [];
    /** Starts a worker under `umask`, which its folders and files must not depend on. */
    const start = async (name: string, umask: number, args: string[]) => {
      // A workdir the worker makes itself, in a folder anyone may pass (as /var/lib or /srv).
      const parent = await Deno.makeTempDir({ prefix: "strider-parent-" });
      await Deno.chmod(parent, 0o755);
      const workdir = ["--workdir", join(parent, "work")];
      const before = Deno.umask(umask);
      try {
        workers.push(
          await startWorker(queen, { name, args: [...args, ...workdir, "--labels", name] }),
        );
      } finally {
        Deno.umask(before);
      }
    };
    /** Runs a job on `label` and returns the worker's workdir and the job's checkout. */
    const checkout = async (label: string) => {
      const id = await submitJob(
        queen,
        customJob(repo.path, { test: 'echo "PWD=$PWD"' }, { labels: [label] }),
      );
      equal((await waitForJob(queen, id)).result, "passed", await jobLog(queen, id));
      const src = (await outputLines(queen, id)).find((l) => l.startsWith("PWD="))!.slice(4);
      return { src, workdir: dirname(dirname(dirname(src))) };
    };
    try {
      await t.step("without isolation, under the usual umask 022", async () => {
        await start("open-worker", 0o022, ["--keep-workspaces", "2"]);
        const { src, workdir } = await checkout("open-worker");
        equal((await Deno.stat(workdir)).mode! & 0o077, 0, "the workdir is open to others");
        if (Deno.uid() !== 0) return;
        equal(await asOtherUser("cat /etc/passwd"), 0, "the other user cannot run at all");
        ok((await asOtherUser(`cat '${src}/private.txt'`)) !== 0, "read another's checkout");
        ok((await asOtherUser(`ls '${workdir}/cache/git'`)) !== 0, "listed the mirror cache");
        ok((await asOtherUser(`touch '${workdir}/pids/4242'`)) !== 0, "wrote the ledger");
      });

      // The job user may pass through the workdir to its workspace; nothing else of it.
      await t.step({
        name: "under --run-as, even with umask 000, the job's user writes no worker file",
        ignore: Deno.uid() !== 0 || !bwrapWorks(),
        fn: async () => {
          await start("runas-worker", 0o000, ["--isolation", "bwrap", "--keep-workspaces", "2"]);
          const { workdir } = await checkout("runas-worker");
          for (const dir of ["pids", "spool"]) {
            await Deno.mkdir(join(workdir, dir), { recursive: true });
            ok(
              (await asOtherUser(`touch '${workdir}/${dir}/4242'`)) !== 0,
              `uid 65534 wrote into the worker's ${dir} folder`,
            );
          }
        },
      });

      await t.step({
        name: "a restarted worker kills only the groups its own user noted",
        ignore: Deno.uid() !== 0,
        fn: async () => {
          const ledger = await Deno.makeTempDir({ prefix: "strider-ledger-" });
          const seconds = `1000.${Math.floor(Math.random() * 1e6)}`;
          // A group leader of someone else's, noted as if a job of the worker's had started it.
          const victim = new Deno.Command("setsid", { args: ["sleep", seconds] }).spawn();
          try {
            const note = join(ledger, String(victim.pid));
            await Deno.writeTextFile(note, String(Date.now()));
            await Deno.chown(note, 65534, 65534);
            equal(await killLeftovers(ledger), 0, "killed on another user's note");
            equal((await pgrep(`sleep ${seconds}`)).length, 1, "the group was killed");
            // The same note in the worker's own hand is honoured.
            await Deno.writeTextFile(note, String(Date.now()));
            equal(await killLeftovers(ledger), 1);
            await waitNoProcess(`sleep ${seconds}`);
          } finally {
            await reap(`sleep ${seconds}`);
            await victim.status;
            await Deno.remove(ledger, { recursive: true });
          }
        },
      });
    } finally {
      for (const worker of workers) await worker.stop();
      await queen.proc.stop();
    }
  },
});
