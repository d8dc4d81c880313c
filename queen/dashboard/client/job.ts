/// <reference lib="dom" />
/**
 * A running job's page, followed live: job:info first, then its events in order, none missed or
 * repeated, each folded into the view with the queen's own fold (`protocol/job_fold.ts`). The
 * parts that change are rendered with the queen's components (`job_parts.tsx`); output is
 * appended as it comes, through the queen's ANSI renderer.
 */
import type { AnsiUp } from "ansi_up";
import type { JobView, QueenToBrowser, RecordedEvent } from "../../../protocol/mod.ts";
import { PHASES } from "../../../protocol/phases.ts";
import { applyEvent, isOutputEvent, outputTarget } from "../../../protocol/job_fold.ts";
import {
  Attempts,
  collapsed,
  Command,
  CommandMeta,
  Duration,
  EarlierLink,
  ExitBadge,
  isRunning,
  JobOutputs,
  JobState,
  LatestOutput,
  phaseCollapsed,
} from "../job_parts.tsx";
import type { OutputsOf } from "../job_parts.tsx";
import { newAnsi, TAIL_LINES } from "../output.ts";
import { fragment, replaceWith, showMessage } from "./dom.ts";
import { Live } from "./socket.ts";

/** Characters one output keeps in the page; older ones are dropped (and can be loaded again). */
const MAX_OUTPUT_CHARS = 1_000_000;

type JobInfo = Extract<QueenToBrowser, { event: "job:info" }>;

/** One output box on the page, for appends. */
interface Out {
  code: Element;
  pre: HTMLElement;
  ansi: AnsiUp;
  chunks: { nodes: ChildNode[]; length: number }[];
  length: number;
}

/** Whether an output box shows its last line. */
function atEnd(pre: HTMLElement): boolean {
  return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
}

export class JobFollower {
  #id: string;
  #n: number | null = null;
  #buffer: RecordedEvent[] = [];
  #view?: JobView;
  #omitted: Record<string, number> = {};
  #outputs = new Map<string, Out>();
  #pending = new Map<Out, string>();
  #flushing = false;
  #complete: boolean;
  #live: Live;

  constructor(private root: HTMLElement) {
    this.#id = root.dataset.id ?? "";
    this.#complete = root.dataset.complete !== "false";
    this.#live = new Live(
      (live) => this.#query(live),
      (frame, live) => this.#receive(frame, live),
    );
  }

  #query(live: Live): void {
    this.#n = null;
    this.#buffer = [];
    live.send({ event: "job:query-info", id: this.#id, tail: TAIL_LINES });
  }

  #receive(frame: QueenToBrowser, live: Live): void {
    if (frame.event === "error") return showMessage(frame.message);
    if (frame.event === "job:info" && frame.id === this.#id) {
      this.#render(frame);
      this.#n = frame.n;
      const early = this.#buffer;
      this.#buffer = [];
      for (const event of early) this.#take(event, live);
      return;
    }
    if (frame.event !== "browser") return;
    for (const event of frame.args) {
      if (event.data.id !== this.#id) continue;
      // Until job:info says where the page stands, events wait.
      if (this.#n === null) this.#buffer.push(event);
      else this.#take(event, live);
    }
  }

  #take(event: RecordedEvent, live: Live): void {
    if (this.#n === null || event.n <= this.#n) return;
    if (event.n > this.#n + 1) return this.#query(live);
    this.#n = event.n;
    this.root.dataset.n = String(event.n);
    this.#apply(event);
  }

  #field(name: string): HTMLElement | null {
    return this.root.querySelector<HTMLElement>(`[data-field="${name}"]`);
  }

  /** What the components need: the parts of outputs the page holds (from job:info). */
  #outputsOf(): OutputsOf {
    return {
      jobId: this.#id,
      part: (key, text) => ({ text, start: this.#omitted[key] ?? 0 }),
    };
  }

  /** Builds the whole job from the view (after job:info, or a new attempt). */
  #render(info?: JobInfo): void {
    if (info) {
      this.#view = info.job;
      this.#omitted = info.omitted ?? {};
      this.root.dataset.n = String(info.n);
    }
    const view = this.#view!;
    this.#outputs.clear();
    this.#pending.clear();
    const section = this.root.querySelector(".output");
    section?.replaceChildren(fragment(JobOutputs({ ...this.#outputsOf(), view })));
    for (const pre of this.root.querySelectorAll<HTMLElement>(".output pre.log")) {
      this.#register(pre, this.#textOf(view, pre.dataset.key ?? "job"));
    }
    if (info?.complete === false && this.#complete) this.#addLogTail();
    if (info) this.#complete = info.complete !== false;
    this.#sync();
    for (const out of this.#outputs.values()) out.pre.scrollTop = out.pre.scrollHeight;
  }

  #textOf(view: JobView, key: string): string {
    if (key === "job") return view.output;
    for (const phase of PHASES) {
      const c = view.phases[phase].commands.find((c) => String(c.num) === key);
      if (c) return c.output;
    }
    return "";
  }

  /** Follows appends to `pre`, whose text so far is `text` (its colour carries on). */
  #register(pre: HTMLElement, text: string): Out {
    const ansi = newAnsi();
    ansi.ansi_to_html(text);
    const code = pre.firstElementChild!;
    const out: Out = { code, pre, ansi, chunks: [], length: text.length };
    if (code.firstChild) out.chunks.push({ nodes: [...code.childNodes], length: text.length });
    this.#outputs.set(pre.dataset.key ?? "job", out);
    return out;
  }

  /** Brings every part that is not output in line with the view. */
  #sync(): void {
    const view = this.#view!;
    replaceWith(this.#field("state"), JobState({ view }));
    this.root.dataset.status = view.status;
    this.#setText("error", view.error ?? "");
    this.#setText("waiting", view.waiting ? `Waiting: ${view.waiting}` : "");
    const drone = this.#field("drone");
    if (drone) drone.textContent = view.drone ?? "none yet";
    this.#field("duration")?.replaceChildren(fragment(Duration({ view })));
    this.#field("attempts")?.replaceChildren(fragment(Attempts({ view })));
    for (const phase of PHASES) {
      const p = view.phases[phase];
      const section = this.root.querySelector<HTMLElement>(`.phase[data-phase="${phase}"]`);
      if (!section) continue;
      section.hidden = p.commands.length === 0;
      replaceWith(section.querySelector('h2 [data-field="exit"]'), ExitBadge({ code: p.exitCode }));
      const shown = new Map(
        [...section.querySelectorAll<HTMLElement>(".cmd")].map((el) => [el.dataset.num, el]),
      );
      for (const c of p.commands) {
        const el = shown.get(String(c.num));
        shown.delete(String(c.num));
        const running = isRunning(view, c);
        if (el) {
          const meta = CommandMeta({ command: c, running, jobEnd: view.finishedAt });
          replaceWith(el.querySelector(".cmd-meta"), meta);
          continue;
        }
        section.append(fragment(Command({
          ...this.#outputsOf(),
          command: c,
          live: running,
          jobEnd: view.finishedAt,
        })));
        const pre = section.querySelector<HTMLElement>(`.cmd[data-num="${c.num}"] pre.log`);
        if (pre) this.#register(pre, c.output);
      }
      for (const [num, el] of shown) {
        this.#outputs.delete(num ?? "");
        el.remove();
      }
    }
    if (view.status === "done") this.#finish();
  }

  #setText(name: string, text: string): void {
    const el = this.#field(name);
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  #addLogTail(): void {
    if (this.root.querySelector(".log-tail")) return;
    this.root.querySelector(".output")?.before(fragment(LatestOutput({ jobId: this.#id })));
  }

  #apply(event: RecordedEvent): void {
    const view = this.#view!;
    const e = event.data;
    if (isOutputEvent(e)) {
      const target = outputTarget(view, e);
      applyEvent(view, event);
      // The page holds the output; the view keeps only as much as the page does.
      if (target && target.output.length > MAX_OUTPUT_CHARS) {
        target.output = target.output.slice(-MAX_OUTPUT_CHARS);
      } else if (!target && view.output.length > MAX_OUTPUT_CHARS) {
        view.output = view.output.slice(-MAX_OUTPUT_CHARS);
      }
      this.#append(target ? String(target.num) : "job", e.text);
      return;
    }
    applyEvent(view, event);
    if (e.event === "job:dispatched" || e.event === "job:returned") {
      // A new attempt (or none): its phases replace the earlier one's.
      this.#omitted = {};
      this.#render();
      return;
    }
    if (e.event === "job:cmd:start" && !this.#complete) this.#append("log", `$ ${e.screencmd}\n`);
    if (e.event === "job:done") {
      this.#flush();
      // As the queen renders a finished job: the failing command open, the ones that passed shut.
      for (const details of this.root.querySelectorAll<HTMLDetailsElement>("details.cmd")) {
        const num = Number(details.dataset.num);
        const command = Object.values(view.phases).flatMap((p) => p.commands)
          .find((c) => c.num === num);
        if (command && collapsed(view, command)) details.open = false;
      }
      for (const phase of PHASES) {
        const details = this.root.querySelector<HTMLDetailsElement>(
          `details.phase[data-phase="${phase}"]`,
        );
        if (details && phaseCollapsed(view, phase)) details.open = false;
      }
    }
    this.#sync();
  }

  /** The output that `key` names, or the full log's tail when commands no longer get output. */
  #output(key: string): Out | undefined {
    if (!this.#complete) {
      const out = this.#outputs.get("log");
      if (out) return out;
      const pre = this.root.querySelector<HTMLElement>('.log-tail pre[data-key="log"]');
      return pre ? this.#register(pre, "") : undefined;
    }
    return this.#outputs.get(key) ?? this.#outputs.get("job");
  }

  #append(key: string, text: string): void {
    const out = this.#output(key);
    if (!out || !text) return;
    this.#pending.set(out, (this.#pending.get(out) ?? "") + text);
    const jobOutput = out.pre.closest<HTMLElement>(".job-output");
    if (jobOutput) jobOutput.hidden = false;
    if (!this.#flushing) {
      this.#flushing = true;
      requestAnimationFrame(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushing = false;
    const atBottom = innerHeight + scrollY >= document.documentElement.scrollHeight - 48;
    // An output scrolled to its end keeps following; one scrolled up stays where it is.
    const sticky = [...this.#pending.keys()].map((out) => [out, atEnd(out.pre)] as const);
    for (const [out, text] of this.#pending) this.#write(out, text);
    this.#pending.clear();
    for (const [out, stick] of sticky) if (stick) out.pre.scrollTop = out.pre.scrollHeight;
    if (atBottom) scrollTo(0, document.documentElement.scrollHeight);
  }

  /** Appends text as HTML; past the cap, the oldest chunks leave the page. */
  #write(out: Out, text: string): void {
    const span = document.createElement("span");
    span.innerHTML = out.ansi.ansi_to_html(text);
    out.code.append(span);
    out.chunks.push({ nodes: [span], length: text.length });
    out.length += text.length;
    let dropped = 0;
    while (out.length > MAX_OUTPUT_CHARS && out.chunks.length > 1) {
      const chunk = out.chunks.shift()!;
      for (const node of chunk.nodes) node.remove();
      out.length -= chunk.length;
      dropped += chunk.length;
    }
    if (dropped === 0) return;
    const start = Number(out.pre.dataset.start ?? 0) + dropped;
    out.pre.dataset.start = String(start);
    const key = out.pre.dataset.key ?? "job";
    if (key === "log") return;
    const link = out.pre.previousElementSibling;
    const fresh = EarlierLink({ jobId: this.#id, outputKey: key, end: start });
    if (link?.classList.contains("earlier")) replaceWith(link, fresh);
    else out.pre.before(fragment(fresh));
  }

  #finish(): void {
    this.#live.stop();
    this.root.querySelector("form.cancel")?.setAttribute("hidden", "");
    this.root.querySelector(".nojs")?.remove();
    showMessage("");
  }
}
