/**
 * End to end, forge webhooks: a real queen (its secret from STRIDER_WEBHOOK_SECRET) and worker,
 * projects made over the API, a real git repository in a temp folder that the projects point
 * at while the payloads name github.com, gitlab and gitea repositories. Signed deliveries run
 * the pushed commit or the pull request's ref with the payload's trigger; forged ones run
 * nothing; repeats run once; project secrets reach the job and are never shown.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { JobViewSchema } from "../protocol/mod.ts";
import {
  api,
  API_TOKEN,
  cli,
  jobLog,
  startQueen,
  startWorker,
  waitForJob,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";
import { deliver, fixture } from "./helpers/webhooks.ts";
import type { ForgeName } from "./helpers/webhooks.ts";

const SECRET = "e2e-webhook-secret-4711";
const DEPLOY_TOKEN = "dt-9f8e7d6c5b4a";

/** The repository's own settings: what runs when a project's branch names no plugins. */
const STRIDER_JSON = JSON.stringify({
  plugins: ["custom"],
  config: { custom: { test: 'echo "marker: $(cat marker.txt)"; echo "token=$DEPLOY_TOKEN"' } },
});

async function jobIds(queen: TestQueen): Promise<string[]> {
  const body = await (await api(queen, "/api/jobs?limit=1000")).json();
  return body.jobs.map((j: { id: string }) => j.id);
}

async function createProject(queen: TestQueen, project: unknown): Promise<void> {
  const response = await api(queen, "/api/projects", {
    method: "POST",
    body: JSON.stringify(project),
  });
  equal(response.status, 201, await response.text());
}

/** Delivers a payload and returns the id of the job it made (201). */
async function deliverJob(
  queen: TestQueen,
  forge: ForgeName,
  event: string,
  payload: unknown,
  delivery?: string,
): Promise<string> {
  const response = await deliver(queen.url, forge, { event, payload, secret: SECRET, delivery });
  const body = await response.json();
  equal(response.status, 201, JSON.stringify(body));
  return body.id;
}

/** A commit on a side branch, published under `ref` as a forge publishes a pull request. */
async function pullRequestRef(repo: string, ref: string, marker: string): Promise<string> {
  await git(repo, "checkout", "-q", "-b", marker, "main");
  const sha = await commitFiles(repo, { "marker.txt": `${marker}\n` }, `work for ${marker}`);
  await git(repo, "checkout", "-q", "main");
  await git(repo, "update-ref", ref, sha);
  return sha;
}

Deno.test("forge webhooks run projects' jobs end to end", async (t) => {
  const repo = await makeRepo({ "strider.json": STRIDER_JSON, "marker.txt": "main-1\n" });
  const queen = await startQueen({ env: { STRIDER_WEBHOOK_SECRET: SECRET } });
  const worker = await startWorker(queen, { name: "hooks", args: ["--capacity", "2"] });
  try {
    await createProject(queen, {
      name: "octo-org/hello-world",
      repo: { url: repo.path, provider: "github" },
      secrets: { DEPLOY_TOKEN },
    });
    await createProject(queen, { name: "mike/diaspora", repo: { url: repo.path } });
    await createProject(queen, { name: "gitea/webhooks", repo: { url: repo.path } });

    let pushJob = "";
    await t.step(
      "a signed GitHub push runs the pushed commit with its author and message",
      async () => {
        const sha = await commitFiles(repo.path, { "marker.txt": "main-2\n" }, "Second marker");
        await commitFiles(repo.path, { "marker.txt": "main-3\n" }, "A later commit");
        const payload = await fixture("github_push");
        const head = payload.head_commit as Record<string, unknown>;
        Object.assign(head, { id: sha, message: "Second marker\n\nWith a body." });
        Object.assign(payload, { ref: "refs/heads/main", after: sha });
        pushJob = await deliverJob(queen, "github", "push", payload);
        const job = await waitForJob(queen, pushJob);
        equal(job.result, "passed", job.error ?? "");
        deepEqual(job.spec.ref, { branch: "main", id: sha });
        equal(job.spec.repo.url, repo.path);
        const trigger = job.spec.trigger!;
        equal(trigger.type, "commit");
        equal(trigger.message, "Second marker\n\nWith a body.");
        deepEqual(trigger.author, {
          name: "Mona Lisa Octocat",
          email: "monalisa@users.noreply.github.com",
          username: "monalisa",
          url: "https://github.com/monalisa",
          gravatar: "https://avatars.githubusercontent.com/u/583231?v=4",
        });
        deepEqual(trigger.source, { type: "plugin", plugin: "github" });
        match(await jobLog(queen, pushJob), /^marker: main-2$/m, "the pushed commit, not the tip");
      },
    );

    await t.step(
      "project secrets reach the job, masked, and the API never shows them",
      async () => {
        const log = await jobLog(queen, pushJob);
        match(log, /^token=\*\*\*$/m);
        const shown = [
          log,
          await (await api(queen, `/api/jobs/${pushJob}`)).text(),
          await (await api(queen, `/api/jobs/${pushJob}/events`)).text(),
          await (await api(queen, "/api/jobs?limit=1000")).text(),
          await (await api(queen, "/api/projects/octo-org/hello-world")).text(),
          await (await api(queen, "/api/projects")).text(),
        ].join("\n");
        ok(!shown.includes(DEPLOY_TOKEN), "a secret value was shown");
        const view = JobViewSchema.parse(await (await api(queen, `/api/jobs/${pushJob}`)).json());
        deepEqual(view.spec.secrets, { DEPLOY_TOKEN: "***" });
        const project = await (await api(queen, "/api/projects/octo-org/hello-world")).json();
        deepEqual(project.secrets, { DEPLOY_TOKEN: "***" });
      },
    );

    await t.step("a forged or unsigned delivery gets 401 and makes no job", async () => {
      const before = await jobIds(queen);
      const payload = await fixture("github_push");
      const forged = await deliver(queen.url, "github", {
        event: "push",
        payload,
        secret: "not-the-secret",
      });
      equal(forged.status, 401);
      await forged.body?.cancel();
      const unsigned = await deliver(queen.url, "github", { event: "push", payload });
      equal(unsigned.status, 401);
      await unsigned.body?.cancel();
      deepEqual(await jobIds(queen), before);
    });

    await t.step("a repeated delivery makes one job", async () => {
      const before = (await jobIds(queen)).length;
      const payload = await fixture("github_push");
      Object.assign(payload, { after: await git(repo.path, "rev-parse", "HEAD") });
      const id = await deliverJob(queen, "github", "push", payload, "repeat-delivery-1");
      const again = await deliver(queen.url, "github", {
        event: "push",
        payload,
        secret: SECRET,
        delivery: "repeat-delivery-1",
      });
      equal(again.status, 200);
      const body = await again.json();
      equal(body.id, id);
      equal(body.duplicate, true);
      equal((await jobIds(queen)).length, before + 1);
      equal((await waitForJob(queen, id)).result, "passed");
    });

    await t.step("a GitHub pull request checks out refs/pull/N/merge", async () => {
      await pullRequestRef(repo.path, "refs/pull/5/merge", "pr-5");
      const payload = await fixture("github_pull_request");
      Object.assign(payload, { number: 5, action: "synchronize" });
      const id = await deliverJob(queen, "github", "pull_request", payload);
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      deepEqual(job.spec.ref, { fetch: "refs/pull/5/merge" });
      equal(job.spec.trigger?.type, "pull-request");
      equal(job.spec.trigger?.author?.username, "hubot");
      match(await jobLog(queen, id), /^marker: pr-5$/m);
    });

    await t.step("a GitHub tag push checks out the tag", async () => {
      await git(repo.path, "tag", "v1.0.0", "main");
      const payload = await fixture("github_push");
      Object.assign(payload, {
        ref: "refs/tags/v1.0.0",
        after: await git(repo.path, "rev-parse", "main"),
      });
      const id = await deliverJob(queen, "github", "push", payload);
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      deepEqual(job.spec.ref, { fetch: "refs/tags/v1.0.0" });
      match(await jobLog(queen, id), /^marker: main-3$/m);
    });

    await t.step("GitLab: a push and a merge request", async () => {
      const sha = await git(repo.path, "rev-parse", "main~1");
      const push = await fixture("gitlab_push");
      Object.assign(push, { ref: "refs/heads/main", after: sha, checkout_sha: sha });
      (push.commits as { id: string }[])[1].id = sha;
      const pushId = await deliverJob(queen, "gitlab", "Push Hook", push);
      const pushed = await waitForJob(queen, pushId);
      equal(pushed.result, "passed", pushed.error ?? "");
      deepEqual(pushed.spec.ref, { branch: "main", id: sha });
      equal(pushed.spec.trigger?.author?.username, "jsmith");
      equal(pushed.spec.trigger?.message, "fixed readme");
      match(await jobLog(queen, pushId), /^marker: main-2$/m);

      await pullRequestRef(repo.path, "refs/merge-requests/3/head", "mr-3");
      const mr = await fixture("gitlab_merge_request");
      mr.project = push.project;
      Object.assign(mr.object_attributes as object, { iid: 3, target_branch: "main" });
      const mrId = await deliverJob(queen, "gitlab", "Merge Request Hook", mr);
      const merged = await waitForJob(queen, mrId);
      equal(merged.result, "passed", merged.error ?? "");
      deepEqual(merged.spec.ref, { fetch: "refs/merge-requests/3/head" });
      equal(merged.spec.trigger?.message, "!3 MS-Viewport");
      match(await jobLog(queen, mrId), /^marker: mr-3$/m);
    });

    await t.step("Gitea: a push and a pull request", async () => {
      const sha = await git(repo.path, "rev-parse", "main");
      const push = await fixture("gitea_push");
      Object.assign(push, { ref: "refs/heads/main", after: sha });
      (push.head_commit as { id: string }).id = sha;
      const pushId = await deliverJob(queen, "gitea", "push", push);
      const pushed = await waitForJob(queen, pushId);
      equal(pushed.result, "passed", pushed.error ?? "");
      deepEqual(pushed.spec.trigger?.source, { type: "plugin", plugin: "gitea" });
      match(await jobLog(queen, pushId), /^marker: main-3$/m);

      await pullRequestRef(repo.path, "refs/pull/8/head", "gitea-pr-8");
      const pr = await fixture("gitea_pull_request");
      Object.assign(pr, { number: 8, action: "opened" });
      const prId = await deliverJob(queen, "gitea", "pull_request", pr);
      const opened = await waitForJob(queen, prId);
      equal(opened.result, "passed", opened.error ?? "");
      deepEqual(opened.spec.ref, { fetch: "refs/pull/8/head" });
      equal(opened.spec.trigger?.author?.name, "Alice Liddell");
      match(await jobLog(queen, prId), /^marker: gitea-pr-8$/m);
    });

    await t.step("an unknown repository gets 404; a ping 200; neither makes a job", async () => {
      const before = await jobIds(queen);
      const payload = await fixture("github_push");
      (payload.repository as Record<string, unknown>).full_name = "someone/unknown";
      for (const key of ["clone_url", "ssh_url", "git_url", "html_url", "svn_url", "url"]) {
        (payload.repository as Record<string, unknown>)[key] = `https://github.com/someone/unknown`;
      }
      const unknown = await deliver(queen.url, "github", {
        event: "push",
        payload,
        secret: SECRET,
      });
      equal(unknown.status, 404);
      await unknown.body?.cancel();
      const ping = await deliver(queen.url, "github", {
        event: "ping",
        payload: await fixture("github_ping"),
        secret: SECRET,
      });
      equal(ping.status, 200);
      await ping.body?.cancel();
      deepEqual(await jobIds(queen), before);
    });

    await t.step("the CLI shows triggers and re-runs a job", async () => {
      const env = { STRIDER_API_TOKEN: API_TOKEN };
      const list = await cli(["jobs", "--queen", queen.url], env);
      equal((await list.status).code, 0, list.stderr);
      const line = list.stdout.split("\n").find((l) => l.startsWith(pushJob)) ?? "";
      match(line, /commit by Mona Lisa Octocat: Second marker/);
      match(list.stdout, /pull-request by hubot: #5 Update the README/);

      const logs = await cli(["logs", pushJob, "--follow", "--queen", queen.url], env);
      equal((await logs.status).code, 0, logs.stderr);
      const header = logs.stderr.split("\n").slice(0, 3).join("\n");
      match(
        header,
        /^job \S+: commit by Mona Lisa Octocat \(monalisa\) <monalisa@users\.noreply\.github\.com>, from github webhook at /,
      );
      match(header, /^ {2}Second marker$/m);
      equal(logs.stderr.match(/from github webhook/g)?.length, 1, "the header shows once");

      const help = await cli(["retry", "--help"]);
      equal((await help.status).code, 0);
      match(help.stdout, /usage: strider retry ID/);
      const rerun = await cli(["retry", pushJob, "--follow", "--queen", queen.url], env);
      equal((await rerun.status).code, 0, rerun.stderr);
      match(rerun.stderr, /a re-run of /);
      match(rerun.stderr, /commit by Mona Lisa Octocat/);
      match(rerun.stdout, /^marker: main-2$/m);
      match(rerun.stdout, /^token=\*\*\*$/m);
      const retried = await cli(["retry", pushJob, "--queen", queen.url], env);
      equal((await retried.status).code, 0, retried.stderr);
      const id = retried.stdout.trim();
      const job = await waitForJob(queen, id);
      equal(job.retryOf, pushJob);
      equal(job.result, "passed");
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
