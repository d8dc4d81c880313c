/**
 * The overview at `/`: connected drones, the queue and recent jobs. The client script keeps the
 * three tables current from `overview` frames, building the same rows as these components.
 */
import type { DroneView, JobSummary, Overview, QueuedJob } from "../../protocol/mod.ts";
import { ago, elapsed, stateOf } from "./format.ts";
import { Layout } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";

/** A date as a `<time>` the client script keeps relative ("5 s ago"). */
export function Ago(props: { iso: string }) {
  return (
    <time datetime={props.iso} title={props.iso} data-ago="">
      {ago(props.iso)}
    </time>
  );
}

/** A job's state as a coloured word. */
export function StateBadge(props: { job: Pick<JobSummary, "status" | "result"> }) {
  const state = stateOf(props.job);
  return <span class={`badge badge-${state}`}>{state}</span>;
}

function Trigger(props: { job: JobSummary }) {
  const { trigger } = props.job;
  const author = trigger.author?.name ?? trigger.author?.username;
  return (
    <>
      {author && <span class="author">{author}</span>}
      {author && trigger.message && ": "}
      {trigger.message && <span class="message">{trigger.message}</span>}
      {!author && !trigger.message && <span class="muted">{trigger.type}</span>}
    </>
  );
}

function DroneRow(props: { drone: DroneView }) {
  const d = props.drone;
  return (
    <tr data-drone={d.name}>
      <th scope="row" data-label="">
        {d.name}
        {d.draining && <span class="tag">draining</span>}
      </th>
      <td class="num" data-label="Speed">{d.speed}</td>
      <td class="num" data-label="Capacity">{d.capacity}</td>
      <td data-label="Jobs">{`${d.running} running, ${d.queued} queued`}</td>
      <td data-label="Plugins">{d.plugins.join(", ")}</td>
      <td data-label="Labels">{d.labels.join(", ")}</td>
      <td data-label="Last seen">
        <Ago iso={d.lastSeen} />
      </td>
    </tr>
  );
}

function QueueRow(props: { job: QueuedJob }) {
  const j = props.job;
  return (
    <tr data-job={j.id}>
      <th scope="row" data-label="">
        <a href={`/jobs/${j.id}`}>{j.id}</a>
      </th>
      <td class="wrap" data-label="Repository">{j.repo}</td>
      <td data-label="Ref">{j.ref}</td>
      <td class="wrap" data-label="Waiting for">{j.waiting ?? ""}</td>
    </tr>
  );
}

function JobRow(props: { job: JobSummary }) {
  const j = props.job;
  return (
    <tr data-job={j.id}>
      <td data-label="">
        <StateBadge job={j} />
      </td>
      <th scope="row" data-label="">
        <a href={`/jobs/${j.id}`}>{j.id}</a>
      </th>
      <td class="wrap" data-label="Repository">{j.repo}</td>
      <td data-label="Ref">{j.ref}</td>
      <td class="wrap" data-label="Trigger">
        <Trigger job={j} />
      </td>
      <td data-label="Drone">{j.drone ?? ""}</td>
      <td class="num" data-label="Duration">{elapsed(j.startedAt, j.finishedAt)}</td>
      <td data-label="Created">
        <Ago iso={j.createdAt} />
      </td>
    </tr>
  );
}

function Empty(props: { columns: number; text: string }) {
  return (
    <tr class="empty">
      <td colspan={props.columns}>{props.text}</td>
    </tr>
  );
}

function Table(props: { id: string; title: string; columns: string[]; children: unknown }) {
  return (
    <section aria-labelledby={`${props.id}-title`}>
      <h2 id={`${props.id}-title`}>{props.title}</h2>
      <div class="table-wrap" tabindex={0} role="region" aria-labelledby={`${props.id}-title`}>
        <table id={props.id}>
          <thead>
            <tr>
              {props.columns.map((column) => <th key={column} scope="col">{column}</th>)}
            </tr>
          </thead>
          <tbody>{props.children}</tbody>
        </table>
      </div>
    </section>
  );
}

/** The overview page. */
export function OverviewPage(props: { ctx: PageContext; overview: Overview }) {
  const { drones, queue, jobs } = props.overview;
  return (
    <Layout ctx={props.ctx} title="Overview">
      <div id="overview" data-live="overview">
        <h1>Overview</h1>
        <Table
          id="drones"
          title="Drones"
          columns={["Name", "Speed", "Capacity", "Jobs", "Plugins", "Labels", "Last seen"]}
        >
          {drones.length
            ? drones.map((d) => <DroneRow key={d.id} drone={d} />)
            : <Empty columns={7} text="No drones are connected." />}
        </Table>
        <Table id="queue" title="Queue" columns={["Job", "Repository", "Ref", "Waiting for"]}>
          {queue.length
            ? queue.map((j) => <QueueRow key={j.id} job={j} />)
            : <Empty columns={4} text="No jobs are waiting." />}
        </Table>
        <Table
          id="jobs"
          title="Recent jobs"
          columns={["State", "Job", "Repository", "Ref", "Trigger", "Drone", "Duration", "Created"]}
        >
          {jobs.length
            ? jobs.map((j) => <JobRow key={j.id} job={j} />)
            : <Empty columns={8} text="No jobs yet." />}
        </Table>
      </div>
    </Layout>
  );
}
