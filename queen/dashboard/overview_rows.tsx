/**
 * The overview's rows, rendered by the queen into the page and by the browser script
 * (`client/overview.ts`) from each `overview` frame: one markup for both. No imports that
 * a browser cannot bundle (no layout, no assets).
 */
import type { DroneView, JobSummary, QueuedJob } from "../../protocol/mod.ts";
import { ago, elapsed, stateOf } from "./format.ts";

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

function TriggerText(props: { job: JobSummary }) {
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

export function DroneRow(props: { drone: DroneView }) {
  const d = props.drone;
  return (
    <tr data-drone={d.name}>
      <th scope="row" data-label="">
        <a href={`/drones/${encodeURIComponent(d.id)}`}>{d.name}</a>
        {d.draining && <span class="tag">draining</span>}
        {d.queen && (
          <span class="tag" data-field="queen" title={`connected to queen ${d.queen.url}`}>
            {d.queen.id}
          </span>
        )}
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

export function QueueRow(props: { job: QueuedJob }) {
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

export function JobRow(props: { job: JobSummary }) {
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
        <TriggerText job={j} />
      </td>
      <td data-label="Drone">{j.drone ?? ""}</td>
      <td class="num" data-label="Duration">{elapsed(j.startedAt, j.finishedAt)}</td>
      <td data-label="Created">
        <Ago iso={j.createdAt} />
      </td>
    </tr>
  );
}

export function Empty(props: { columns: number; text: string }) {
  return (
    <tr class="empty">
      <td colspan={props.columns}>{props.text}</td>
    </tr>
  );
}
