/** The manual trigger at `/run`: a form for repository, branch, job type and commands per phase. */
import { PHASES } from "../../protocol/mod.ts";
import { CsrfField, Layout, LoginNote } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import type { RunForm } from "./run_form.ts";

function Field(
  props: { name: keyof RunForm; label: string; form: RunForm; hint?: string; required?: boolean },
) {
  const id = `run-${props.name}`;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        value={props.form[props.name]}
        required={props.required}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        autocomplete="off"
      />
      {props.hint && <small id={`${id}-hint`}>{props.hint}</small>}
    </div>
  );
}

/** The trigger form, with the problems of a refused submission listed above it. */
export function RunPage(
  props: {
    ctx: PageContext;
    form: RunForm;
    problems?: string[];
    /** Registered projects, to start from one (a GET form that pre-fills this one). */
    projects?: { name: string; branches: string[] }[];
    project?: string;
  },
) {
  const { ctx, form, problems } = props;
  const projects = props.projects ?? [];
  return (
    <Layout ctx={ctx} title="Run a job">
      <h1>Run a job</h1>
      {!ctx.session && <LoginNote ctx={ctx} what="run jobs" />}
      {problems && problems.length > 0 && (
        <div class="alert" role="alert">
          <p>The job was not started:</p>
          <ul>{problems.map((p) => <li key={p}>{p}</li>)}</ul>
        </div>
      )}
      {projects.length > 0 && (
        <form method="get" action="/run" class="run-project">
          <div class="row">
            <div class="field">
              <label for="run-project">Project</label>
              <select id="run-project" name="project">
                {projects.map((p) => (
                  <option key={p.name} value={p.name} selected={p.name === props.project}>
                    {p.name}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="run-project-branch">Branch</label>
              <input
                id="run-project-branch"
                name="branch"
                value={props.project ? form.branch : "main"}
                list="run-branches"
                autocomplete="off"
              />
              <datalist id="run-branches">
                {[...new Set(projects.flatMap((p) => p.branches))].map((b) => (
                  <option key={b} value={b} />
                ))}
              </datalist>
            </div>
          </div>
          <button type="submit">Fill in from the project</button>
        </form>
      )}
      <form method="post" action="/run" class="run-form">
        {ctx.session && <CsrfField session={ctx.session} />}
        <Field
          name="repo"
          label="Repository"
          form={form}
          required
          hint="A URL such as https://host/owner/repo.git, or a path on the drones"
        />
        <div class="row">
          <Field name="branch" label="Branch" form={form} required />
          <Field name="commit" label="Commit (optional)" form={form} />
          <div class="field">
            <label for="run-job_type">Job type</label>
            <select id="run-job_type" name="job_type">
              {["TEST", "DEPLOY", "TEST&DEPLOY"].map((type) => (
                <option key={type} value={type} selected={form.job_type === type}>{type}</option>
              ))}
            </select>
          </div>
        </div>
        <fieldset>
          <legend>Commands per phase</legend>
          <p class="note">
            Each phase runs its lines as one <code>sh -e</code>{" "}
            script. Leave every phase empty to run what the repository's <code>strider.json</code>
            {" "}
            says.
          </p>
          {PHASES.map((phase) => (
            <div class="field" key={phase}>
              <label for={`run-${phase}`}>{phase}</label>
              <textarea id={`run-${phase}`} name={phase} rows={phase === "test" ? 4 : 2}>
                {form[phase]}
              </textarea>
            </div>
          ))}
          <div class="field">
            <label for="run-env">Environment variables</label>
            <textarea id="run-env" name="env" rows={2} aria-describedby="run-env-hint">
              {form.env}
            </textarea>
            <small id="run-env-hint">One NAME=value per line</small>
          </div>
        </fieldset>
        <fieldset>
          <legend>Plugins</legend>
          <Field
            name="plugins"
            label="Plugins (optional)"
            form={form}
            hint="Names in order, comma-separated; filled in from a project's branch settings"
          />
          <div class="field">
            <label for="run-config">Plugin config (JSON, optional)</label>
            <textarea id="run-config" name="config" rows={3}>{form.config}</textarea>
          </div>
        </fieldset>
        <div class="row">
          <Field name="author" label="Your name (optional)" form={form} />
          <Field name="message" label="Message (optional)" form={form} />
        </div>
        <button type="submit" class="primary" disabled={!ctx.session}>Run</button>
      </form>
    </Layout>
  );
}
