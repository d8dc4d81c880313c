import type { JobSummary } from "../protocol/mod.ts";
import type { JobRecord } from "./store.ts";

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
