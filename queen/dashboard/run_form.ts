/** The trigger form's fields, and their translation into a job spec. */
import { EnvNameSchema, issuesOf, JobSpecSchema, PHASES } from "../../protocol/mod.ts";
import type { JobSpec, Phase } from "../../protocol/mod.ts";

/** The trigger form as submitted: every field a string. */
export type RunForm =
  & Record<
    "repo" | "branch" | "commit" | "job_type" | "env" | "author" | "message" | "plugins" | "config",
    string
  >
  & Record<Phase, string>;

/** The form as first shown. */
export function emptyRunForm(): RunForm {
  return {
    repo: "",
    branch: "main",
    commit: "",
    job_type: "TEST",
    env: "",
    author: "",
    message: "",
    plugins: "",
    config: "",
    environment: "",
    prepare: "",
    test: "",
    deploy: "",
    cleanup: "",
  };
}

/** Reads the form's fields from a parsed body, ignoring anything else. */
export function readRunForm(body: Record<string, unknown>): RunForm {
  const form = emptyRunForm();
  for (const key of Object.keys(form) as (keyof RunForm)[]) {
    const value = body[key];
    form[key] = typeof value === "string" ? value.replaceAll("\r\n", "\n") : "";
  }
  return form;
}

/** A spec from the form, or the problems that keep it from being one. */
export function specFromRunForm(
  form: RunForm,
  now = new Date(),
): { spec: JobSpec; problems?: undefined } | { spec?: undefined; problems: string[] } {
  const problems: string[] = [];
  const env: Record<string, string> = {};
  for (const line of form.env.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const eq = line.indexOf("=");
    const name = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!EnvNameSchema.safeParse(name).success) {
      problems.push(`environment variables: '${line}' is not NAME=value`);
      continue;
    }
    env[name] = line.slice(eq + 1);
  }
  const custom = Object.fromEntries(
    PHASES.filter((phase) => form[phase].trim()).map((phase) => [phase, form[phase].trim()]),
  );
  const hasCommands = Object.keys(custom).length > 0;
  // A registered project's plugins and config (pre-filled from its branch settings) come first.
  const plugins = form.plugins.split(/[\s,]+/).filter(Boolean);
  let config: Record<string, unknown> = {};
  if (form.config.trim()) {
    try {
      const parsed = JSON.parse(form.config);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) config = parsed;
      else problems.push("plugin config: must be a JSON object");
    } catch {
      problems.push('plugin config: is not JSON (an object such as {"env": {}})');
    }
  }
  if (hasCommands) {
    for (const name of ["env", "custom"]) if (!plugins.includes(name)) plugins.push(name);
    config = { ...config, env, custom };
  }
  const author = form.author.trim();
  const message = form.message.trim();
  const commit = form.commit.trim();
  const input = {
    repo: { url: form.repo.trim() },
    ref: commit ? { branch: form.branch.trim(), id: commit } : { branch: form.branch.trim() },
    job_type: form.job_type,
    trigger: {
      type: "manual",
      ...(author ? { author: { name: author } } : {}),
      ...(message ? { message } : {}),
      timestamp: now.toISOString(),
      source: { type: "UI", page: "dashboard" },
    },
    ...(plugins.length ? { plugins, config } : {}),
  };
  if (!hasCommands && Object.keys(env).length) {
    problems.push("environment variables: give commands for at least one phase to use them");
  }
  const parsed = JobSpecSchema.safeParse(input);
  if (!parsed.success) {
    problems.push(...issuesOf(parsed.error).map((i) => `${fieldName(i.path)}: ${i.message}`));
  }
  return problems.length || !parsed.success ? { problems } : { spec: parsed.data };
}

/** The form label a spec path comes from. */
function fieldName(path: string): string {
  if (path.startsWith("repo")) return "repository";
  if (path === "ref.branch" || path === "ref") return "branch";
  if (path === "ref.id") return "commit";
  if (path === "job_type") return "job type";
  if (path.startsWith("config.custom.")) return path.slice("config.custom.".length);
  if (path.startsWith("config.env")) return "environment variables";
  if (path.startsWith("plugins")) return "plugins";
  if (path.startsWith("config")) return "plugin config";
  if (path.startsWith("trigger.author")) return "your name";
  if (path.startsWith("trigger.message")) return "message";
  return path;
}
