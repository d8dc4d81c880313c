/**
 * One job at `/jobs/:id`: its trigger, repository, drone and attempts, then each phase with its
 * commands and their output. Only the tail of each output is rendered; earlier parts come on
 * demand. The client script follows a running job over `/ws/browser`, folds its events with the
 * queen's fold and renders the changing parts with the same components (`job_parts.tsx`).
 */
import type { Artifact, JobView, ReportedStatus } from "../../protocol/mod.ts";
import { isHttpUrl } from "../../protocol/mod.ts";
import { Attempts, Duration, JobOutputs, JobState } from "./job_parts.tsx";
import { CsrfField, Layout, LoginNote } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import { Ago } from "./overview_rows.tsx";
import { ansiToHtml, tailOf } from "./output.ts";
import type { OutputPart } from "./output.ts";

/** What the job page shows. */
export interface JobPageData {
  view: JobView;
  /** The last event number the page reflects. */
  n: number;
  /** Bytes of the full log. */
  logBytes: number;
  /** The end of the full log, when the view's output stopped at the queen's limit. */
  logTail?: OutputPart & { startByte: number };
  /** The job's artifacts (files it kept), when it has any. */
  artifacts?: Artifact[];
  /** The commit status reported to the forge, for webhook jobs that report. */
  reported?: ReportedStatus;
}

/** `reported: success to github` and, while it is not through, what is being tried. */
export function reportedText(r: ReportedStatus): string {
  const done = r.state ? `${r.state} to ${r.forge} for ${r.commit.slice(0, 12)}` : "nothing yet";
  const pending = r.state === r.wanted ? "" : `; reporting ${r.wanted}`;
  const error = r.error ? ` (${r.error})` : "";
  return `${done}${pending}${r.tries ? `, try ${r.tries}` : ""}${error}`;
}

/** The job's artifacts, each a download link with its size. */
function Artifacts(props: { jobId: string; artifacts: Artifact[] }) {
  const href = (path: string) =>
    `/api/jobs/${encodeURIComponent(props.jobId)}/artifacts/` +
    path.split("/").map(encodeURIComponent).join("/");
  return (
    <ul class="artifacts" data-field="artifacts">
      {props.artifacts.map((a) => (
        <li key={a.path}>
          <a href={href(a.path)} download>{a.path}</a>{" "}
          <span class="muted">{`${a.size.toLocaleString("en")} bytes`}</span>
        </li>
      ))}
    </ul>
  );
}

function Trigger(props: { view: JobView }) {
  const t = props.view.spec.trigger;
  if (!t) return <span class="muted">none</span>;
  const author = t.author?.name ?? t.author?.username;
  const source = t.source.type === "UI"
    ? `the ${t.source.page}`
    : t.source.type === "API"
    ? `the API (${t.source.app})`
    : `the ${t.source.plugin} plugin`;
  // Jobs stored before trigger URLs were checked may hold any scheme: link only http(s).
  const message = t.message &&
    (t.url && isHttpUrl(t.url) ? <a href={t.url}>{t.message}</a> : t.message);
  return (
    <>
      <span>{`${t.type}${author ? ` by ${author}` : ""}, from ${source}`}</span>
      {message && <span class="trigger-message">{message}</span>}
    </>
  );
}

function Fact(props: { term: string; children: unknown; field?: string }) {
  return (
    <div>
      <dt>{props.term}</dt>
      <dd data-field={props.field}>{props.children}</dd>
    </div>
  );
}

function Actions(props: { ctx: PageContext; view: JobView }) {
  const { ctx, view } = props;
  const done = view.status === "done";
  return (
    <div class="actions">
      {ctx.session && (
        <form
          method="post"
          action={`/jobs/${view.id}/cancel`}
          data-api={`/api/jobs/${view.id}/cancel`}
          class="cancel"
          hidden={done}
        >
          <CsrfField session={ctx.session} />
          <button type="submit" class="danger">Cancel</button>
        </form>
      )}
      {ctx.session && (
        <form method="post" action={`/jobs/${view.id}/rerun`} class="rerun">
          <CsrfField session={ctx.session} />
          <button type="submit">Re-run</button>
        </form>
      )}
      <a class="button" href={`/jobs/${view.id}/log`}>Full log, search</a>
      <a class="button" href={`/api/jobs/${view.id}/log`}>Raw log</a>
    </div>
  );
}

/** The job page. */
export function JobPage(props: { ctx: PageContext; data: JobPageData }) {
  const { ctx, data } = props;
  const { view } = data;
  const live = view.status !== "done";
  const repo = view.spec.repo;
  const ref = "fetch" in view.spec.ref
    ? view.spec.ref.fetch
    : view.spec.ref.id
    ? `${view.spec.ref.branch} @ ${view.spec.ref.id}`
    : view.spec.ref.branch;
  return (
    <Layout ctx={ctx} title={`Job ${view.id}`}>
      <article
        id="job"
        data-id={view.id}
        data-status={view.status}
        data-n={data.n}
        data-complete={data.logTail ? "false" : "true"}
      >
        <header class="job-head">
          <h1>
            Job <code>{view.id}</code> <JobState view={view} />
          </h1>
          <Actions ctx={ctx} view={view} />
        </header>
        {!ctx.session && <LoginNote ctx={ctx} what="cancel or re-run this job" />}
        <p class="alert" role="alert" data-field="message" hidden></p>
        <p class="error" data-field="error" hidden={!view.error}>{view.error ?? ""}</p>
        <p class="waiting" data-field="waiting" hidden={!view.waiting}>
          {view.waiting ? `Waiting: ${view.waiting}` : ""}
        </p>
        <dl class="facts">
          <Fact term="Repository">
            <span class="wrap">{repo.url}</span>
            {repo.vcs !== "git" && ` (${repo.vcs})`}
          </Fact>
          <Fact term="Ref">{ref}</Fact>
          <Fact term="Type">{view.spec.job_type}</Fact>
          <Fact term="Trigger">
            <Trigger view={view} />
          </Fact>
          <Fact term="Drone" field="drone">{view.drone ?? "none yet"}</Fact>
          <Fact term="Created">
            <Ago iso={view.createdAt} />
          </Fact>
          <Fact term="Duration" field="duration">
            <Duration view={view} />
          </Fact>
          <Fact term="Attempts" field="attempts">
            <Attempts view={view} />
          </Fact>
          {data.reported && (
            <Fact term="Reported" field="reported">{reportedText(data.reported)}</Fact>
          )}
          {data.artifacts && data.artifacts.length > 0 && (
            <Fact term="Artifacts" field="artifact-list">
              <Artifacts jobId={view.id} artifacts={data.artifacts} />
            </Fact>
          )}
          {view.spec.build && (
            <Fact term="Build">
              <a href={`/builds/${encodeURIComponent(view.spec.build.id)}`}>
                {view.spec.build.id}
              </a>
              {` · ${view.spec.build.name}`}
            </Fact>
          )}
          {view.retryOf && (
            <Fact term="Re-run of">
              <a href={`/jobs/${view.retryOf}`}>{view.retryOf}</a>
            </Fact>
          )}
        </dl>
        {data.logTail && (
          <section class="log-tail" aria-labelledby="log-tail-title">
            <h2 id="log-tail-title">End of the full log</h2>
            <p class="note">
              This job printed more output than the queen keeps per command; the output below each
              command stops there. The end of the full log follows;{" "}
              <a href={`/api/jobs/${view.id}/log`}>the raw log</a> has all{" "}
              {data.logBytes.toLocaleString("en")} bytes.
            </p>
            {data.logTail.startByte > 0 && (
              <a
                class="earlier"
                href={`/api/jobs/${view.id}/log`}
                data-key="log"
                data-byte={data.logTail.startByte}
              >
                Show earlier output
              </a>
            )}
            <pre class="log" data-key="log">
              <code dangerouslySetInnerHTML={{ __html: ansiToHtml(data.logTail.text) }} />
            </pre>
          </section>
        )}
        <section class="output" aria-label="Output">
          <JobOutputs jobId={view.id} view={view} part={(_key, text) => tailOf(text)} />
        </section>
        {live && (
          <p class="muted nojs">
            This page shows the job as it was when loaded; reload it for more, or enable JavaScript
            to follow it live.
          </p>
        )}
      </article>
    </Layout>
  );
}
