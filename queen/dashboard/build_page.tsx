/**
 * A build's page: its state and its jobs as a grid, the first matrix axis as rows and the
 * others as columns (shards side by side in a cell), each cell linking to its job. The client
 * script (`client/build.ts`) keeps the cells live while the build runs.
 * @module
 */
import type { BuildJobView, BuildView } from "../../protocol/mod.ts";
import { CsrfField, Layout, LoginNote } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";

/** A build's or job's state word: its result once final. */
export function buildState(item: { status: string; result: string | null }): string {
  return item.result ?? item.status;
}

/** Rows and columns of a build's grid: row key → column key → the jobs of that cell. */
export function gridOf(
  build: BuildView,
): { rows: string[]; cols: string[]; cell: (r: string, c: string) => BuildJobView[] } {
  const [first, ...rest] = build.axes;
  const rowOf = (job: BuildJobView) =>
    first ? `${first.name}=${job.matrix?.[first.name] ?? "-"}` : "";
  const colOf = (job: BuildJobView) =>
    rest.map((axis) => `${axis.name}=${job.matrix?.[axis.name] ?? "-"}`).join(" ");
  const rows = [...new Set(build.jobs.map(rowOf))];
  const cols = [...new Set(build.jobs.map(colOf))];
  return {
    rows,
    cols,
    cell: (r, c) => build.jobs.filter((job) => rowOf(job) === r && colOf(job) === c),
  };
}

function Cell(props: { job: BuildJobView }) {
  const { job } = props;
  const state = buildState(job);
  return (
    <a class="build-cell" href={`/jobs/${encodeURIComponent(job.id)}`} data-job={job.id}>
      <span class="build-cell-name">{job.shard ? `shard ${job.shard.index}` : job.name}</span>
      <span class={`badge badge-${state}`} data-field="state">{state}</span>
      {job.allow_failure && <span class="note">may fail</span>}
    </a>
  );
}

/** Cancel while it runs; once done, re-run it whole or only its jobs that did not pass. */
function Actions(props: { ctx: PageContext; build: BuildView }) {
  const { ctx, build } = props;
  if (!ctx.session) return <LoginNote ctx={ctx} what="cancel or re-run this build" />;
  const path = `/builds/${encodeURIComponent(build.id)}`;
  const failed = build.jobs.some((j) => j.result !== "passed");
  return (
    <div class="actions">
      {build.status !== "done" && (
        <form method="post" action={`${path}/cancel`} class="cancel">
          <CsrfField session={ctx.session} />
          <button type="submit" class="danger">Cancel build</button>
        </form>
      )}
      {build.status === "done" && (
        <form method="post" action={`${path}/rerun`} class="rerun">
          <CsrfField session={ctx.session} />
          <button type="submit">Re-run all</button>
        </form>
      )}
      {build.status === "done" && failed && (
        <form method="post" action={`${path}/rerun-failed`} class="rerun">
          <CsrfField session={ctx.session} />
          <button type="submit">Re-run failed</button>
        </form>
      )}
    </div>
  );
}

export function BuildPage(props: { ctx: PageContext; build: BuildView }) {
  const { build } = props;
  const grid = gridOf(build);
  const state = buildState(build);
  return (
    <Layout ctx={props.ctx} title={`Build ${build.id}`}>
      <section id="build" data-build={build.id} data-status={build.status}>
        <h1>
          Build {build.id}{" "}
          <span class={`badge badge-${state}`} data-field="build-state" role="status">
            {state}
          </span>
        </h1>
        <p>
          {build.repo}
          {build.branch ? ` · ${build.branch}` : ""} · {build.jobs.length} jobs
          {build.fail_fast ? " · fail-fast" : ""}
          {build.rerunOf && (
            <>
              {" · re-run of "}
              <a href={`/builds/${encodeURIComponent(build.rerunOf)}`}>{build.rerunOf}</a>
            </>
          )}
        </p>
        <Actions ctx={props.ctx} build={build} />
        <table class="build-grid">
          {grid.cols.some((c) => c) && (
            <thead>
              <tr>
                <th></th>
                {grid.cols.map((c) => <th key={c} scope="col">{c}</th>)}
              </tr>
            </thead>
          )}
          <tbody>
            {grid.rows.map((r) => (
              <tr key={r}>
                <th scope="row">{r}</th>
                {grid.cols.map((c) => (
                  <td key={c}>
                    {grid.cell(r, c).map((job) => <Cell key={job.id} job={job} />)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </Layout>
  );
}
