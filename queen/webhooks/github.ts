/**
 * GitHub webhooks: `push` (branches and tags), `pull_request` and `ping`, signed with
 * `X-Hub-Signature-256`, identified by `X-GitHub-Delivery`.
 */
import { z } from "zod";
import {
  author,
  clip,
  commitId,
  field,
  isoTime,
  isZeroCommit,
  names,
  originOf,
  readPayload,
} from "./types.ts";
import type { Forge, ParsedWebhook } from "./types.ts";
import { verifyGithub } from "./verify.ts";

const SOURCE = { type: "plugin", plugin: "github" } as const;

const Repository = z.looseObject({
  full_name: z.string(),
  html_url: z.string().nullish(),
});

const User = z.looseObject({
  login: z.string(),
  html_url: z.string().nullish(),
  avatar_url: z.string().nullish(),
});

const Commit = z.looseObject({
  id: z.string(),
  message: z.string().nullish(),
  timestamp: z.string().nullish(),
  url: z.string().nullish(),
  author: z.looseObject({
    name: z.string().nullish(),
    email: z.string().nullish(),
    username: z.string().nullish(),
  }).nullish(),
});

const PushPayload = z.looseObject({
  ref: z.string(),
  after: z.string(),
  deleted: z.boolean().nullish(),
  compare: z.string().nullish(),
  head_commit: Commit.nullish(),
  repository: Repository,
  pusher: z.looseObject({ name: z.string().nullish(), email: z.string().nullish() }).nullish(),
  sender: User.nullish(),
});

const PullRequestPayload = z.looseObject({
  action: z.string(),
  number: z.int(),
  pull_request: z.looseObject({
    title: z.string(),
    html_url: z.string().nullish(),
    updated_at: z.string().nullish(),
    user: User.nullish(),
    head: z.looseObject({
      ref: z.string(),
      sha: z.string(),
      repo: z.looseObject({ full_name: z.string() }).nullish(),
    }),
    base: z.looseObject({ ref: z.string() }),
  }),
  repository: Repository,
});

/** Pull request actions that change the code to test. */
const PULL_REQUEST_RUNS = new Set(["opened", "synchronize", "reopened"]);

/** The repository's full name and every address GitHub gives for it. */
export function githubRepoNames(payload: unknown): string[] {
  const repo = field(payload, "repository");
  return names(
    field(repo, "full_name"),
    field(repo, "clone_url"),
    field(repo, "ssh_url"),
    field(repo, "git_url"),
    field(repo, "html_url"),
    field(repo, "svn_url"),
    field(repo, "url"),
  );
}

/**
 * What a GitHub delivery means: a job for a push or an opened, synchronized or reopened pull
 * request; nothing for pings, deletions and other events.
 */
export function parseGithubWebhook(
  headers: Headers,
  payload: unknown,
  receivedAt: string = new Date().toISOString(),
): ParsedWebhook {
  const event = headers.get("x-github-event") ?? "";
  const deliveryId = headers.get("x-github-delivery") ?? undefined;
  const repoNames = githubRepoNames(payload);
  const ignored = (reason: string, ping = false): ParsedWebhook => ({
    kind: "ignored",
    deliveryId,
    repoNames,
    reason,
    ...(ping ? { ping } : {}),
  });
  if (event === "ping") {
    return ignored(`pong: the hook works (${String(field(payload, "zen") ?? "")})`.trim(), true);
  }
  if (event === "push") {
    const push = readPayload(PushPayload, payload, "GitHub push");
    const branch = push.ref.match(/^refs\/heads\/(.+)$/)?.[1];
    const tag = push.ref.match(/^refs\/tags\/(.+)$/)?.[1];
    if (!branch && !tag) return ignored(`push to ${push.ref} is neither a branch nor a tag`);
    if (push.deleted || isZeroCommit(push.after)) {
      return ignored(`${branch ? `branch ${branch}` : `tag ${tag}`} was deleted: nothing to run`);
    }
    const head = push.head_commit;
    const username = head?.author?.username ?? undefined;
    const origin = originOf(push.repository.html_url) ?? "https://github.com";
    const sender = push.sender?.login === username ? push.sender : undefined;
    const id = commitId(push.after);
    return {
      kind: branch ? "push" : "tag",
      deliveryId,
      repoNames,
      ref: branch ? { branch, ...(id ? { id } : {}) } : { fetch: `refs/tags/${tag}` },
      ...(branch ? { branch } : {}),
      ...(id ? { commit: id } : {}),
      trigger: {
        type: "commit",
        author: author({
          name: head?.author?.name ?? push.pusher?.name,
          email: head?.author?.email ?? push.pusher?.email,
          username,
          url: sender?.html_url ?? (username ? `${origin}/${username}` : undefined),
          gravatar: sender?.avatar_url,
        }),
        message: clip(head?.message ?? (tag ? `tag ${tag}` : "")),
        timestamp: isoTime(head?.timestamp, receivedAt),
        ...(head?.url || push.compare ? { url: clip(head?.url ?? push.compare!, 4096) } : {}),
        source: SOURCE,
      },
    };
  }
  if (event === "pull_request") {
    const body = readPayload(PullRequestPayload, payload, "GitHub pull_request");
    const pr = body.pull_request;
    if (!PULL_REQUEST_RUNS.has(body.action)) {
      return ignored(`pull request #${body.number} ${body.action}: nothing to run`);
    }
    return {
      kind: "pull-request",
      deliveryId,
      repoNames,
      ref: { fetch: `refs/pull/${body.number}/merge` },
      branch: pr.base.ref,
      fromFork: pr.head.repo?.full_name !== body.repository.full_name,
      ...(commitId(pr.head.sha) ? { commit: pr.head.sha } : {}),
      trigger: {
        type: "pull-request",
        author: author({
          name: pr.user?.login,
          username: pr.user?.login,
          url: pr.user?.html_url,
          gravatar: pr.user?.avatar_url,
        }),
        message: clip(`#${body.number} ${pr.title}`),
        timestamp: isoTime(pr.updated_at, receivedAt),
        ...(pr.html_url ? { url: clip(pr.html_url, 4096) } : {}),
        source: SOURCE,
      },
    };
  }
  return ignored(`GitHub event '${event || "(none)"}' does not run jobs`);
}

/** GitHub's webhooks at `/hooks/github`. */
export const github: Forge = {
  name: "github",
  title: "GitHub",
  authHeader: "X-Hub-Signature-256",
  verify: (headers, body, secret) => verifyGithub(body, headers.get("x-hub-signature-256"), secret),
  repoNames: githubRepoNames,
  parse: parseGithubWebhook,
};
