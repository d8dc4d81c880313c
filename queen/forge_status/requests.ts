/**
 * The commit status calls of each forge, as their documentation specifies them:
 *
 * - GitHub: `POST /repos/{owner}/{repo}/statuses/{sha}`, `Authorization: Bearer TOKEN`,
 *   `{state: pending|success|failure|error, target_url, description, context}`.
 * - GitLab: `POST /projects/{url-encoded path}/statuses/{sha}`, `PRIVATE-TOKEN: TOKEN`,
 *   `{state: pending|running|success|failed|canceled, target_url, description, name}`.
 * - Gitea: `POST /repos/{owner}/{repo}/statuses/{sha}`, `Authorization: token TOKEN`,
 *   `{state: pending|success|error|failure|warning, target_url, description, context}`.
 *
 * Pure: a request described, not sent.
 */
import type { JobResult } from "../../protocol/mod.ts";

export type ForgeName = "github" | "gitlab" | "gitea";

/** Where strider is with a job, before each forge's own word for it. */
export type JobState = "pending" | JobResult;

/** A status call to make. */
export interface StatusRequest {
  method: "POST";
  url: string;
  headers: Record<string, string>;
  body: Record<string, string>;
}

/** The forge's word for a job state. */
export function forgeState(forge: ForgeName, state: JobState): string {
  if (state === "pending") return "pending";
  if (state === "passed") return "success";
  if (forge === "gitlab") {
    return state === "failed" ? "failed" : state === "cancelled" ? "canceled" : "failed";
  }
  return state === "failed" ? "failure" : "error";
}

/** A line for the forge to show beside the state (GitHub keeps 140 characters). */
export function describe(state: JobState): string {
  switch (state) {
    case "pending":
      return "strider: the job is queued or running";
    case "passed":
      return "strider: the job passed";
    case "failed":
      return "strider: the job failed";
    case "timeout":
      return "strider: the job timed out";
    case "cancelled":
      return "strider: the job was cancelled";
    case "lost":
      return "strider: the job was lost with its workers";
    default:
      return "strider: the job could not run";
  }
}

/** The forge's API address for a repository URL, when the forge's usual layout applies. */
export function defaultApi(forge: ForgeName, repoUrl: string): string | undefined {
  let host: string;
  try {
    // scp-like `git@host:owner/repo` has no scheme: read it as ssh://host/owner/repo.
    const scp = !repoUrl.includes("://") && repoUrl.match(/^(?:[^/@]+@)?([^:/]+):/);
    const url = new URL(scp ? `ssh://${scp[1]}/` : repoUrl);
    host = url.hostname;
  } catch {
    return undefined;
  }
  if (!host) return undefined;
  if (forge === "github") {
    return host === "github.com" ? "https://api.github.com" : `https://${host}/api/v3`;
  }
  return forge === "gitlab" ? `https://${host}/api/v4` : `https://${host}/api/v1`;
}

/** The call that sets `sha`'s status in `repo` (`owner/name`, GitLab: `group/sub/name`). */
export function statusRequest(
  forge: ForgeName,
  options: {
    api: string;
    repo: string;
    sha: string;
    token: string;
    state: JobState;
    targetUrl: string;
    context: string;
  },
): StatusRequest {
  const api = options.api.replace(/\/+$/, "");
  const state = forgeState(forge, options.state);
  const description = describe(options.state);
  const json = { "content-type": "application/json", "user-agent": "strider" };
  if (forge === "gitlab") {
    return {
      method: "POST",
      url: `${api}/projects/${encodeURIComponent(options.repo)}/statuses/${options.sha}`,
      headers: { ...json, "private-token": options.token },
      body: { state, target_url: options.targetUrl, description, name: options.context },
    };
  }
  const path = options.repo.split("/").map(encodeURIComponent).join("/");
  return {
    method: "POST",
    url: `${api}/repos/${path}/statuses/${options.sha}`,
    headers: forge === "github"
      ? {
        ...json,
        accept: "application/vnd.github+json",
        authorization: `Bearer ${options.token}`,
        "x-github-api-version": "2022-11-28",
      }
      : { ...json, accept: "application/json", authorization: `token ${options.token}` },
    body: { state, target_url: options.targetUrl, description, context: options.context },
  };
}
