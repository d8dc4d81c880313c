/**
 * `/projects` and `/projects/:name`: every project with its branches, and one project's branches
 * (latest result, history), duration trend, badge and jobs, filtered and paged by the URL.
 */
import type { JobSummary } from "../../protocol/mod.ts";
import { JobResultSchema } from "../../protocol/mod.ts";
import { DurationTrend } from "./charts.tsx";
import { elapsed } from "./format.ts";
import { Layout } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import { Ago, StateBadge } from "./overview_rows.tsx";
import type { BranchEntry, JobQuery, ProjectEntry } from "./project_data.ts";
import type { QUERY_FIELDS } from "./project_data.ts";

/** A project's page. */
export const projectHref = (name: string) => `/projects/${encodeURIComponent(name)}`;
/** A branch's badge. */
export const badgeHref = (name: string, branch: string) =>
  `/badge/${encodeURIComponent(name)}/${encodeURIComponent(branch)}.svg`;

/** The last runs of a branch as small squares, oldest left, each a link to its job. */
function History(props: { jobs: JobSummary[] }) {
  return (
    <span class="history">
      {props.jobs.toReversed().map((job) => (
        <a
          key={job.id}
          href={`/jobs/${encodeURIComponent(job.id)}`}
          class={`dot badge-${job.result ?? job.status}`}
          title={`${job.id}: ${job.result ?? job.status}`}
          aria-label={`${job.id}: ${job.result ?? job.status}`}
        />
      ))}
    </span>
  );
}

function Branches(props: { project: ProjectEntry; branches: BranchEntry[] }) {
  const { project, branches } = props;
  if (branches.length === 0) return <p class="muted">No jobs yet.</p>;
  return (
    <div class="table-wrap" tabindex={0} role="region" aria-label={`Branches of ${project.name}`}>
      <table class="branches">
        <thead>
          <tr>
            <th scope="col">Branch</th>
            <th scope="col">Latest</th>
            <th scope="col">History</th>
            <th scope="col">Last run</th>
          </tr>
        </thead>
        <tbody>
          {branches.map((b) => (
            <tr key={b.branch} data-branch={b.branch}>
              <th scope="row">
                <a href={`${projectHref(project.name)}?branch=${encodeURIComponent(b.branch)}`}>
                  {b.branch}
                </a>
              </th>
              <td>
                <a href={`/jobs/${encodeURIComponent(b.latest.id)}`}>
                  <StateBadge job={b.latest} />
                </a>
              </td>
              <td>
                <History jobs={b.history} />
              </td>
              <td>
                <Ago iso={b.latest.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The projects page. */
export function ProjectsPage(
  props: { ctx: PageContext; projects: { entry: ProjectEntry; branches: BranchEntry[] }[] },
) {
  return (
    <Layout ctx={props.ctx} title="Projects">
      <h1>Projects</h1>
      {props.projects.length === 0 && (
        <p class="muted">
          No projects yet: register one with <code>POST /api/projects</code> or run a job.
        </p>
      )}
      {props.projects.map(({ entry, branches }) => (
        <section key={entry.name} class="project" aria-labelledby={`p-${entry.name}`}>
          <h2 id={`p-${entry.name}`}>
            <a href={projectHref(entry.name)}>{entry.name}</a>{" "}
            {!entry.registered && <span class="tag">seen in jobs</span>}
          </h2>
          <p class="muted wrap">{entry.repo}</p>
          <Branches project={entry} branches={branches} />
        </section>
      ))}
    </Layout>
  );
}

function FilterForm(props: { project: ProjectEntry; query: JobQuery; branches: string[] }) {
  const { query } = props;
  const input = (name: (typeof QUERY_FIELDS)[number], label: string, type = "text") => (
    <div class="field">
      <label for={`f-${name}`}>{label}</label>
      <input
        id={`f-${name}`}
        name={name}
        type={type}
        value={query[name] ?? ""}
        list={name === "branch" ? "f-branches" : undefined}
        autocomplete="off"
      />
    </div>
  );
  return (
    <form method="get" action={projectHref(props.project.name)} class="filters" role="search">
      <div class="field">
        <label for="f-result">Result</label>
        <select id="f-result" name="result">
          <option value="">any</option>
          {JobResultSchema.options.map((r) => (
            <option key={r} value={r} selected={query.result === r}>{r}</option>
          ))}
        </select>
      </div>
      {input("branch", "Branch")}
      <datalist id="f-branches">
        {props.branches.map((b) => <option key={b} value={b} />)}
      </datalist>
      {input("trigger", "Trigger")}
      {input("author", "Author")}
      {input("drone", "Drone")}
      {input("since", "From", "date")}
      {input("until", "To", "date")}
      <button type="submit">Filter</button>
      <a href={projectHref(props.project.name)}>Clear</a>
    </form>
  );
}

/** The jobs of a project as a table. */
function JobsTable(props: { jobs: JobSummary[] }) {
  return (
    <div class="table-wrap" tabindex={0} role="region" aria-labelledby="jobs-title">
      <table id="project-jobs">
        <thead>
          <tr>
            <th scope="col">State</th>
            <th scope="col">Job</th>
            <th scope="col">Ref</th>
            <th scope="col">Trigger</th>
            <th scope="col">Drone</th>
            <th scope="col">Duration</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {props.jobs.length === 0 && (
            <tr class="empty">
              <td colspan={7}>No jobs match.</td>
            </tr>
          )}
          {props.jobs.map((job) => (
            <tr key={job.id} data-job={job.id}>
              <td>
                <StateBadge job={job} />
              </td>
              <th scope="row">
                <a href={`/jobs/${encodeURIComponent(job.id)}`}>{job.id}</a>
              </th>
              <td>{job.ref}</td>
              <td>
                {job.trigger.type}
                {(job.trigger.author?.name ?? job.trigger.author?.username) &&
                  ` by ${job.trigger.author?.name ?? job.trigger.author?.username}`}
              </td>
              <td>{job.drone ?? ""}</td>
              <td class="num">{elapsed(job.startedAt, job.finishedAt)}</td>
              <td>
                <Ago iso={job.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** What a project's page shows. */
export interface ProjectPageData {
  project: ProjectEntry;
  branches: BranchEntry[];
  runs: JobSummary[];
  query: JobQuery;
  problems: string[];
  jobs: JobSummary[];
  next: string | null;
  /** The page's own query string without `after`, for the next page's link. */
  search: URLSearchParams;
  origin: string;
}

/** A project's page. */
export function ProjectPage(props: { ctx: PageContext; data: ProjectPageData }) {
  const { data } = props;
  const { project } = data;
  const main = data.branches[0]?.branch ?? "main";
  const nextSearch = new URLSearchParams(data.search);
  if (data.next) nextSearch.set("after", data.next);
  return (
    <Layout ctx={props.ctx} title={project.name}>
      <h1>{project.name}</h1>
      <p class="muted wrap">{project.repo}</p>
      <section aria-labelledby="branches-title">
        <h2 id="branches-title">Branches</h2>
        <Branches project={project} branches={data.branches} />
      </section>
      <section aria-labelledby="trend-title">
        <h2 id="trend-title">Duration trend</h2>
        <DurationTrend runs={data.runs} />
      </section>
      <section aria-labelledby="badge-title">
        <h2 id="badge-title">Badge</h2>
        <p>
          <img src={badgeHref(project.name, main)} alt={`build status of ${main}`} />
        </p>
        <label for="badge-md">Markdown for a README</label>
        <input
          id="badge-md"
          readonly
          value={`![build](${data.origin}${badgeHref(project.name, main)})`}
        />
      </section>
      <section aria-labelledby="jobs-title">
        <h2 id="jobs-title">Jobs</h2>
        <FilterForm
          project={project}
          query={data.query}
          branches={data.branches.map((b) => b.branch)}
        />
        {data.problems.length > 0 && (
          <ul class="alert" role="alert">
            {data.problems.map((p) => <li key={p}>{p}</li>)}
          </ul>
        )}
        <JobsTable jobs={data.jobs} />
        <nav class="pager" aria-label="Pages">
          {data.query.after && (
            <a
              href={`${projectHref(project.name)}?${
                (() => {
                  const first = new URLSearchParams(data.search);
                  first.delete("after");
                  return first;
                })()
              }`}
            >
              First page
            </a>
          )}
          {data.next && (
            <a rel="next" href={`${projectHref(project.name)}?${nextSearch}`}>Next page</a>
          )}
        </nav>
      </section>
    </Layout>
  );
}
