/**
 * GitLab webhooks: push, tag push and merge request hooks, authenticated by `X-Gitlab-Token`,
 * identified by `X-Gitlab-Event-UUID`.
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
import { verifyGitlab } from "./verify.ts";

const SOURCE = { type: "plugin", plugin: "gitlab" } as const;

const Project = z.looseObject({
  path_with_namespace: z.string(),
  web_url: z.string().nullish(),
});

const Commit = z.looseObject({
  id: z.string(),
  message: z.string().nullish(),
  timestamp: z.string().nullish(),
  url: z.string().nullish(),
  author: z.looseObject({ name: z.string().nullish(), email: z.string().nullish() }).nullish(),
});

const PushPayload = z.looseObject({
  object_kind: z.enum(["push", "tag_push"]),
  ref: z.string(),
  after: z.string(),
  checkout_sha: z.string().nullish(),
  user_name: z.string().nullish(),
  user_username: z.string().nullish(),
  user_email: z.string().nullish(),
  user_avatar: z.string().nullish(),
  project: Project,
  commits: z.array(Commit).nullish(),
});

const MergeRequestPayload = z.looseObject({
  object_kind: z.literal("merge_request"),
  user: z.looseObject({
    name: z.string().nullish(),
    username: z.string().nullish(),
    email: z.string().nullish(),
    avatar_url: z.string().nullish(),
  }).nullish(),
  project: Project,
  object_attributes: z.looseObject({
    iid: z.int(),
    title: z.string(),
    url: z.string().nullish(),
    action: z.string().nullish(),
    source_branch: z.string(),
    target_branch: z.string(),
    source_project_id: z.int().nullish(),
    target_project_id: z.int().nullish(),
    oldrev: z.string().nullish(),
    updated_at: z.string().nullish(),
    last_commit: Commit.nullish(),
  }),
});

/** The project's full path and every address GitLab gives for it. */
export function gitlabRepoNames(payload: unknown): string[] {
  const project = field(payload, "project");
  const repository = field(payload, "repository");
  return names(
    field(project, "path_with_namespace"),
    field(project, "git_http_url"),
    field(project, "git_ssh_url"),
    field(project, "http_url"),
    field(project, "ssh_url"),
    field(project, "web_url"),
    field(repository, "git_http_url"),
    field(repository, "git_ssh_url"),
    field(repository, "homepage"),
  );
}

/**
 * What a GitLab delivery means: a job for a push, a tag push, or a merge request opened,
 * reopened or updated with new commits; nothing for deletions and other events.
 */
export function parseGitlabWebhook(
  headers: Headers,
  payload: unknown,
  receivedAt: string = new Date().toISOString(),
): ParsedWebhook {
  const deliveryId = headers.get("x-gitlab-event-uuid") ?? undefined;
  const repoNames = gitlabRepoNames(payload);
  const kind = field(payload, "object_kind");
  const ignored = (reason: string): ParsedWebhook => ({
    kind: "ignored",
    deliveryId,
    repoNames,
    reason,
  });
  if (kind === "push" || kind === "tag_push") {
    const push = readPayload(PushPayload, payload, "GitLab push");
    const branch = push.ref.match(/^refs\/heads\/(.+)$/)?.[1];
    const tag = push.ref.match(/^refs\/tags\/(.+)$/)?.[1];
    if (!branch && !tag) return ignored(`push to ${push.ref} is neither a branch nor a tag`);
    if (isZeroCommit(push.after)) {
      return ignored(`${branch ? `branch ${branch}` : `tag ${tag}`} was deleted: nothing to run`);
    }
    const sha = push.checkout_sha ?? push.after;
    const commits = push.commits ?? [];
    const head = commits.find((c) => c.id === sha) ?? commits.at(-1);
    const byPusher = !head?.author?.email || head.author.email === push.user_email;
    const origin = originOf(push.project.web_url);
    const username = byPusher ? push.user_username : undefined;
    const id = commitId(sha);
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
          name: head?.author?.name ?? push.user_name,
          email: head?.author?.email ?? push.user_email,
          username,
          url: username && origin ? `${origin}/${username}` : undefined,
          gravatar: byPusher ? push.user_avatar : undefined,
        }),
        message: clip(head?.message?.trimEnd() ?? (tag ? `tag ${tag}` : "")),
        timestamp: isoTime(head?.timestamp, receivedAt),
        ...(head?.url ? { url: clip(head.url, 4096) } : {}),
        source: SOURCE,
      },
    };
  }
  if (kind === "merge_request") {
    const body = readPayload(MergeRequestPayload, payload, "GitLab merge request");
    const mr = body.object_attributes;
    const action = mr.action ?? "";
    const runs = action === "open" || action === "reopen" || (action === "update" && !!mr.oldrev);
    if (!runs) {
      const what = action === "update" ? "updated without new commits" : action || "changed";
      return ignored(`merge request !${mr.iid} ${what}: nothing to run`);
    }
    const user = body.user;
    return {
      kind: "pull-request",
      deliveryId,
      repoNames,
      ref: { fetch: `refs/merge-requests/${mr.iid}/head` },
      branch: mr.target_branch,
      fromFork: mr.source_project_id != null && mr.source_project_id !== mr.target_project_id,
      ...(commitId(mr.last_commit?.id) ? { commit: mr.last_commit!.id } : {}),
      trigger: {
        type: "pull-request",
        author: author({
          name: user?.name,
          email: user?.email,
          username: user?.username,
          url: user?.username && originOf(body.project.web_url)
            ? `${originOf(body.project.web_url)}/${user.username}`
            : undefined,
          gravatar: user?.avatar_url,
        }),
        message: clip(`!${mr.iid} ${mr.title}`),
        timestamp: isoTime(mr.updated_at ?? mr.last_commit?.timestamp, receivedAt),
        ...(mr.url ? { url: clip(mr.url, 4096) } : {}),
        source: SOURCE,
      },
    };
  }
  const event = headers.get("x-gitlab-event") ?? String(kind ?? "(none)");
  return ignored(`GitLab event '${event}' does not run jobs`);
}

/** GitLab's webhooks at `/hooks/gitlab`. */
export const gitlab: Forge = {
  name: "gitlab",
  title: "GitLab",
  authHeader: "X-Gitlab-Token",
  verify: (headers, _body, secret) => verifyGitlab(headers.get("x-gitlab-token"), secret),
  repoNames: gitlabRepoNames,
  parse: parseGitlabWebhook,
};
