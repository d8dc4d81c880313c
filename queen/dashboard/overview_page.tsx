/**
 * The overview at `/`: connected drones, the queue and recent jobs. The client script keeps the
 * three tables current from `overview` frames, rendering the same rows (`overview_rows.tsx`).
 */
import type { Overview } from "../../protocol/mod.ts";
import { Layout } from "./layout.tsx";
import { DroneRow, Empty, JobRow, QueueRow } from "./overview_rows.tsx";
import type { PageContext } from "./layout.tsx";

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
