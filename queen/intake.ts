/**
 * The one way a job comes in. Every entry point (`POST /api/jobs`, webhooks, the browser
 * socket's `queue:new`, the dashboard's run form and re-runs) hands its body here: older Strider
 * job data is converted, the spec is checked against the protocol's schema, the queen's policy
 * (`--allow-repo`, taken ids) is applied by the core, and the job is queued. Problems are domain
 * errors (`errors.ts`); each entry point shows them its own way.
 * @module
 */
import {
  convertLegacyJob,
  isLegacyJob,
  issuesOf,
  JobSpecSchema,
  LegacyJobSchema,
} from "../protocol/mod.ts";
import type { JobSpec, Submitted } from "../protocol/mod.ts";
import type { BuildCore } from "./builds/builds.ts";
import { buildsOf } from "./builds/registry.ts";
import { InvalidInputError } from "./errors.ts";

/** Where a job came from; it names the input in error messages. */
export type JobSource = "api" | "webhook" | "browser" | "dashboard" | "rerun";

/** How each source's invalid input is described. */
const WHAT: Record<JobSource, string> = {
  api: "invalid job spec",
  webhook: "the delivery would make an invalid job",
  browser: "invalid job spec",
  dashboard: "invalid job spec",
  rerun: "the re-run would make an invalid job",
};

/** `body` as a job spec, or an `InvalidInputError` naming each problem. */
export function jobSpecOf(body: unknown, source: JobSource): JobSpec {
  if (isLegacyJob(body)) {
    const legacy = LegacyJobSchema.safeParse(body);
    if (!legacy.success) {
      throw InvalidInputError.of("invalid job data (older Strider format)", issuesOf(legacy.error));
    }
    body = convertLegacyJob(legacy.data);
  }
  const parsed = JobSpecSchema.safeParse(body);
  if (!parsed.success) throw InvalidInputError.of(WHAT[source], issuesOf(parsed.error));
  return parsed.data;
}

/**
 * Validates `body` and queues it as a build: one job, or one per matrix combination and shard
 * (`builds/expand.ts`), the one place a build is made. Throws `InvalidInputError` for a malformed
 * body or a matrix past its limits, `RejectedError` when the queen's policy refuses it,
 * `ConflictError` when its id is taken.
 */
export async function acceptJob(
  core: BuildCore,
  body: unknown,
  source: JobSource,
  links: { retryOf?: string } = {},
): Promise<Submitted> {
  const parsed = jobSpecOf(body, source);
  const { build, ...spec } = parsed;
  // Nobody may join a build.
  if (build && source !== "rerun") {
    throw new InvalidInputError(
      `${WHAT[source]}: build: is set by the queen on the jobs of a build; leave it out`,
    );
  }
  // A re-run keeps its job's matrix values and shard (so its variables), as a build of its own.
  return await buildsOf(core).submit(spec, links, build);
}
