/** What the dashboard's overview shows: drones, the queue and recent jobs, from the core. */
import type { DroneView, JobSummary, Overview, QueuedJob } from "../../protocol/mod.ts";
import type { QueenCore } from "../queen.ts";
import type { JobRecord } from "../store.ts";

/** Recent jobs the overview lists. */
export const RECENT_JOBS = 30;

/** The ref as people read it: `branch`, `branch@commit` or the fetched refspec. */
export function refText(spec: JobRecord["spec"]): string {
  if ("fetch" in spec.ref) return spec.ref.fetch;
  return spec.ref.id ? `${spec.ref.branch}@${spec.ref.id}` : spec.ref.branch;
}

/** A job as `GET /api/jobs` lists it. */
export function jobSummary(record: JobRecord): JobSummary {
  const { view, spec } = record;
  return {
    id: view.id,
    status: view.status,
    result: view.result,
    repo: spec.repo.url,
    ref: refText(spec),
    job_type: spec.job_type,
    trigger: spec.trigger!,
    drone: view.drone,
    attempt: view.attempt,
    createdAt: view.createdAt,
    startedAt: view.startedAt,
    finishedAt: view.finishedAt,
  };
}

/** The connected drones as `GET /api/drones` lists them. */
export function droneViews(core: QueenCore): DroneView[] {
  return [...core.drones.values()].map((d) => d.view((id) => core.isStarted(id)));
}

/** Drones, the queue in dispatch order, and the most recent jobs. */
export function overviewOf(core: QueenCore, recent = RECENT_JOBS): Overview {
  const queue: QueuedJob[] = [];
  for (const id of core.queue()) {
    const record = core.store.getJob(id);
    if (record) queue.push({ ...jobSummary(record), waiting: record.view.waiting });
  }
  const jobs = core.store.listJobs({ limit: recent }).records.map(jobSummary);
  return { drones: droneViews(core), queue, jobs };
}
