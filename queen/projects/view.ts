import type { ProjectView } from "../../protocol/mod.ts";
import { SECRET_MASK } from "../../protocol/mod.ts";
import { maskSecretConfig } from "../job_state.ts";
import type { StoredProject } from "./store.ts";

/**
 * A project fit to show: secret values, repository credentials and secret-named config values of
 * its branches (`config.env.DEPLOY_KEY`, a plugin's `api_token`) become `***`.
 */
export function projectView(stored: StoredProject): ProjectView {
  const { project } = stored;
  const repo = structuredClone(project.repo);
  if (repo.auth?.type === "https") repo.auth.password = SECRET_MASK;
  if (repo.auth?.type === "ssh") repo.auth.key = SECRET_MASK;
  const branches = structuredClone(project.branches);
  for (const settings of Object.values(branches)) maskSecretConfig(settings.config);
  return {
    name: project.name,
    repo,
    branches,
    secrets: Object.fromEntries(Object.keys(project.secrets).map((name) => [name, SECRET_MASK])),
    webhook_secret: project.webhook_secret === undefined ? null : SECRET_MASK,
    ...(project.status ? { status: project.status } : {}),
    createdAt: new Date(stored.createdAt).toISOString(),
    updatedAt: new Date(stored.updatedAt).toISOString(),
  };
}
