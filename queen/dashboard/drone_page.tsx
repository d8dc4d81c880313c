/**
 * `/drones/:id`: one connected drone, its labels, plugins, version, when it connected, its
 * current and recent jobs and its utilisation over the last hour; operators (logged in with the
 * API token) can drain it (it finishes what it runs and takes nothing new) or disconnect it.
 */
import type { DroneView, JobSummary } from "../../protocol/mod.ts";
import { UtilisationChart } from "./charts.tsx";
import { elapsed } from "./format.ts";
import { CsrfField, Layout, LoginNote } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import { Ago, StateBadge } from "./overview_rows.tsx";

/** What a drone's page shows. */
export interface DronePageData {
  drone: DroneView;
  recent: JobSummary[];
  shares: number[];
}

function Fact(props: { term: string; children?: unknown }) {
  return (
    <>
      <dt>{props.term}</dt>
      <dd>{props.children}</dd>
    </>
  );
}

/** The drone page. */
export function DronePage(props: { ctx: PageContext; data: DronePageData }) {
  const { ctx, data } = props;
  const d = data.drone;
  const action = (what: string) => `/drones/${encodeURIComponent(d.id)}/${what}`;
  return (
    <Layout ctx={ctx} title={`Drone ${d.name}`}>
      <header class="job-head">
        <h1>
          Drone <code>{d.name}</code> {d.draining
            ? <span class="tag" data-field="draining">draining</span>
            : <span class="badge badge-passed">connected</span>}
        </h1>
        {ctx.session && (
          <div class="actions">
            <form method="post" action={action("drain")}>
              <CsrfField session={ctx.session} />
              <button type="submit" disabled={d.draining}>Drain</button>
            </form>
            <form method="post" action={action("disconnect")}>
              <CsrfField session={ctx.session} />
              <button type="submit" class="danger">Disconnect</button>
            </form>
          </div>
        )}
      </header>
      {!ctx.session && <LoginNote ctx={ctx} what="drain or disconnect this drone" />}
      <dl class="facts">
        {d.queen && (
          <Fact term="Queen">
            <code data-field="queen">{d.queen.id}</code> {d.queen.url}
          </Fact>
        )}
        <Fact term="Version">{d.version || "unknown"}</Fact>
        <Fact term="Labels">{d.labels.join(", ") || "none"}</Fact>
        <Fact term="Plugins">{d.plugins.join(", ") || "none"}</Fact>
        <Fact term="Capacity">{`${d.capacity} at once, speed ${d.speed}`}</Fact>
        <Fact term="Connected since">
          <Ago iso={d.connectedAt} />
        </Fact>
        <Fact term="Last seen">
          <Ago iso={d.lastSeen} />
        </Fact>
        <Fact term="Current jobs">
          {d.jobs.length
            ? (
              <ul class="attempts">
                {d.jobs.map((id) => (
                  <li key={id}>
                    <a href={`/jobs/${encodeURIComponent(id)}`}>{id}</a>
                  </li>
                ))}
              </ul>
            )
            : "none"}
        </Fact>
      </dl>
      <section aria-labelledby="util-title">
        <h2 id="util-title">Utilisation</h2>
        <UtilisationChart shares={data.shares} />
      </section>
      <section aria-labelledby="recent-title">
        <h2 id="recent-title">Recent jobs</h2>
        {data.recent.length === 0
          ? <p class="muted">None in the recent history.</p>
          : (
            <ul class="recent">
              {data.recent.map((job) => (
                <li key={job.id}>
                  <StateBadge job={job} />{" "}
                  <a href={`/jobs/${encodeURIComponent(job.id)}`}>{job.id}</a>
                  {` ${job.ref} · ${elapsed(job.startedAt, job.finishedAt)}`}
                </li>
              ))}
            </ul>
          )}
      </section>
    </Layout>
  );
}
