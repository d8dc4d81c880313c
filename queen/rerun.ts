/**
 * What a re-run (`POST /api/jobs/:id/retry`, the dashboard's Re-run) submits. A re-run is a new
 * job from the old one's spec. A job that has not finished still holds its secrets and passes
 * them on. A finished job's row no longer holds any (`eraseSecrets`), so its re-run takes the
 * current values of the same secret names, and the same kind of repository credential, from the
 * project of its repository, as a CI re-run does; without them it is refused with a message
 * saying to submit the job again. A re-run never gains secrets the original did not have (a
 * fork's pull request had none, and its re-run has none).
 */
import type { JobSpec, Project } from "../protocol/mod.ts";
import { repoKey } from "./projects/repo_key.ts";
import type { ProjectStore } from "./projects/store.ts";
import { ConflictError } from "./errors.ts";
import { eraseSecrets } from "./sealing.ts";
import type { JobRecord } from "./store.ts";

/** The spec a re-run of `record` submits; throws a `ConflictError` when it cannot. */
export async function rerunSpec(record: JobRecord, projects: ProjectStore): Promise<JobSpec> {
  const { job_id: _old, ...spec } = record.spec;
  if (record.view.status !== "done") return spec;
  const base = eraseSecrets(spec);
  // The view shows which secrets and which kind of credential the job had, never their values.
  const shown = record.view.spec;
  const names = Object.keys(shown.secrets ?? {});
  const authType = shown.repo.auth?.type;
  if (!names.length && !authType) return base;
  // Several projects may share a repository: the first (by name) that holds everything needed.
  const candidates = (await projects.list()).map((stored) => stored.project)
    .filter((project) => repoKey(project.repo.url) === repoKey(spec.repo.url));
  const lacks = (project: Project) => [
    ...names.filter((name) => !Object.hasOwn(project.secrets, name)).map((n) => `secret ${n}`),
    ...(authType && project.repo.auth?.type !== authType
      ? [`${authType} repository credential`]
      : []),
  ];
  const project = candidates.find((p) => lacks(p).length === 0) ?? candidates[0];
  const missing = project ? lacks(project) : [];
  if (!project || missing.length) {
    throw new ConflictError(
      `job '${record.id}' has finished, and a finished job keeps no secrets: ` +
        (project
          ? `its project '${project.name}' has no ${missing.join(", ")}`
          : `no project holds its repository ${spec.repo.url} to take them from`) +
        "; submit the job again with its secrets (POST /api/jobs, strider run)",
    );
  }
  const secrets = Object.fromEntries(names.map((name) => [name, project.secrets[name]]));
  return {
    ...base,
    repo: authType ? { ...base.repo, auth: project.repo.auth } : base.repo,
    ...(names.length ? { secrets } : {}),
  };
}
