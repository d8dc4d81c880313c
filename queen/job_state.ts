/**
 * A job's view (the API's `GET /api/jobs/:id`, the seed's `job:info`) as a fold over its recorded
 * events: a new job's view (its spec made fit to show) and the queen's cap on the output folded
 * in. Pure: the same events always give the same view, which is what lets a restarted queen
 * rebuild every job from its store. The fold of one event is `protocol/job_fold.ts`.
 */
import type { JobSpec, JobView, RecordedEvent } from "../protocol/mod.ts";
import { isSecretName } from "../protocol/mod.ts";
import { applyEvent, emptyPhases, isOutputEvent } from "../protocol/job_fold.ts";
import { capText } from "../protocol/cap_text.ts";

// The fold itself lives in protocol/, so that the dashboard's browser script folds with it too.
export { applyEvent };

const MASK = "***";

/**
 * Plugin config with every text under a secret name (`isSecretName`: `config.env.DEPLOY_KEY`,
 * a plugin's `api_token`) as `***`, in place, at any depth: a plugin may pass any of it to a
 * command's environment, where the worker masks it.
 */
export function maskSecretConfig(config: unknown): void {
  if (typeof config !== "object" || config === null) return;
  for (const [key, value] of Object.entries(config)) {
    if (typeof value === "string" && isSecretName(key) && !Array.isArray(config)) {
      (config as Record<string, unknown>)[key] = MASK;
    } else maskSecretConfig(value);
  }
}

/**
 * A copy of `spec` fit to show: secret values, repository credentials and secret-named config
 * values such as `config.env.DEPLOY_KEY` (the worker masks those in output) become `***`. Showing
 * an already public spec again changes nothing.
 */
export function publicSpec(spec: JobSpec): JobSpec {
  const shown: JobSpec = structuredClone(spec);
  if (shown.secrets) {
    shown.secrets = Object.fromEntries(Object.keys(shown.secrets).map((k) => [k, MASK]));
  }
  const auth = shown.repo.auth;
  if (auth?.type === "https") auth.password = MASK;
  if (auth?.type === "ssh") auth.key = MASK;
  maskSecretConfig(shown.config);
  // The timings of a shard travel to its worker, not to viewers: they may be 32 KiB.
  if (shown.build?.timings) delete shown.build.timings;
  return shown;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A new job's view, before any event. */
export function newJobView(id: string, spec: JobSpec, createdAt: number): JobView {
  return {
    id,
    status: "queued",
    result: null,
    error: null,
    waiting: null,
    spec: publicSpec(spec),
    drone: null,
    attempt: 0,
    attempts: [],
    createdAt: iso(createdAt),
    startedAt: null,
    finishedAt: null,
    tested: null,
    deployed: null,
    phases: emptyPhases(),
    output: "",
    retryOf: null,
  };
}

/** Output folded into a job's view, in bytes; past it the view points to the full log. */
export const VIEW_OUTPUT_LIMIT = 1024 * 1024;

/**
 * Folds an event into a job's view, keeping the view's output within `VIEW_OUTPUT_LIMIT` (the
 * log holds everything), so a job printing hundreds of megabytes costs the queen no memory.
 * Returns the bytes of output the view grew by.
 */
export function foldEvent(view: JobView, recorded: RecordedEvent, viewBytes: number): number {
  const e = recorded.data;
  if (!isOutputEvent(e)) {
    applyEvent(view, recorded);
    return 0;
  }
  if (viewBytes >= VIEW_OUTPUT_LIMIT) return 0;
  const room = VIEW_OUTPUT_LIMIT - viewBytes;
  const capped = capText(e.text, room);
  if (!capped.cut) {
    applyEvent(view, recorded);
    return capped.bytes;
  }
  const marker =
    `\n[strider: the rest of the output is in the full log: /api/jobs/${view.id}/log]\n`;
  applyEvent(view, { ...recorded, data: { ...e, text: capped.text + marker } });
  // The view is full: what is left of the room may be too small for the next character.
  return room;
}
