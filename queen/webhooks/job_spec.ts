import type { BranchSettings, JobSpecInput, JobType, Project } from "../../protocol/mod.ts";
import { DEFAULT_FORGE_TOKEN_SECRET, isHttpUrl } from "../../protocol/mod.ts";
import type { WebhookJob } from "./types.ts";

/** The job a webhook event makes for a project, or why it makes none. */
export type WebhookJobSpec = { ok: true; spec: JobSpecInput } | { ok: false; reason: string };

/** The settings of `branch`, else the `*` entry; tags take the `*` entry. */
export function branchSettings(
  project: Project,
  branch: string | undefined,
): BranchSettings | undefined {
  const own = branch === undefined
    ? undefined
    : Object.hasOwn(project.branches, branch)
    ? project.branches[branch]
    : undefined;
  return own ?? (Object.hasOwn(project.branches, "*") ? project.branches["*"] : undefined);
}

function jobType(settings: BranchSettings): JobType {
  return settings.job_type ?? (settings.deploy ? "TEST&DEPLOY" : "TEST");
}

/**
 * The job spec for a webhook event: the project's repository (not the payload's address, which
 * the queen does not trust to clone), the event's ref and trigger, the branch's plugins and
 * config (without plugins the repository's `strider.json` decides) and the project's secrets.
 * Pull requests only test, and those from forks get no secrets: their code is not the owners'.
 */
export function webhookJobSpec(project: Project, event: WebhookJob): WebhookJobSpec {
  const settings = branchSettings(project, event.branch);
  if (!settings) {
    const what = event.branch === undefined ? "tags" : `branch '${event.branch}'`;
    return {
      ok: false,
      reason: `project ${project.name} has no settings for ${what}: ` +
        `add ${event.branch === undefined ? "" : "an entry for it or "}a '*' entry to its branches`,
    };
  }
  // The forge token reports statuses from the queen; jobs never need it.
  const { [project.status?.token_secret ?? DEFAULT_FORGE_TOKEN_SECRET]: _token, ...secrets } =
    event.fromFork ? {} : project.secrets;
  // A payload's link that is not http(s) is left out rather than refusing the whole event.
  const { url, ...trigger } = event.trigger;
  return {
    ok: true,
    spec: {
      repo: project.repo,
      ref: event.ref,
      job_type: event.kind === "pull-request" ? "TEST" : jobType(settings),
      trigger: url !== undefined && isHttpUrl(url) ? { ...trigger, url } : trigger,
      ...(settings.plugins ? { plugins: settings.plugins } : {}),
      ...(settings.config ? { config: settings.config } : {}),
      ...(Object.keys(secrets).length ? { secrets } : {}),
      ...(settings.matrix ? { matrix: settings.matrix } : {}),
      ...(settings.parallelism ? { parallelism: settings.parallelism } : {}),
      ...(settings.fail_fast ? { fail_fast: true } : {}),
    },
  };
}
