/**
 * The parts of a job page that change while it runs, rendered by the queen into the page and by
 * the browser script (`client/job.ts`) from the same fold of the same events: one markup for
 * both. No imports that a browser cannot bundle (no layout, no assets, no store).
 */
import type { CommandView, JobView } from "../../protocol/mod.ts";
import { PHASES } from "../../protocol/phases.ts";
import { elapsed, stateOf } from "./format.ts";
import { ansiToHtml } from "./output.ts";
import type { OutputPart } from "./output.ts";

/** The link to an output's part before character `end`. */
export function EarlierLink(props: { jobId: string; outputKey: string; end: number }) {
  const params = new URLSearchParams({ key: props.outputKey, end: String(props.end) });
  return (
    <a
      class="earlier"
      href={`/jobs/${encodeURIComponent(props.jobId)}/output?${params}`}
      data-key={props.outputKey}
      data-end={props.end}
    >
      {`Show earlier output (${props.end.toLocaleString("en")} characters)`}
    </a>
  );
}

/** Output as HTML, with a link to its earlier part when only its tail (`part`) is shown. */
export function Output(props: { jobId: string; outputKey: string; part: OutputPart }) {
  const { part } = props;
  return (
    <>
      {part.start > 0 && (
        <EarlierLink jobId={props.jobId} outputKey={props.outputKey} end={part.start} />
      )}
      <pre class="log" data-key={props.outputKey} data-start={part.start}>
        <code dangerouslySetInnerHTML={{ __html: ansiToHtml(part.text) }} />
      </pre>
    </>
  );
}

/** A command's or a phase's exit code; `running` while a live command has none. */
export function ExitBadge(props: { code: number | null; running?: boolean }) {
  if (props.code === null) {
    return (
      <span class="badge badge-started" data-field="exit">{props.running ? "running" : ""}</span>
    );
  }
  const state = props.code === 0 ? "passed" : "failed";
  return <span class={`badge badge-${state}`} data-field="exit">{`exit ${props.code}`}</span>;
}

/** A command's exit badge and its time. */
export function CommandMeta(
  props: { command: CommandView; running: boolean; jobEnd: string | null },
) {
  const c = props.command;
  return (
    <span class="cmd-meta">
      <ExitBadge code={c.exitCode} running={props.running} />
      <span class="cmd-time" data-start={c.startedAt ?? ""}>
        {elapsed(c.startedAt, c.finishedAt ?? props.jobEnd)}
      </span>
    </span>
  );
}

/** What a part of the page needs to know about the job besides the part itself. */
export interface OutputsOf {
  jobId: string;
  /** The part of an output shown (the queen shows its tail; the script what job:info sent). */
  part: (key: string, text: string) => OutputPart;
}

/**
 * Whether a command starts shut: in a finished job with a failing command, the ones that passed
 * are, so that the failing one is what the page opens on.
 */
export function collapsed(view: JobView, c: CommandView): boolean {
  if (view.status !== "done" || c.exitCode !== 0) return false;
  return Object.values(view.phases).some((p) =>
    p.commands.some((cmd) => cmd.exitCode !== null && cmd.exitCode !== 0)
  );
}

/** Whether a phase starts shut: in a finished job that failed, the phases without the failure. */
export function phaseCollapsed(view: JobView, phase: keyof JobView["phases"]): boolean {
  const commands = view.phases[phase].commands;
  return commands.length > 0 && commands.every((c) => collapsed(view, c));
}

/** A command: its line, exit badge, time and output. */
export function Command(
  props: OutputsOf & {
    command: CommandView;
    live: boolean;
    jobEnd: string | null;
    shut?: boolean;
  },
) {
  const c = props.command;
  const key = String(c.num);
  return (
    <details class="cmd" data-num={c.num} open={!props.shut}>
      <summary>
        <code class="cmd-line">{`$ ${c.command}`}</code>
        <CommandMeta command={c} running={props.live} jobEnd={props.jobEnd} />
      </summary>
      <Output jobId={props.jobId} outputKey={key} part={props.part(key, c.output)} />
    </details>
  );
}

/** Whether `c` is running now in a job that is `live` (not done). */
export const isRunning = (view: JobView, c: CommandView) =>
  view.status !== "done" && c.exitCode === null;

/** The job's state word, as the page's heading shows it. */
export function JobState(props: { view: JobView }) {
  const state = stateOf(props.view);
  return <span class={`badge badge-${state}`} data-field="state" role="status">{state}</span>;
}

/** The job's duration, which the script keeps moving while it runs. */
export function Duration(props: { view: JobView }) {
  const { view } = props;
  return (
    <span data-start={view.startedAt ?? ""} data-end={view.finishedAt ?? ""}>
      {elapsed(view.startedAt, view.finishedAt)}
    </span>
  );
}

/** The job's attempts: on which drone, with which result. */
export function Attempts(props: { view: JobView }) {
  const { attempts } = props.view;
  if (attempts.length === 0) return <span class="muted">none yet</span>;
  return (
    <ul class="attempts">
      {attempts.map((a) => (
        <li key={a.attempt} data-attempt={a.attempt}>
          {`#${a.attempt} on ${a.drone}`}
          {a.result && `: ${a.result}`}
        </li>
      ))}
    </ul>
  );
}

/** The job-level output and each phase with its commands: the page's `section.output`. */
export function JobOutputs(props: OutputsOf & { view: JobView }) {
  const { view } = props;
  return (
    <>
      <div class="job-output" hidden={!view.output}>
        <Output jobId={view.id} outputKey="job" part={props.part("job", view.output)} />
      </div>
      {PHASES.map((phase) => {
        const p = view.phases[phase];
        return (
          <details
            key={phase}
            class="phase"
            data-phase={phase}
            hidden={p.commands.length === 0}
            open={!phaseCollapsed(view, phase)}
          >
            <summary>
              <h2>
                <span class="phase-name">{phase}</span> <ExitBadge code={p.exitCode} />
              </h2>
            </summary>
            {p.commands.map((c) => (
              <Command
                key={c.num}
                jobId={props.jobId}
                part={props.part}
                command={c}
                live={isRunning(view, c)}
                jobEnd={view.finishedAt}
                shut={collapsed(view, c)}
              />
            ))}
          </details>
        );
      })}
    </>
  );
}

/**
 * Where a live page follows a job's output once it outgrew what the queen folds into the view
 * (the queen renders the end of the full log there instead, with its size).
 */
export function LatestOutput(props: { jobId: string }) {
  return (
    <section class="log-tail" aria-label="End of the full log">
      <h2>Latest output</h2>
      <p class="note">
        This job printed more output than the queen keeps per command. New output follows;{" "}
        <a href={`/api/jobs/${encodeURIComponent(props.jobId)}/log`}>the raw log</a> has all of it.
      </p>
      <pre class="log" data-key="log">
        <code></code>
      </pre>
    </section>
  );
}
