/** What the dashboard's overview shows: drones, the queue and recent jobs, from the core. */
import type { DroneView, Overview, QueuedJob } from "../../protocol/mod.ts";
import { fleetViews } from "../fleet.ts";
import { jobSummary } from "../job_summary.ts";
import type { QueenCore } from "../queen.ts";

export { jobSummary, refText } from "../job_summary.ts";

/** Recent jobs the overview lists. */
export const RECENT_JOBS = 30;

/** The connected drones as `GET /api/drones` lists them (with several queens, the fleet's). */
export function droneViews(core: QueenCore): Promise<DroneView[]> {
  return fleetViews(core);
}

/** Drones, the queue in dispatch order, and the most recent jobs. */
export async function overviewOf(core: QueenCore, recent = RECENT_JOBS): Promise<Overview> {
  const queue: QueuedJob[] = [];
  for (const record of await core.queued()) {
    queue.push({ ...jobSummary(record), waiting: record.view.waiting });
  }
  const jobs = (await core.store.listJobs({ limit: recent })).records.map(jobSummary);
  return { drones: await droneViews(core), queue, jobs };
}
