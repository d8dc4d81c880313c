/** The run form pre-filled from a registered project's branch settings (`/run?project=&branch=`). */
import type { ProjectStore } from "../projects/store.ts";
import type { RunForm } from "./run_form.ts";
import { emptyRunForm } from "./run_form.ts";

/** The projects to pick from, and the form filled in from the chosen one (never its secrets). */
export function runFormOfProject(
  projects: ProjectStore,
  name: string | undefined,
  branch: string | undefined,
): { projects: { name: string; branches: string[] }[]; project?: string; form?: RunForm } {
  const list = projects.list().map(({ project }) => ({
    name: project.name,
    branches: Object.keys(project.branches).filter((b) => b !== "*"),
  }));
  const found = name ? projects.get(name)?.project : undefined;
  if (!found) return { projects: list };
  const form = emptyRunForm();
  form.repo = found.repo.url;
  form.branch = branch?.trim() || list.find((p) => p.name === found.name)?.branches[0] || "main";
  const settings = found.branches[form.branch] ?? found.branches["*"] ?? {};
  form.plugins = (settings.plugins ?? []).join(", ");
  form.config = settings.config ? JSON.stringify(settings.config, null, 2) : "";
  if (settings.job_type) form.job_type = settings.job_type;
  return { projects: list, project: found.name, form };
}
