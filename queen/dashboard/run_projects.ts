/** The run form pre-filled from a registered project's branch settings (`/run?project=&branch=`). */
import { SECRET_MASK } from "../../protocol/mod.ts";
import { projectView } from "../projects/view.ts";
import type { ProjectStore } from "../projects/store.ts";
import type { RunForm } from "./run_form.ts";
import { emptyRunForm } from "./run_form.ts";

/**
 * The projects to pick from, and the form filled in from the chosen one as its API view shows
 * it: secret-named config values are `***` (see `withProjectSecrets` for the way back).
 */
export async function runFormOfProject(
  projects: ProjectStore,
  name: string | undefined,
  branch: string | undefined,
): Promise<{ projects: { name: string; branches: string[] }[]; project?: string; form?: RunForm }> {
  const list = (await projects.list()).map(({ project }) => ({
    name: project.name,
    branches: Object.keys(project.branches).filter((b) => b !== "*"),
  }));
  const stored = name ? await projects.get(name) : undefined;
  if (!stored) return { projects: list };
  const view = projectView(stored);
  const form = emptyRunForm();
  form.repo = view.repo.url;
  form.branch = branch?.trim() || list.find((p) => p.name === view.name)?.branches[0] || "main";
  const settings = view.branches[form.branch] ?? view.branches["*"] ?? {};
  form.plugins = (settings.plugins ?? []).join(", ");
  form.config = settings.config ? JSON.stringify(settings.config, null, 2) : "";
  if (settings.job_type) form.job_type = settings.job_type;
  return { projects: list, project: view.name, form };
}

/** `shown` with each `***` replaced by the value at the same place in `real`. */
function unmask(shown: unknown, real: unknown): unknown {
  if (shown === SECRET_MASK && typeof real === "string") return real;
  if (Array.isArray(shown)) {
    return shown.map((v, i) => unmask(v, Array.isArray(real) ? real[i] : undefined));
  }
  if (shown && typeof shown === "object") {
    const from = real && typeof real === "object" ? real as Record<string, unknown> : {};
    return Object.fromEntries(
      Object.entries(shown).map((
        [k, v],
      ) => [k, unmask(v, Object.hasOwn(from, k) ? from[k] : undefined)]),
    );
  }
  return shown;
}

/**
 * The form to make a job from: where its plugin config still shows `***` from a project's view,
 * the project's (of the form's repository and branch) real values. The form shown back to the
 * browser keeps the masks.
 */
export async function withProjectSecrets(
  projects: ProjectStore,
  form: RunForm,
): Promise<RunForm> {
  if (!form.config.includes(SECRET_MASK)) return form;
  const stored = await projects.findByRepo([form.repo.trim()]);
  if (!stored) return form;
  const branches = stored.project.branches;
  const real = (branches[form.branch.trim()] ?? branches["*"])?.config;
  try {
    return { ...form, config: JSON.stringify(unmask(JSON.parse(form.config), real)) };
  } catch {
    return form;
  }
}
