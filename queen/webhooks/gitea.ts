/**
 * Gitea and Forgejo webhooks: `push` (branches and tags) and `pull_request`, signed with
 * `X-Gitea-Signature` (Forgejo also sends `X-Forgejo-Signature`), identified by
 * `X-Gitea-Delivery`.
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
import { verifyGitea } from "./verify.ts";

const SOURCE = { type: "plugin", plugin: "gitea" } as const;

const Repository = z.looseObject({
  full_name: z.string(),
  html_url: z.string().nullish(),
});

const User = z.looseObject({
  login: z.string().nullish(),
  username: z.string().nullish(),
  full_name: z.string().nullish(),
  email: z.string().nullish(),
  avatar_url: z.string().nullish(),
  html_url: z.string().nullish(),
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
  compare_url: z.string().nullish(),
  head_commit: Commit.nullish(),
  commits: z.array(Commit).nullish(),
  repository: Repository,
  pusher: User.nullish(),
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
      sha: z.string().nullish(),
      repo_id: z.int().nullish(),
      repo: z.looseObject({ full_name: z.string() }).nullish(),
    }),
    base: z.looseObject({ ref: z.string(), repo_id: z.int().nullish() }),
  }),
  repository: Repository,
});

/** Pull request actions that change the code to test (Gitea says `synchronized`). */
const PULL_REQUEST_RUNS = new Set(["opened", "reopened", "synchronized", "synchronize"]);

function header(headers: Headers, name: string): string | undefined {
  return headers.get(`x-gitea-${name}`) ?? headers.get(`x-forgejo-${name}`) ??
    headers.get(`x-gogs-${name}`) ?? undefined;
}

/** The repository's full name and every address Gitea gives for it. */
export function giteaRepoNames(payload: unknown): string[] {
  const repo = field(payload, "repository");
  return names(
    field(repo, "full_name"),
    field(repo, "clone_url"),
    field(repo, "ssh_url"),
    field(repo, "html_url"),
  );
}

/** The user's profile link: Gitea sends `html_url` in newer versions. */
function profile(user: z.infer<typeof User> | null | undefined, origin: string | undefined) {
  const login = user?.login ?? user?.username;
  return user?.html_url ?? (login && origin ? `${origin}/${login}` : undefined);
}

/**
 * What a Gitea or Forgejo delivery means: a job for a push or an opened, synchronized or
 * reopened pull request; nothing for deletions and other events.
 */
export function parseGiteaWebhook(
  headers: Headers,
  payload: unknown,
  receivedAt: string = new Date().toISOString(),
): ParsedWebhook {
  const event = header(headers, "event") ?? "";
  const deliveryId = header(headers, "delivery");
  const repoNames = giteaRepoNames(payload);
  const ignored = (reason: string): ParsedWebhook => ({
    kind: "ignored",
    deliveryId,
    repoNames,
    reason,
  });
  if (event === "push") {
    const push = readPayload(PushPayload, payload, "Gitea push");
    const branch = push.ref.match(/^refs\/heads\/(.+)$/)?.[1];
    const tag = push.ref.match(/^refs\/tags\/(.+)$/)?.[1];
    if (!branch && !tag) return ignored(`push to ${push.ref} is neither a branch nor a tag`);
    if (isZeroCommit(push.after)) {
      return ignored(`${branch ? `branch ${branch}` : `tag ${tag}`} was deleted: nothing to run`);
    }
    const commits = push.commits ?? [];
    const head = push.head_commit ?? commits.find((c) => c.id === push.after) ?? commits.at(-1);
    const pusher = push.pusher;
    const pusherLogin = pusher?.login ?? pusher?.username ?? undefined;
    const username = head?.author?.username || (head ? undefined : pusherLogin);
    const byPusher = !!username && username === pusherLogin;
    const origin = originOf(push.repository.html_url);
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
          name: head?.author?.name ?? pusher?.full_name ?? pusherLogin,
          email: head?.author?.email ?? pusher?.email,
          username,
          url: byPusher
            ? profile(pusher, origin)
            : username && origin
            ? `${origin}/${username}`
            : undefined,
          gravatar: byPusher ? pusher?.avatar_url : undefined,
        }),
        message: clip(head?.message?.trimEnd() ?? (tag ? `tag ${tag}` : "")),
        timestamp: isoTime(head?.timestamp, receivedAt),
        ...(head?.url || push.compare_url
          ? { url: clip(head?.url ?? push.compare_url!, 4096) }
          : {}),
        source: SOURCE,
      },
    };
  }
  if (event === "pull_request") {
    const body = readPayload(PullRequestPayload, payload, "Gitea pull_request");
    const pr = body.pull_request;
    if (!PULL_REQUEST_RUNS.has(body.action)) {
      return ignored(`pull request #${body.number} ${body.action}: nothing to run`);
    }
    const user = pr.user;
    const sameRepo = pr.head.repo_id != null && pr.base.repo_id != null
      ? pr.head.repo_id === pr.base.repo_id
      : pr.head.repo?.full_name === body.repository.full_name;
    return {
      kind: "pull-request",
      deliveryId,
      repoNames,
      // Gitea keeps every pull request's head at refs/pull/N/head (it has no merge refs).
      ref: { fetch: `refs/pull/${body.number}/head` },
      branch: pr.base.ref,
      fromFork: !sameRepo,
      ...(commitId(pr.head.sha) ? { commit: pr.head.sha! } : {}),
      trigger: {
        type: "pull-request",
        author: author({
          name: user?.full_name || user?.login,
          email: user?.email,
          username: user?.login ?? user?.username,
          url: profile(user, originOf(body.repository.html_url)),
          gravatar: user?.avatar_url,
        }),
        message: clip(`#${body.number} ${pr.title}`),
        timestamp: isoTime(pr.updated_at, receivedAt),
        ...(pr.html_url ? { url: clip(pr.html_url, 4096) } : {}),
        source: SOURCE,
      },
    };
  }
  return ignored(`Gitea event '${event || "(none)"}' does not run jobs`);
}

/** Gitea's and Forgejo's webhooks at `/hooks/gitea`. */
export const gitea: Forge = {
  name: "gitea",
  title: "Gitea",
  authHeader: "X-Gitea-Signature",
  verify: (headers, body, secret) =>
    verifyGitea(body, header(headers, "signature") ?? null, secret),
  repoNames: giteaRepoNames,
  parse: parseGiteaWebhook,
};
