/**
 * End to end: commit statuses reported to GitHub, GitLab and Gitea for webhook jobs, against a
 * local stand-in that checks each call as the forge's documentation specifies it: pending, then
 * the result, linking the job page at --public-url, with the project's forge token, retried when
 * the forge fails, never holding the job up; a fork's pull request gets statuses but no secrets.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  api,
  getJob,
  jobLog,
  startQueen,
  startWorker,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { ForgeStandIn } from "./helpers/forge_standin.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";
import { deliver, fixture } from "./helpers/webhooks.ts";
import type { ForgeName } from "./helpers/webhooks.ts";

const SECRET = "status-webhook-secret-99";
const PUBLIC = "https://ci.example.test";
const TOKENS = {
  github: "ghp-status-token-1",
  gitlab: "glpat-status-token-2",
  gitea: "gt-token-3",
};
const DEPLOY_TOKEN = "deploy-secret-value-77";

/** Fails the job when marker.txt says so; shows which secrets the job can see. */
const BRANCHES = {
  "*": {
    plugins: ["custom"],
    config: {
      custom: {
        test: 'echo "marker: $(cat marker.txt)"; echo "deploy=${DEPLOY_TOKEN-none} ' +
          'forge=${FORGE_TOKEN-none}"; test "$(cat marker.txt)" != fail',
      },
    },
  },
};

async function deliverJob(
  queen: TestQueen,
  forge: ForgeName,
  event: string,
  payload: unknown,
): Promise<string> {
  const response = await deliver(queen.url, forge, { event, payload, secret: SECRET });
  const body = await response.json();
  equal(response.status, 201, JSON.stringify(body));
  return body.id;
}

/** Waits until the stand-in accepted `states` for `sha`, in order. */
async function statesFor(standIn: ForgeStandIn, sha: string, states: string[]) {
  await waitUntil(
    () => standIn.statesOf(sha).length >= states.length,
    30_000,
    `statuses ${states.join(", ")} for ${sha} (refused: ${standIn.refused.join("; ")})`,
  );
  deepEqual(standIn.statesOf(sha), states);
  deepEqual(standIn.refused, [], "the stand-in refused a call");
}

Deno.test("webhook jobs report commit statuses to GitHub, GitLab and Gitea", async (t) => {
  const repo = await makeRepo({ "marker.txt": "main-1\n" });
  const standIn = new ForgeStandIn();
  const queen = await startQueen({
    env: { STRIDER_WEBHOOK_SECRET: SECRET },
    args: ["--public-url", PUBLIC],
  });
  const worker = await startWorker(queen, { name: "status-worker" });
  const project = (name: string, forge: ForgeName, api: string) =>
    ({
      name,
      repo: { url: repo.path },
      branches: BRANCHES,
      secrets: { FORGE_TOKEN: TOKENS[forge], DEPLOY_TOKEN },
      status: { api: `${standIn.url}/${api}` },
    }) as const;
  try {
    for (
      const p of [
        project("octo-org/hello-world", "github", "github"),
        project("mike/diaspora", "gitlab", "gitlab/api/v4"),
        project("gitea/webhooks", "gitea", "gitea/api/v1"),
      ]
    ) {
      const response = await api(queen, "/api/projects", {
        method: "POST",
        body: JSON.stringify(p),
      });
      equal(response.status, 201, await response.text());
    }

    await t.step("GitHub: a push reports pending, then success, linking the job", async () => {
      const sha = await commitFiles(repo.path, { "marker.txt": "main-2\n" }, "second");
      const payload = await fixture("github_push");
      Object.assign(payload, { ref: "refs/heads/main", after: sha });
      const id = await deliverJob(queen, "github", "push", payload);
      equal((await waitForJob(queen, id)).result, "passed");
      await statesFor(standIn, sha, ["pending", "success"]);
      const calls = standIn.calls.filter((c) => c.sha === sha);
      for (const call of calls) {
        equal(call.forge, "github");
        equal(call.repo, "octo-org/hello-world");
        equal(call.token, TOKENS.github);
        equal(call.body.target_url, `${PUBLIC}/jobs/${id}`);
        equal(call.body.context, "strider");
      }
      const log = await jobLog(queen, id);
      match(log, /deploy=\*\*\* forge=none/, "the forge token reached the job");
      await waitUntil(async () => (await getJob(queen, id)).reported?.state === "success");
      const view = await getJob(queen, id);
      equal(view.reported?.forge, "github");
      equal(view.reported?.commit, sha);
      equal(view.reported?.error, null);
      const page = await (await fetch(new URL(`/jobs/${id}`, queen.url))).text();
      match(page, /success to github for [0-9a-f]{12}/);
      ok(!JSON.stringify(view).includes(TOKENS.github), "the token shows in the job view");
    });

    await t.step("a failing job reports failure", async () => {
      const sha = await commitFiles(repo.path, { "marker.txt": "fail\n" }, "breaks it");
      const payload = await fixture("github_push");
      Object.assign(payload, { ref: "refs/heads/main", after: sha });
      const id = await deliverJob(queen, "github", "push", payload);
      equal((await waitForJob(queen, id)).result, "failed");
      await statesFor(standIn, sha, ["pending", "failure"]);
      await commitFiles(repo.path, { "marker.txt": "main-3\n" }, "fixed");
    });

    await t.step("a fork's pull request gets statuses on its head, and no secrets", async () => {
      const head = await (async () => {
        await git(repo.path, "checkout", "-q", "-b", "fork-work", "main");
        const sha = await commitFiles(repo.path, { "marker.txt": "fork\n" }, "fork work");
        await git(repo.path, "checkout", "-q", "main");
        await git(repo.path, "update-ref", "refs/pull/9/merge", sha);
        return sha;
      })();
      const payload = await fixture("github_pull_request");
      const pr = payload.pull_request as Record<string, Record<string, unknown>>;
      Object.assign(pr.head, { sha: head, repo: { full_name: "stranger/hello-world" } });
      Object.assign(payload, { number: 9, action: "opened" });
      const id = await deliverJob(queen, "github", "pull_request", payload);
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", job.error ?? "");
      match(await jobLog(queen, id), /marker: fork\n.*deploy=none forge=none/s);
      equal(job.spec.secrets, undefined);
      await statesFor(standIn, head, ["pending", "success"]);
    });

    await t.step("GitLab: PRIVATE-TOKEN, the URL-encoded project, name", async () => {
      const sha = await git(repo.path, "rev-parse", "main");
      const push = await fixture("gitlab_push");
      Object.assign(push, { ref: "refs/heads/main", after: sha, checkout_sha: sha });
      const id = await deliverJob(queen, "gitlab", "Push Hook", push);
      equal((await waitForJob(queen, id)).result, "passed");
      await statesFor(standIn, sha, ["pending", "success"]);
      const call = standIn.calls.filter((c) => c.sha === sha).at(-1)!;
      equal(call.forge, "gitlab");
      equal(call.repo, "mike/diaspora");
      equal(call.token, TOKENS.gitlab);
      equal(call.body.name, "strider");
      equal(call.body.target_url, `${PUBLIC}/jobs/${id}`);
    });

    await t.step("Gitea: a pull request, token auth", async () => {
      await git(repo.path, "checkout", "-q", "-b", "gitea-pr", "main");
      const head = await commitFiles(repo.path, { "marker.txt": "gitea-pr\n" }, "gitea pr");
      await git(repo.path, "checkout", "-q", "main");
      await git(repo.path, "update-ref", "refs/pull/4/head", head);
      const pr = await fixture("gitea_pull_request");
      Object.assign(pr, { number: 4, action: "opened" });
      (pr.pull_request as Record<string, Record<string, unknown>>).head.sha = head;
      const id = await deliverJob(queen, "gitea", "pull_request", pr);
      equal((await waitForJob(queen, id)).result, "passed");
      await statesFor(standIn, head, ["pending", "success"]);
      const call = standIn.calls.filter((c) => c.sha === head).at(-1)!;
      equal(call.forge, "gitea");
      equal(call.repo, "gitea/webhooks");
      equal(call.token, TOKENS.gitea);
    });

    await t.step("a forge that fails is retried, and never holds the job up", async () => {
      const sha = await commitFiles(repo.path, { "marker.txt": "main-4\n" }, "fourth");
      // The pending call hangs, then the final call fails once with 502.
      standIn.hold(sha, "pending");
      const payload = await fixture("github_push");
      Object.assign(payload, { ref: "refs/heads/main", after: sha });
      const id = await deliverJob(queen, "github", "push", payload);
      const job = await waitForJob(queen, id);
      equal(job.result, "passed", "the job finished while its forge hung");
      ok(standIn.waiting.has(`${sha}:pending`), "the pending call is still held");
      standIn.failures.set(sha, [502]);
      standIn.release(sha, "pending");
      await statesFor(standIn, sha, ["pending", "success"]);
      // The stand-in has answered; the queen records that answer just after.
      let view = await getJob(queen, id);
      for (let i = 0; i < 100 && view.reported?.state !== "success"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        view = await getJob(queen, id);
      }
      equal(view.reported?.state, "success");
      equal(view.reported?.error, null);
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await standIn.close();
  }
});
