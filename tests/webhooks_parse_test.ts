/**
 * The forge webhook parsers, on realistic payloads: what job each delivery makes (ref, trigger)
 * or why it makes none; and the signature checks.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { createHmac } from "node:crypto";
import { TriggerSchema } from "../protocol/mod.ts";
import { parseGiteaWebhook } from "../queen/webhooks/gitea.ts";
import { parseGithubWebhook } from "../queen/webhooks/github.ts";
import { parseGitlabWebhook } from "../queen/webhooks/gitlab.ts";
import { isoTime, WebhookPayloadError } from "../queen/webhooks/types.ts";
import type { ParsedWebhook, WebhookJob } from "../queen/webhooks/types.ts";
import { verifyGitea, verifyGithub, verifyGitlab } from "../queen/webhooks/verify.ts";
import { fixture } from "./helpers/webhooks.ts";

const RECEIVED = "2026-01-02T03:04:05.000Z";

function job(parsed: ParsedWebhook): WebhookJob {
  if (parsed.kind === "ignored") throw new Error(`expected a job, got: ${parsed.reason}`);
  TriggerSchema.parse(parsed.trigger);
  return parsed;
}

function ignored(parsed: ParsedWebhook): string {
  if (parsed.kind !== "ignored") throw new Error(`expected no job, got a ${parsed.kind}`);
  return parsed.reason;
}

const github = (event: string, delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958") =>
  new Headers({ "x-github-event": event, "x-github-delivery": delivery });

Deno.test("a GitHub push makes a commit job for the branch at the pushed commit", async () => {
  const parsed = job(parseGithubWebhook(github("push"), await fixture("github_push"), RECEIVED));
  equal(parsed.kind, "push");
  equal(parsed.deliveryId, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  deepEqual(parsed.ref, { branch: "main", id: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" });
  equal(parsed.branch, "main");
  ok(parsed.repoNames.includes("octo-org/hello-world"));
  ok(parsed.repoNames.includes("git@github.com:octo-org/hello-world.git"));
  ok(parsed.repoNames.includes("https://github.com/octo-org/hello-world.git"));
  deepEqual(parsed.trigger, {
    type: "commit",
    author: {
      name: "Mona Lisa Octocat",
      email: "monalisa@users.noreply.github.com",
      username: "monalisa",
      url: "https://github.com/monalisa",
      gravatar: "https://avatars.githubusercontent.com/u/583231?v=4",
    },
    message: "Fix the flaky retry test\n\nThe clock was read twice.",
    timestamp: "2019-05-15T22:20:30.000Z",
    url: "https://github.com/octo-org/hello-world/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    source: { type: "plugin", plugin: "github" },
  });
});

Deno.test("a GitHub tag push fetches the tag; a deleted branch runs nothing", async () => {
  const tag = await fixture("github_push");
  tag.ref = "refs/tags/v1.2.0";
  const parsed = job(parseGithubWebhook(github("push"), tag, RECEIVED));
  equal(parsed.kind, "tag");
  deepEqual(parsed.ref, { fetch: "refs/tags/v1.2.0" });
  equal(parsed.branch, undefined);
  equal(parsed.trigger.type, "commit");

  const deleted = await fixture("github_push");
  Object.assign(deleted, {
    deleted: true,
    after: "0000000000000000000000000000000000000000",
    head_commit: null,
  });
  const reason = ignored(parseGithubWebhook(github("push"), deleted, RECEIVED));
  equal(reason, "branch main was deleted: nothing to run");
});

Deno.test("a GitHub pull request runs its merge ref; closed or labelled runs nothing", async () => {
  const payload = await fixture("github_pull_request");
  const parsed = job(parseGithubWebhook(github("pull_request"), payload, RECEIVED));
  equal(parsed.kind, "pull-request");
  deepEqual(parsed.ref, { fetch: "refs/pull/2/merge" });
  equal(parsed.branch, "main", "the target branch's settings apply");
  equal(parsed.fromFork, false);
  deepEqual(parsed.trigger, {
    type: "pull-request",
    author: {
      name: "hubot",
      username: "hubot",
      url: "https://github.com/hubot",
      gravatar: "https://avatars.githubusercontent.com/u/480938?v=4",
    },
    message: "#2 Update the README with new information.",
    timestamp: "2019-05-15T15:20:33.000Z",
    url: "https://github.com/octo-org/hello-world/pull/2",
    source: { type: "plugin", plugin: "github" },
  });
  for (const action of ["synchronize", "reopened"]) {
    job(parseGithubWebhook(github("pull_request"), { ...payload, action }, RECEIVED));
  }
  for (const action of ["closed", "labeled", "edited"]) {
    const reason = ignored(
      parseGithubWebhook(github("pull_request"), { ...payload, action }, RECEIVED),
    );
    equal(reason, `pull request #2 ${action}: nothing to run`);
  }
  const fork = structuredClone(payload) as { pull_request: { head: { repo: unknown } } };
  fork.pull_request.head.repo = { full_name: "mallory/hello-world" };
  equal(job(parseGithubWebhook(github("pull_request"), fork, RECEIVED)).fromFork, true);
});

Deno.test("a GitHub ping and other events run nothing", async () => {
  const ping = parseGithubWebhook(github("ping"), await fixture("github_ping"), RECEIVED);
  equal(ping.kind, "ignored");
  ok(ping.kind === "ignored" && ping.ping);
  deepEqual(ping.repoNames.slice(0, 1), ["octo-org/hello-world"]);
  const star = ignored(parseGithubWebhook(github("star"), {}, RECEIVED));
  equal(star, "GitHub event 'star' does not run jobs");
});

Deno.test("a malformed GitHub payload is refused naming the fields", () => {
  let error: unknown;
  try {
    parseGithubWebhook(github("push"), { ref: 7, repository: {} }, RECEIVED);
  } catch (caught) {
    error = caught;
  }
  ok(error instanceof WebhookPayloadError, String(error));
  const paths = error.issues.map((i) => i.path);
  deepEqual(paths.toSorted(), ["after", "ref", "repository.full_name"]);
});

const gitlab = (event: string) =>
  new Headers({ "x-gitlab-event": event, "x-gitlab-event-uuid": "13792a34-cac6-4fda-95a8" });

Deno.test("a GitLab push makes a job at checkout_sha with the head commit's author", async () => {
  const payload = await fixture("gitlab_push");
  const parsed = job(parseGitlabWebhook(gitlab("Push Hook"), payload, RECEIVED));
  equal(parsed.kind, "push");
  equal(parsed.deliveryId, "13792a34-cac6-4fda-95a8");
  deepEqual(parsed.ref, { branch: "master", id: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7" });
  ok(parsed.repoNames.includes("mike/diaspora"));
  ok(parsed.repoNames.includes("http://example.com/mike/diaspora.git"));
  deepEqual(parsed.trigger, {
    type: "commit",
    author: {
      name: "John Smith",
      email: "john@example.com",
      username: "jsmith",
      url: "http://example.com/jsmith",
      gravatar: payload.user_avatar as string,
    },
    message: "fixed readme",
    timestamp: "2012-01-03T21:36:29.000Z",
    url: "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    source: { type: "plugin", plugin: "gitlab" },
  });
});

Deno.test("a GitLab tag push fetches the tag; a branch deletion runs nothing", async () => {
  const tag = await fixture("gitlab_push");
  Object.assign(tag, { object_kind: "tag_push", ref: "refs/tags/v1.0.0" });
  deepEqual(
    job(parseGitlabWebhook(gitlab("Tag Push Hook"), tag, RECEIVED)).ref,
    { fetch: "refs/tags/v1.0.0" },
  );
  const gone = await fixture("gitlab_push");
  Object.assign(gone, {
    after: "0000000000000000000000000000000000000000",
    checkout_sha: null,
    commits: [],
  });
  equal(
    ignored(parseGitlabWebhook(gitlab("Push Hook"), gone, RECEIVED)),
    "branch master was deleted: nothing to run",
  );
});

Deno.test("a GitLab merge request runs refs/merge-requests/N/head when it has new code", async () => {
  const payload = await fixture("gitlab_merge_request");
  const parsed = job(parseGitlabWebhook(gitlab("Merge Request Hook"), payload, RECEIVED));
  deepEqual(parsed.ref, { fetch: "refs/merge-requests/1/head" });
  equal(parsed.branch, "master");
  equal(parsed.fromFork, false);
  deepEqual(parsed.trigger, {
    type: "pull-request",
    author: {
      name: "Administrator",
      email: "admin@example.com",
      username: "root",
      url: "http://example.com/root",
      gravatar: "http://www.gravatar.com/avatar/e64c7d89f26bd1972efa854d13d7dd61?s=40&d=identicon",
    },
    message: "!1 MS-Viewport",
    timestamp: "2013-12-03T17:23:34.000Z",
    url: "http://example.com/diaspora/merge_requests/1",
    source: { type: "plugin", plugin: "gitlab" },
  });
  const attrs = payload.object_attributes as Record<string, unknown>;
  const update = { ...payload, object_attributes: { ...attrs, action: "update" } };
  equal(
    ignored(parseGitlabWebhook(gitlab("Merge Request Hook"), update, RECEIVED)),
    "merge request !1 updated without new commits: nothing to run",
  );
  const pushed = {
    ...payload,
    object_attributes: { ...attrs, action: "update", oldrev: "95790bf891e76fee5e17" },
  };
  job(parseGitlabWebhook(gitlab("Merge Request Hook"), pushed, RECEIVED));
  const merged = { ...payload, object_attributes: { ...attrs, action: "merge" } };
  equal(
    ignored(parseGitlabWebhook(gitlab("Merge Request Hook"), merged, RECEIVED)),
    "merge request !1 merge: nothing to run",
  );
  const fork = { ...payload, object_attributes: { ...attrs, source_project_id: 99 } };
  equal(job(parseGitlabWebhook(gitlab("Merge Request Hook"), fork, RECEIVED)).fromFork, true);
});

const gitea = (event: string) =>
  new Headers({ "x-gitea-event": event, "x-gitea-delivery": "f6266f16-1bf3-46a5-9ea4" });

Deno.test("a Gitea push makes a commit job with the pusher's profile", async () => {
  const parsed = job(parseGiteaWebhook(gitea("push"), await fixture("gitea_push"), RECEIVED));
  equal(parsed.deliveryId, "f6266f16-1bf3-46a5-9ea4");
  deepEqual(parsed.ref, { branch: "develop", id: "bffeb74224043ba2feb48d137756c8a9331c449a" });
  ok(parsed.repoNames.includes("gitea/webhooks"));
  ok(parsed.repoNames.includes("ssh://gitea@localhost:2222/gitea/webhooks.git"));
  deepEqual(parsed.trigger, {
    type: "commit",
    author: {
      name: "Gitea",
      email: "someone@gitea.io",
      username: "gitea",
      url: "http://localhost:3000/gitea",
      gravatar: "https://localhost:3000/avatars/1",
    },
    message: "Webhooks Yay!",
    timestamp: "2017-03-13T17:52:11.000Z",
    url: "http://localhost:3000/gitea/webhooks/commit/bffeb74224043ba2feb48d137756c8a9331c449a",
    source: { type: "plugin", plugin: "gitea" },
  });
});

Deno.test("a Gitea pull request runs refs/pull/N/head; Forgejo's headers work too", async () => {
  const payload = await fixture("gitea_pull_request");
  const parsed = job(parseGiteaWebhook(gitea("pull_request"), payload, RECEIVED));
  deepEqual(parsed.ref, { fetch: "refs/pull/7/head" });
  equal(parsed.branch, "master");
  equal(parsed.fromFork, false);
  deepEqual(parsed.trigger.author, {
    name: "Alice Liddell",
    email: "alice@example.org",
    username: "alice",
    url: "http://localhost:3000/alice",
    gravatar: "http://localhost:3000/avatars/2",
  });
  equal(parsed.trigger.message, "#7 Add the looking-glass");
  equal(parsed.trigger.type, "pull-request");
  equal(
    ignored(parseGiteaWebhook(gitea("pull_request"), { ...payload, action: "closed" }, RECEIVED)),
    "pull request #7 closed: nothing to run",
  );
  const forgejo = new Headers({ "x-forgejo-event": "pull_request", "x-forgejo-delivery": "d1" });
  equal(job(parseGiteaWebhook(forgejo, payload, RECEIVED)).deliveryId, "d1");
  equal(
    ignored(parseGiteaWebhook(gitea("create"), payload, RECEIVED)),
    "Gitea event 'create' does not run jobs",
  );
});

Deno.test("forge times become ISO 8601, GitLab's 'UTC' form included", () => {
  equal(isoTime("2013-12-03 17:23:34 UTC", RECEIVED), "2013-12-03T17:23:34.000Z");
  equal(isoTime("2013-12-03 17:23:34 +0100", RECEIVED), "2013-12-03T16:23:34.000Z");
  equal(isoTime("not a time", RECEIVED), RECEIVED);
  equal(isoTime(null, RECEIVED), RECEIVED);
});

Deno.test("signatures: HMAC-SHA256 for GitHub and Gitea, the token for GitLab", () => {
  const body = new TextEncoder().encode('{"zen":"Design for failure."}');
  const hex = createHmac("sha256", "It's a Secret to Everybody").update(body).digest("hex");
  equal(verifyGithub(body, `sha256=${hex}`, "It's a Secret to Everybody"), "ok");
  equal(verifyGithub(body, `sha256=${hex}`, "another secret"), "mismatch");
  equal(verifyGithub(body, hex, "It's a Secret to Everybody"), "mismatch", "the prefix is needed");
  equal(verifyGithub(body, "sha256=abc", "It's a Secret to Everybody"), "mismatch");
  equal(verifyGithub(body, null, "It's a Secret to Everybody"), "missing");
  const tampered = new TextEncoder().encode('{"zen":"Design for failure!"}');
  equal(verifyGithub(tampered, `sha256=${hex}`, "It's a Secret to Everybody"), "mismatch");
  equal(verifyGitea(body, hex, "It's a Secret to Everybody"), "ok");
  equal(verifyGitea(body, hex.toUpperCase(), "It's a Secret to Everybody"), "ok");
  equal(verifyGitea(body, `sha256=${hex}`, "It's a Secret to Everybody"), "mismatch");
  equal(verifyGitea(body, null, "x"), "missing");
  equal(verifyGitlab("s3cret-token", "s3cret-token"), "ok");
  equal(verifyGitlab("s3cret-token-", "s3cret-token"), "mismatch");
  equal(verifyGitlab(null, "s3cret-token"), "missing");
});
