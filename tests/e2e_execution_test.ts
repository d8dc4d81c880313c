/**
 * End to end, how a job executes on a real worker: private repositories over HTTPS-style basic
 * auth and over SSH, tags, Mercurial, a repository's own strider.json, plugin files, the job's
 * environment, secret masking, refusal of option-like refs, and the bubblewrap sandbox.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  api,
  customJob,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";
import { startAuthProxy, startGitHttpServer } from "./helpers/git_http_server.ts";
import { makeHgRepo, startHgServe } from "./helpers/hg_repo.ts";
import { startSshd } from "./helpers/sshd.ts";

const random = () => crypto.randomUUID().slice(0, 8);

/** Everything the API shows about a job, as raw text: its JSON, its log and its event stream. */
async function everythingShown(queen: TestQueen, id: string) {
  const json = await (await api(queen, `/api/jobs/${id}`)).text();
  const log = await jobLog(queen, id);
  const events = await (await api(queen, `/api/jobs/${id}/events`)).text();
  const list = await (await api(queen, "/api/jobs?limit=1000")).text();
  return { json, log, events, list, all: [json, log, events, list].join("\n") };
}

/** How many jobs the queen lists. */
async function jobCount(queen: TestQueen): Promise<number> {
  const response = await api(queen, "/api/jobs?limit=1000");
  const text = await response.text();
  equal(response.status, 200, text);
  return JSON.parse(text).jobs.length;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The files under `dir` (recursively, symlinks not followed) whose bytes contain `needle`. */
async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  const bytes = new TextEncoder().encode(needle);
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) {
        const data = await Deno.readFile(path);
        outer: for (let i = 0; i + bytes.length <= data.length; i++) {
          for (let j = 0; j < bytes.length; j++) if (data[i + j] !== bytes[j]) continue outer;
          found.push(path);
          break;
        }
      }
    }
  };
  await walk(dir);
  return found;
}

/** A variable line (`NAME=value`) of `env` output in a log. */
function envLine(log: string, name: string): string | undefined {
  return log.match(new RegExp(`^${name}=(.*)$`, "m"))?.[1];
}

Deno.test("a worker fetches private, tagged and Mercurial code and runs jobs safely", async (t) => {
  const pluginsDir = await Deno.makeTempDir({ prefix: "strider-plugins-" });
  await Deno.writeTextFile(
    join(pluginsDir, "greeter.json"),
    JSON.stringify({ name: "greeter", phases: { test: ["echo hello {{config.who}}"] } }),
  );
  const gitRoot = await Deno.makeTempDir({ prefix: "strider-git-root-" });
  const username = "ci-user";
  const password = `pw-${random()}-${random()}`;
  const server = startGitHttpServer(gitRoot, { username, password });
  const queen = await startQueen();
  const worker = await startWorker(queen, {
    name: "runner",
    // Workspaces are kept so the test can look inside them for leftover credentials.
    args: ["--plugins-dir", pluginsDir, "--keep-workspaces", "50"],
    env: { STRIDER_CANARY_VALUE: "leak-canary-123" },
  });
  try {
    await t.step(
      "a private repository over HTTP basic auth clones; the password shows nowhere",
      async () => {
        const source = await makeRepo({ "private.txt": "private repository content\n" });
        await git(gitRoot, "clone", "-q", "--bare", source.path, "private.git");
        const url = server.url("private.git");
        // The script knows the password only encoded, so the spec itself never carries it.
        const encoded = btoa(password);
        const id = await submitJob(queen, {
          ...customJob(url, {
            test: [
              "cat private.txt",
              "echo '--- .git/config'",
              "cat .git/config",
              "echo '--- git config'",
              "git config --list --show-origin",
              "echo '--- end'",
              'echo "PWD=$PWD"',
              `P=$(printf %s '${encoded}' | base64 -d)`,
              'if grep -rqF -- "$P" "$(dirname "$PWD")"; then echo CREDENTIAL-IN-WORKSPACE; ' +
              "else echo credential-absent; fi",
              "if env | grep -q '^STRIDER_GIT_'; then echo CREDENTIAL-IN-ENV; " +
              "else echo no-credential-env; fi",
            ].join("\n"),
          }),
          repo: { url, auth: { type: "https", username, password } },
        });
        const job = await waitForJob(queen, id);
        equal(job.result, "passed", `${job.error}\n${await jobLog(queen, id)}`);
        ok(
          server.requests.some((r) => r.user === username && r.status === 200),
          `the server never served ${username}: ${JSON.stringify(server.requests)}`,
        );
        const shown = await everythingShown(queen, id);
        match(shown.log, /private repository content/);
        match(shown.log, /--- \.git\/config[\s\S]*--- git config[\s\S]*--- end/);
        match(shown.log, /credential-absent/);
        match(shown.log, /no-credential-env/);
        ok(!shown.all.includes(password), "the password appears in the API");
        ok(!shown.log.includes(`${username}:`), "a user:password URL appears in the log");
        // Not even masked: nothing printed held the password.
        ok(!shown.log.includes("***"), `something secret was printed:\n${shown.log}`);
        equal(JSON.parse(shown.json).spec.repo.auth.password, "***");
        equal(JSON.parse(shown.json).spec.repo.auth.username, username);
        // On the worker's disk (kept workspace, mirror cache, spool): no trace of the password.
        const workdir = dirname(dirname(dirname(envLine(shown.log, "PWD") ?? "")));
        ok(await exists(join(workdir, "jobs")), `no worker workdir at ${workdir}`);
        deepEqual(await filesContaining(workdir, password), []);
      },
    );

    await t.step(
      "without credentials, or with wrong ones, the job errors on authentication",
      async () => {
        const url = server.url("private.git");
        for (const auth of [undefined, { type: "https", username, password: "wrong-password-1" }]) {
          const id = await submitJob(queen, {
            ...customJob(url, { test: "echo SHOULD-NOT-RUN" }),
            repo: auth ? { url, auth } : { url },
          });
          const job = await waitForJob(queen, id);
          equal(job.result, "errored", `auth ${JSON.stringify(auth)}`);
          match(job.error ?? "", /authentication/i);
          const shown = await everythingShown(queen, id);
          ok(!shown.log.includes("SHOULD-NOT-RUN"));
          ok(!shown.all.includes("wrong-password-1"));
        }
      },
    );

    await t.step("a private Mercurial repository over HTTP basic auth clones", async () => {
      const repo = await makeHgRepo({ "hg-private.txt": "private mercurial content\n" });
      const hgServe = await startHgServe(repo.path);
      const hgPassword = `hg-pw-${random()}`;
      const proxy = startAuthProxy(hgServe.origin, { username, password: hgPassword });
      try {
        const url = proxy.url("/");
        const id = await submitJob(queen, {
          ...customJob(url, { test: 'cat hg-private.txt; echo "PWD=$PWD"' }),
          repo: { url, vcs: "hg", auth: { type: "https", username, password: hgPassword } },
          ref: { branch: "default" },
        });
        const job = await waitForJob(queen, id);
        equal(job.result, "passed", `${job.error}\n${await jobLog(queen, id)}`);
        ok(proxy.requests.some((r) => r.user === username && r.status === 200));
        const shown = await everythingShown(queen, id);
        match(shown.log, /private mercurial content/);
        ok(!shown.all.includes(hgPassword), "the password appears in the API");
        const workdir = dirname(dirname(dirname(envLine(shown.log, "PWD") ?? "")));
        deepEqual(await filesContaining(workdir, hgPassword), []);

        const refused = await submitJob(queen, {
          ...customJob(url, { test: "echo SHOULD-NOT-RUN" }),
          repo: { url, vcs: "hg" },
          ref: { branch: "default" },
        });
        const refusedJob = await waitForJob(queen, refused);
        equal(refusedJob.result, "errored");
        match(refusedJob.error ?? "", /authentication/i);
      } finally {
        await proxy.close();
        await hgServe.stop();
      }
    });

    await t.step("a tag fetched by refspec checks out the tagged content", async () => {
      const repo = await makeRepo({ "version.txt": "content of v1.0\n" });
      await git(repo.path, "tag", "-a", "v1.0", "-m", "release 1.0");
      await commitFiles(repo.path, { "version.txt": "content after v1.0\n" }, "later");
      const id = await submitJob(queen, {
        ...customJob(repo.path, { test: "cat version.txt; echo head=$(git rev-parse HEAD)" }),
        ref: { fetch: "refs/tags/v1.0" },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      const log = await jobLog(queen, id);
      match(log, /content of v1\.0/);
      ok(!log.includes("content after v1.0"), log);
      match(log, new RegExp(`head=${repo.commit}`));
    });

    await t.step("a Mercurial repository clones and its files are there", async () => {
      const repo = await makeHgRepo({ "hg-file.txt": "hello from mercurial\n" });
      const id = await submitJob(queen, {
        ...customJob(repo.path, { test: "cat hg-file.txt; echo commit=$STRIDER_COMMIT" }),
        repo: { url: repo.path, vcs: "hg" },
        ref: { branch: "default" },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", `${job.error}\n${await jobLog(queen, id)}`);
      const log = await jobLog(queen, id);
      match(log, /hello from mercurial/);
      match(log, new RegExp(`commit=${repo.node}`));
    });

    await t.step("a repository's strider.json drives a job that names no plugins", async () => {
      const repo = await makeRepo({
        "strider.json": JSON.stringify({
          plugins: ["custom"],
          config: {
            custom: { prepare: "echo prepared by strider.json", test: "echo from strider.json" },
          },
        }),
      });
      const plain = await submitJob(queen, { repo: { url: repo.path }, ref: { branch: "main" } });
      const job = await waitForJob(queen, plain);
      equal(job.result, "passed", job.error ?? "");
      const log = await jobLog(queen, plain);
      match(log, /from strider\.json/);
      match(log, /prepared by strider\.json/);

      // The job's config merges over the file's: its test replaces the file's, prepare stays.
      const merged = await submitJob(queen, {
        repo: { url: repo.path },
        ref: { branch: "main" },
        config: { custom: { test: "echo from the job spec" } },
      });
      const mergedJob = await waitForJob(queen, merged);
      equal(mergedJob.result, "passed", mergedJob.error ?? "");
      const mergedLog = await jobLog(queen, merged);
      match(mergedLog, /from the job spec/);
      match(mergedLog, /prepared by strider\.json/);
      ok(!mergedLog.includes("from strider.json"), mergedLog);
    });

    await t.step("a plugin file is listed on the drone and runs with its config", async () => {
      const body = await (await api(queen, "/api/drones")).json();
      const drone = body.drones.find((d: { name: string }) => d.name === "runner");
      ok(drone.plugins.includes("greeter"), JSON.stringify(drone.plugins));
      const repo = await makeRepo({ "a.txt": "a\n" });
      const id = await submitJob(queen, {
        repo: { url: repo.path },
        ref: { branch: "main" },
        plugins: ["greeter"],
        config: { greeter: { who: "world" } },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      match(await jobLog(queen, id), /hello world/);
    });

    await t.step("commands see a clean CI environment, not the worker's", async () => {
      const repo = await makeRepo({ "a.txt": "a\n" });
      const id = await submitJob(queen, customJob(repo.path, { test: 'env; echo "PWD=$PWD"' }));
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      const log = await jobLog(queen, id);
      ok(!log.includes("leak-canary-123"), "the worker's environment leaked into the job");
      ok(!/^STRIDER_CANARY_VALUE=/m.test(log));
      ok(!/^NO_COLOR=/m.test(log), "the worker's NO_COLOR leaked into the job");
      equal(envLine(log, "CI"), "true");
      equal(envLine(log, "STRIDER_JOB_ID"), id);
      const home = envLine(log, "HOME") ?? "";
      const pwd = envLine(log, "PWD") ?? "";
      const workspace = dirname(pwd);
      ok(workspace.endsWith(`${id}.1`), `workspace ${workspace}`);
      ok(home.startsWith(`${workspace}/`), `HOME ${home} is outside the workspace ${workspace}`);
    });

    await t.step("secret values are masked, even when printed in two pieces", async () => {
      const secret = "s3cr3t-value-xyz";
      const repo = await makeRepo({ "a.txt": "a\n" });
      const id = await submitJob(queen, {
        ...customJob(repo.path, {
          test: [
            'echo "token is $API_TOKEN"',
            "printf 's3cr3t-'; sleep 0.5; printf 'value-xyz\\n'",
            'echo "on stderr $API_TOKEN" >&2',
          ].join("\n"),
        }),
        secrets: { API_TOKEN: secret },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      const shown = await everythingShown(queen, id);
      match(shown.log, /token is \*\*\*/);
      match(shown.log, /^\*\*\*$/m);
      match(shown.log, /on stderr \*\*\*/);
      ok(!shown.all.includes(secret), `the secret leaked:\n${shown.log}`);
      ok(!shown.all.includes("value-xyz\n"), "the second piece was sent unmasked");
      equal(JSON.parse(shown.json).spec.secrets.API_TOKEN, "***");
      equal((await getJob(queen, id)).spec.secrets?.API_TOKEN, "***");
    });

    await t.step("option-like refs and URLs are refused at the API", async () => {
      const marker = `/tmp/strider-pwned-${random()}`;
      const repo = await makeRepo({ "a.txt": "a\n" });
      const before = await jobCount(queen);
      const bad = [
        { ref: { branch: `--upload-pack=touch ${marker}` } },
        { ref: { fetch: `--upload-pack=touch ${marker}` } },
        { ref: { fetch: `+refs/heads/main:--upload-pack=touch ${marker}` } },
        { repo: { url: `--upload-pack=touch ${marker}` } },
        { repo: { url: `ssh://-oProxyCommand=touch%20${marker}/x` } },
      ];
      for (const override of bad) {
        const response = await api(queen, "/api/jobs", {
          method: "POST",
          body: JSON.stringify({ ...customJob(repo.path, { test: "true" }), ...override }),
        });
        equal(response.status, 400, JSON.stringify(override));
        const body = await response.json();
        ok(body.error, JSON.stringify(body));
      }
      const after = await jobCount(queen);
      equal(after, before);
      await new Promise((r) => setTimeout(r, 500));
      ok(!(await exists(marker)), `${marker} was created`);
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await server.close();
  }
});

Deno.test({
  name: "a private repository over SSH clones with the job's key; the key shows nowhere",
  async fn() {
    const sshd = await startSshd();
    const queen = await startQueen();
    const worker = await startWorker(queen, {
      name: "ssh-runner",
      args: ["--keep-workspaces", "10"],
    });
    try {
      const source = await makeRepo({ "over-ssh.txt": "content fetched over ssh\n" });
      const bareParent = await Deno.makeTempDir({ prefix: "strider-ssh-repos-" });
      const bare = join(bareParent, "repo.git");
      await git(bareParent, "clone", "-q", "--bare", source.path, bare);
      const url = `ssh://root@127.0.0.1:${sshd.port}${bare}`;
      const key = sshd.privateKey;
      const keyBody = key.split("\n").filter((l) => l && !l.startsWith("-----"));
      const id = await submitJob(queen, {
        ...customJob(url, { test: 'cat over-ssh.txt; echo "PWD=$PWD"' }),
        repo: { url, auth: { type: "ssh", key } },
      });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", `${job.error}\n${await jobLog(queen, id)}\n${sshd.log()}`);
      const shown = await everythingShown(queen, id);
      match(shown.log, /content fetched over ssh/);
      for (const line of keyBody) ok(!shown.all.includes(line), "a line of the key appears");
      equal(JSON.parse(shown.json).spec.repo.auth.key, "***");
      // The 0600 key file is gone from the kept workspace (and the worker's whole workdir).
      const workdir = dirname(dirname(dirname(envLine(shown.log, "PWD") ?? "")));
      ok(await exists(join(workdir, "jobs")), `no worker workdir at ${workdir}`);
      deepEqual(await filesContaining(workdir, keyBody[1]), []);
      match(sshd.log(), /Accepted publickey for root/);

      // Mercurial over ssh takes the same key.
      const hgRepo = await makeHgRepo({ "hg-over-ssh.txt": "mercurial over ssh\n" });
      const hgUrl = `ssh://root@127.0.0.1:${sshd.port}/${hgRepo.path}`;
      const hgId = await submitJob(queen, {
        ...customJob(hgUrl, { test: "cat hg-over-ssh.txt" }),
        repo: { url: hgUrl, vcs: "hg", auth: { type: "ssh", key } },
        ref: { branch: "default" },
      });
      const hgJob = await waitForJob(queen, hgId);
      equal(hgJob.result, "passed", `${hgJob.error}\n${await jobLog(queen, hgId)}`);
      const hgShown = await everythingShown(queen, hgId);
      match(hgShown.log, /mercurial over ssh/);
      for (const line of keyBody) ok(!hgShown.all.includes(line), "a line of the key appears");

      // The same repository without the key is refused, and says why (the worker's own
      // known_hosts does not know this server, or it has no key the server accepts).
      const refused = await submitJob(queen, {
        ...customJob(url, { test: "echo SHOULD-NOT-RUN" }),
        repo: { url },
      });
      const refusedJob = await waitForJob(queen, refused);
      equal(refusedJob.result, "errored");
      match(refusedJob.error ?? "", /authentication|host key/i);
    } finally {
      await worker.stop();
      await queen.proc.stop();
      await sshd.stop();
    }
  },
});

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

Deno.test({
  name: "with --isolation bwrap a job writes only its workspace and network: false cuts it off",
  async fn(t) {
    ok(
      bwrapWorks(),
      "bubblewrap cannot make a sandbox here: install bubblewrap (bash .ci/run does) and allow " +
        "unprivileged user namespaces",
    );
    const queen = await startQueen();
    const worker = await startWorker(queen, {
      name: "sandboxed",
      args: ["--isolation", "bwrap"],
    });
    const tag = random();
    const outside = [`/etc/strider-escape-${tag}`, `/usr/strider-bwrap-test-${tag}`];
    const rootFile = `/root/strider-escape-${tag}`;
    const privateTmp = `/tmp/strider-private-tmp-${tag}`;
    try {
      const repo = await makeRepo({ "a.txt": "a\n" });

      await t.step("the workspace is writable, the system and home are not", async () => {
        const attempts = [...outside, rootFile].map((path) =>
          `if touch ${path} 2>/dev/null; then echo "ESCAPED ${path}"; exit 1; ` +
          `else echo "contained ${path}"; fi`
        );
        const id = await submitJob(
          queen,
          customJob(repo.path, {
            test: [
              "echo ok > inside.txt && cat inside.txt",
              ...attempts,
              `touch ${privateTmp} && echo private-tmp-written`,
            ].join("\n"),
          }),
        );
        const job = await waitForJob(queen, id);
        const log = await jobLog(queen, id);
        equal(job.result, "passed", `${job.error}\n${log}`);
        match(log, /^ok$/m);
        // (The shown command holds the words too: only whole output lines count.)
        ok(!/^ESCAPED/m.test(log), log);
        for (const path of [...outside, rootFile]) {
          ok(log.split("\n").includes(`contained ${path}`), log);
          ok(!(await exists(path)), `${path} exists on the host`);
        }
        match(log, /^private-tmp-written$/m);
        ok(!(await exists(privateTmp)), "the job's /tmp is the host's /tmp");
      });

      await t.step("network: false cannot reach the queen; the default can", async () => {
        const port = new URL(queen.url).port;
        const probe = `if bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null; ` +
          "then echo REACHED; else echo unreachable; fi";
        const offline = await submitJob(
          queen,
          customJob(repo.path, { test: probe }, { network: false }),
        );
        const online = await submitJob(queen, customJob(repo.path, { test: probe }));
        const offlineJob = await waitForJob(queen, offline);
        const onlineJob = await waitForJob(queen, online);
        equal(offlineJob.result, "passed", offlineJob.error ?? "");
        equal(onlineJob.result, "passed", onlineJob.error ?? "");
        const offlineLog = await jobLog(queen, offline);
        const onlineLog = await jobLog(queen, online);
        match(offlineLog, /^unreachable$/m);
        ok(!/^REACHED$/m.test(offlineLog), offlineLog);
        match(onlineLog, /^REACHED$/m);
      });
    } finally {
      await worker.stop();
      await queen.proc.stop();
      for (const path of [...outside, rootFile, privateTmp]) {
        await Deno.remove(path).catch(() => {});
      }
    }
  },
});
