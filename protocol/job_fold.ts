/**
 * A job's view as a fold over its recorded events. Pure, and free of zod at run time (types
 * only), so that the queen (`queen/job_state.ts`, the store) and the dashboard's browser script
 * fold with this one function: a page followed live shows what the queen would render.
 * @module
 */
import type { CommandView, JobView, RecordedEvent } from "./job_view.ts";
import { PHASES } from "./phases.ts";

const iso = (ms: number) => new Date(ms).toISOString();

/** Five empty phases, as a job has before its first command. */
export function emptyPhases(): JobView["phases"] {
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

type EventData = RecordedEvent["data"];
/** An event that carries output. */
export type OutputEvent = Extract<
  EventData,
  { event: "job:cmd:stdout" | "job:cmd:stderr" | "job:stdout" | "job:stderr" }
>;

/** Whether `e` carries output. */
export function isOutputEvent(e: EventData): e is OutputEvent {
  return e.event === "job:cmd:stdout" || e.event === "job:cmd:stderr" ||
    e.event === "job:stdout" || e.event === "job:stderr";
}

/**
 * Where output goes in `view`: its command (by number, or the one running for `job:stdout`),
 * or undefined for the job-level output.
 */
export function outputTarget(view: JobView, e: OutputEvent): CommandView | undefined {
  return e.event === "job:cmd:stdout" || e.event === "job:cmd:stderr"
    ? findCommand(view, e.num)
    : currentCommand(view);
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
      view.phases[e.phase].commands.push({
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
    case "job:cmd:stderr":
    case "job:stdout":
    case "job:stderr": {
      const command = outputTarget(view, e);
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
