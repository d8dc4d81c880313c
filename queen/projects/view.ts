import type { ProjectView } from "../../protocol/mod.ts";
import { SECRET_MASK } from "../../protocol/mod.ts";
import type { StoredProject } from "./store.ts";

/** A project fit to show: secret values and repository credentials become `***`. */
export function projectView(stored: StoredProject): ProjectView {
  const { project } = stored;
  const repo = structuredClone(project.repo);
  if (repo.auth?.type === "https") repo.auth.password = SECRET_MASK;
  if (repo.auth?.type === "ssh") repo.auth.key = SECRET_MASK;
  return {
    name: project.name,
    repo,
    branches: project.branches,
    secrets: Object.fromEntries(Object.keys(project.secrets).map((name) => [name, SECRET_MASK])),
    webhook_secret: project.webhook_secret === undefined ? null : SECRET_MASK,
    ...(project.status ? { status: project.status } : {}),
    createdAt: new Date(stored.createdAt).toISOString(),
    updatedAt: new Date(stored.updatedAt).toISOString(),
  };
}
