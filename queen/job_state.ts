/**
 * A job's view (the API's `GET /api/jobs/:id`, the seed's `job:info`) as a fold over its recorded
 * events. Pure: the same events always give the same view, which is what lets a restarted queen
 * rebuild every job from its store.
 */
import type { CommandView, JobSpec, JobView, Phase, RecordedEvent } from "../protocol/mod.ts";
import { isSecretName, PHASES } from "../protocol/mod.ts";
import { capText } from "../protocol/cap_text.ts";

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

function emptyPhases(): JobView["phases"] {
  const empty = () => ({ exitCode: null, finished: false, commands: [] });
  return {
    environment: empty(),
    prepare: empty(),
    test: empty(),
    deploy: empty(),
    cleanup: empty(),
  };
}

/** Empties the phases, for a fresh attempt: its output replaces the superseded one's. */
function resetPhases(view: JobView): void {
  view.phases = emptyPhases();
  view.output = "";
  view.tested = null;
  view.deployed = null;
}

function findCommand(view: JobView, num: number): CommandView | undefined {
  for (const phase of PHASES) {
    const found = view.phases[phase].commands.find((c) => c.num === num);
    if (found) return found;
  }
  return undefined;
}

/** The command that is running now, which general `job:stdout` output belongs to. */
function currentCommand(view: JobView): CommandView | undefined {
  for (const phase of PHASES.toReversed()) {
    const commands = view.phases[phase].commands;
    const last = commands[commands.length - 1];
    if (last) return last.exitCode === null ? last : undefined;
  }
  return undefined;
}

/** Applies one recorded event to `view`, in place. */
export function applyEvent(view: JobView, recorded: RecordedEvent): void {
  const e = recorded.data;
  const attempt = view.attempts.find((a) => a.attempt === e.attempt);
  switch (e.event) {
    case "job:dispatched":
      resetPhases(view);
      view.status = "dispatched";
      view.attempt = e.attempt;
      view.drone = e.drone;
      view.waiting = null;
      view.attempts.push({
        attempt: e.attempt,
        drone: e.drone,
        dispatchedAt: iso(e.timestamp),
        startedAt: null,
        finishedAt: null,
        result: null,
      });
      return;
    case "job:returned":
      // It never started: the attempt is dropped from the view, uncharged, and the job waits
      // in the queen's queue again (`attempt` keeps its number, so the next dispatch is new).
      view.status = "queued";
      view.drone = null;
      view.attempts = view.attempts.filter((a) => a.attempt !== e.attempt || a.startedAt);
      return;
    case "job:queued":
      return;
    case "job:started":
      view.status = "started";
      view.startedAt ??= iso(e.timestamp);
      if (attempt) attempt.startedAt = iso(e.timestamp);
      return;
    case "job:cmd:start": {
      view.phases[e.phase as Phase].commands.push({
        num: e.num,
        command: e.screencmd,
        plugin: e.plugin ?? null,
        exitCode: null,
        startedAt: iso(e.timestamp ?? recorded.at),
        finishedAt: null,
        output: "",
      });
      return;
    }
    case "job:cmd:done": {
      const command = findCommand(view, e.num);
      if (!command) return;
      command.exitCode = e.exitCode;
      command.finishedAt = iso(e.timestamp ?? recorded.at);
      for (const phase of PHASES) {
        if (view.phases[phase].commands.includes(command)) {
          const p = view.phases[phase];
          if (p.exitCode === null || p.exitCode === 0) p.exitCode = e.exitCode;
        }
      }
      return;
    }
    case "job:cmd:stdout":
    case "job:cmd:stderr": {
      const command = findCommand(view, e.num);
      if (command) command.output += e.text;
      else view.output += e.text;
      return;
    }
    case "job:stdout":
    case "job:stderr": {
      const command = currentCommand(view);
      if (command) command.output += e.text;
      else view.output += e.text;
      return;
    }
    case "job:plugin":
      return;
    case "job:tested":
      view.tested = e.code;
      view.phases.test.finished = true;
      return;
    case "job:deployed":
      view.deployed = e.code;
      view.phases.deploy.finished = true;
      return;
    case "job:done":
      view.status = "done";
      view.result = e.result;
      view.error = e.error ?? null;
      view.finishedAt = iso(e.timestamp);
      if (attempt) {
        attempt.finishedAt = iso(e.timestamp);
        attempt.result = e.result;
      }
      for (const phase of PHASES) {
        if (view.phases[phase].commands.length > 0) view.phases[phase].finished = true;
      }
      return;
  }
}

/** Output folded into a job's view, in bytes; past it the view points to the full log. */
export const VIEW_OUTPUT_LIMIT = 1024 * 1024;

const isOutput = (e: RecordedEvent["data"]) =>
  e.event === "job:cmd:stdout" || e.event === "job:cmd:stderr" || e.event === "job:stdout" ||
  e.event === "job:stderr";

/**
 * Folds an event into a job's view, keeping the view's output within `VIEW_OUTPUT_LIMIT` (the
 * log holds everything), so a job printing hundreds of megabytes costs the queen no memory.
 * Returns the bytes of output the view grew by.
 */
export function foldEvent(view: JobView, recorded: RecordedEvent, viewBytes: number): number {
  const e = recorded.data;
  if (!isOutput(e) || !("text" in e)) {
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
