// The dashboard's client script. Pages are complete without it; with it, the overview and a
// running job's page follow the queen live over /ws/browser, earlier output loads in place, and
// Cancel goes through the API with the session's CSRF token.
import { AnsiUp } from "./ansi_up.js";

/** An ANSI renderer: colours as classes, and OSC 8 links only when they are http(s). */
function newAnsi() {
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  ansi.url_allowlist = { http: 1, https: 1 };
  return ansi;
}

/** Lines of each output asked for in job:info (the page renders as many). */
const TAIL_LINES = 2000;
/** Characters one output keeps in the page; older ones are dropped (and can be loaded again). */
const MAX_OUTPUT_CHARS = 1_000_000;
/** Bytes of the full log fetched per "earlier output" step. */
const LOG_STEP_BYTES = 256 * 1024;

const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";
document.documentElement.classList.add("js");

// ---- Formatting: the same words as queen/dashboard/format.ts ----

function duration(ms) {
  if (ms < 0) ms = 0;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const pad = (n) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
}

function elapsed(start, end) {
  if (!start) return "";
  return duration((end ? Date.parse(end) : Date.now()) - Date.parse(start));
}

function ago(iso) {
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return iso.slice(0, 10);
}

const STATUS_WORDS = {
  queued: "queued",
  dispatched: "dispatched",
  started: "running",
  done: "done",
};

function stateOf(job) {
  return job.status === "done" && job.result ? job.result : STATUS_WORDS[job.status];
}

const iso = (ms) => new Date(ms).toISOString();

// ---- DOM helpers ----

/** An element with attributes (`text` sets its text) and children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false || child === "") continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function badge(state, attrs = {}) {
  return h("span", { class: `badge badge-${state}`, ...attrs, text: state });
}

function agoTime(value) {
  return h("time", { datetime: value, title: value, "data-ago": "", text: ago(value) });
}

function showMessage(text) {
  const box = document.querySelector('[data-field="message"]');
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}

// ---- The socket: reconnects with backoff; `onOpen` (re)subscribes ----

class Live {
  constructor(onOpen, onFrame) {
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.delay = 500;
    this.stopped = false;
    this.connect();
  }

  connect() {
    const url = new URL("/ws/browser", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.onOpen(this);
    };
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onFrame(frame, this);
    };
    ws.onclose = () => {
      if (this.stopped) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10_000);
    };
  }

  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  stop() {
    this.stopped = true;
    this.ws?.close();
  }
}

// ---- Overview ----

function droneRow(d) {
  return h(
    "tr",
    { "data-drone": d.name },
    h(
      "th",
      { scope: "row", "data-label": "" },
      d.name,
      d.draining && h("span", { class: "tag", text: "draining" }),
    ),
    h("td", { class: "num", "data-label": "Speed", text: String(d.speed) }),
    h("td", { class: "num", "data-label": "Capacity", text: String(d.capacity) }),
    h("td", { "data-label": "Jobs", text: `${d.running} running, ${d.queued} queued` }),
    h("td", { "data-label": "Plugins", text: d.plugins.join(", ") }),
    h("td", { "data-label": "Labels", text: d.labels.join(", ") }),
    h("td", { "data-label": "Last seen" }, agoTime(d.lastSeen)),
  );
}

function jobLink(id) {
  return h("a", { href: `/jobs/${encodeURIComponent(id)}`, text: id });
}

function queueRow(j) {
  return h(
    "tr",
    { "data-job": j.id },
    h("th", { scope: "row", "data-label": "" }, jobLink(j.id)),
    h("td", { class: "wrap", "data-label": "Repository", text: j.repo }),
    h("td", { "data-label": "Ref", text: j.ref }),
    h("td", { class: "wrap", "data-label": "Waiting for", text: j.waiting ?? "" }),
  );
}

function triggerText(trigger) {
  const author = trigger.author?.name ?? trigger.author?.username;
  if (!author && !trigger.message) return [h("span", { class: "muted", text: trigger.type })];
  return [
    author && h("span", { class: "author", text: author }),
    author && trigger.message && ": ",
    trigger.message && h("span", { class: "message", text: trigger.message }),
  ];
}

function jobRow(j) {
  return h(
    "tr",
    { "data-job": j.id },
    h("td", { "data-label": "" }, badge(stateOf(j))),
    h("th", { scope: "row", "data-label": "" }, jobLink(j.id)),
    h("td", { class: "wrap", "data-label": "Repository", text: j.repo }),
    h("td", { "data-label": "Ref", text: j.ref }),
    h("td", { class: "wrap", "data-label": "Trigger" }, triggerText(j.trigger)),
    h("td", { "data-label": "Drone", text: j.drone ?? "" }),
    h("td", { class: "num", "data-label": "Duration", text: elapsed(j.startedAt, j.finishedAt) }),
    h("td", { "data-label": "Created" }, agoTime(j.createdAt)),
  );
}

/** Replaces a table's rows, keeping keyboard focus on the same link when it is still there. */
function replaceRows(id, rows, columns, emptyText) {
  const tbody = document.querySelector(`#${id} tbody`);
  if (!tbody) return;
  const active = document.activeElement;
  const focused = active && tbody.contains(active) ? active.getAttribute("href") : null;
  tbody.replaceChildren(
    ...(rows.length
      ? rows
      : [h("tr", { class: "empty" }, h("td", { colspan: columns, text: emptyText }))]),
  );
  if (focused) tbody.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
}

function followOverview() {
  new Live(
    (live) => live.send({ event: "overview:follow" }),
    (frame) => {
      if (frame.event !== "overview") return;
      replaceRows("drones", frame.drones.map(droneRow), 7, "No drones are connected.");
      replaceRows("queue", frame.queue.map(queueRow), 4, "No jobs are waiting.");
      replaceRows("jobs", frame.jobs.map(jobRow), 8, "No jobs yet.");
    },
  );
}

// ---- One job ----

const PHASES = ["environment", "prepare", "test", "deploy", "cleanup"];

function exitBadge(code, running) {
  if (code === null || code === undefined) {
    return h("span", {
      class: "badge badge-started",
      "data-field": "exit",
      text: running ? "running" : "",
    });
  }
  return h("span", {
    class: `badge badge-${code === 0 ? "passed" : "failed"}`,
    "data-field": "exit",
    text: `exit ${code}`,
  });
}

function earlierLink(jobId, key, end) {
  const params = new URLSearchParams({ key, end: String(end) });
  return h("a", {
    class: "earlier",
    href: `/jobs/${encodeURIComponent(jobId)}/output?${params}`,
    "data-key": key,
    "data-end": end,
    text: `Show earlier output (${end.toLocaleString("en")} characters)`,
  });
}

/** Follows a running job: job:info first, then its events in order, none missed or repeated. */
class JobFollower {
  constructor(root) {
    this.root = root;
    this.id = root.dataset.id;
    this.n = null;
    this.buffer = [];
    this.outputs = new Map();
    this.pending = new Map();
    this.flushing = false;
    this.complete = root.dataset.complete !== "false";
    this.live = new Live(
      (live) => this.query(live),
      (frame, live) => this.receive(frame, live),
    );
  }

  query(live) {
    this.n = null;
    this.buffer = [];
    live.send({ event: "job:query-info", id: this.id, tail: TAIL_LINES });
  }

  receive(frame, live) {
    if (frame.event === "error") return showMessage(frame.message);
    if (frame.event === "job:info" && frame.id === this.id) {
      this.render(frame);
      this.n = frame.n;
      const early = this.buffer;
      this.buffer = [];
      for (const event of early) this.take(event, live);
      return;
    }
    if (frame.event !== "browser") return;
    for (const event of frame.args) {
      if (event.data.id !== this.id) continue;
      // Until job:info says where the page stands, events wait.
      if (this.n === null) this.buffer.push(event);
      else this.take(event, live);
    }
  }

  take(event, live) {
    if (event.n <= this.n) return;
    if (event.n > this.n + 1) return this.query(live);
    this.n = event.n;
    this.apply(event);
  }

  field(name) {
    return this.root.querySelector(`[data-field="${name}"]`);
  }

  setState(job) {
    const state = stateOf(job);
    const el = this.field("state");
    el.className = `badge badge-${state}`;
    el.textContent = state;
    this.root.dataset.status = job.status;
  }

  setDuration(start, end) {
    const span = this.field("duration").firstElementChild ?? this.field("duration");
    span.dataset.start = start ?? "";
    span.dataset.end = end ?? "";
    span.textContent = elapsed(start, end);
  }

  setText(name, text) {
    const el = this.field(name);
    if (!el) return;
    el.textContent = text ?? "";
    el.hidden = !text;
  }

  setAttempts(attempts) {
    const dd = this.field("attempts");
    if (attempts.length === 0) {
      dd.replaceChildren(h("span", { class: "muted", text: "none yet" }));
      return;
    }
    dd.replaceChildren(h(
      "ul",
      { class: "attempts" },
      attempts.map((a) =>
        h(
          "li",
          { "data-attempt": a.attempt },
          `${a.attempt} on ${a.drone}`,
          a.result && `: ${a.result}`,
        )
      ),
    ));
  }

  /** Builds the whole job from job:info. */
  render({ job, omitted = {}, complete }) {
    this.job = job;
    this.setState(job);
    this.setText("error", job.error);
    this.setText("waiting", job.waiting ? `Waiting: ${job.waiting}` : "");
    this.field("drone").textContent = job.drone ?? "none yet";
    this.setDuration(job.startedAt, job.finishedAt);
    this.setAttempts(job.attempts);
    this.outputs.clear();
    this.pending.clear();
    const live = job.status !== "done";
    for (const phase of PHASES) {
      const p = job.phases[phase];
      const section = this.phase(phase);
      section.querySelectorAll(".cmd").forEach((el) => el.remove());
      section.querySelector('[data-field="exit"]').replaceWith(exitBadge(p.exitCode));
      section.hidden = p.commands.length === 0;
      for (const c of p.commands) {
        section.append(this.command(c, live && c.exitCode === null, omitted[String(c.num)] ?? 0));
      }
    }
    const jobOutput = this.root.querySelector(".job-output");
    jobOutput.replaceChildren(...this.outputBlock("job", job.output, omitted.job ?? 0));
    jobOutput.hidden = !job.output;
    if (complete === false && this.complete) this.addLogTail();
    this.complete = complete !== false;
    for (const out of this.outputs.values()) out.pre.scrollTop = out.pre.scrollHeight;
    if (!live) this.finish(job);
  }

  phase(name) {
    return this.root.querySelector(`.phase[data-phase="${name}"]`);
  }

  /** A command's collapsible block, as the page renders it. */
  command(c, running, omitted) {
    return h(
      "details",
      { class: "cmd", "data-num": c.num, open: true },
      h(
        "summary",
        {},
        h("code", { class: "cmd-line", text: `$ ${c.command}` }),
        h(
          "span",
          { class: "cmd-meta" },
          exitBadge(c.exitCode, running),
          h("span", {
            class: "cmd-time",
            "data-start": c.startedAt ?? "",
            text: elapsed(c.startedAt, c.finishedAt),
          }),
        ),
      ),
      ...this.outputBlock(String(c.num), c.output, omitted),
    );
  }

  /** An output's earlier-output link (when cut) and its `<pre>`, registered for appends. */
  outputBlock(key, text, start) {
    const code = h("code");
    const pre = h("pre", { class: "log", "data-key": key, "data-start": start }, code);
    const out = { code, pre, ansi: newAnsi(), chunks: [], length: 0 };
    this.outputs.set(key, out);
    if (text) this.write(out, text);
    return start > 0 ? [earlierLink(this.id, key, start), pre] : [pre];
  }

  addLogTail() {
    if (this.root.querySelector(".log-tail")) return;
    const log = `/api/jobs/${encodeURIComponent(this.id)}/log`;
    const section = h(
      "section",
      { class: "log-tail", "aria-label": "End of the full log" },
      h("h2", { text: "Latest output" }),
      h(
        "p",
        { class: "note" },
        "This job printed more output than the queen keeps per command. New output follows; ",
        h("a", { href: log, text: "the raw log" }),
        " has all of it.",
      ),
    );
    const pre = h("pre", { class: "log", "data-key": "log" }, h("code"));
    section.append(pre);
    this.root.querySelector(".output").before(section);
  }

  /** The output that `key` names, or the full log's tail when commands no longer get output. */
  output(key) {
    if (!this.complete) {
      let out = this.outputs.get("log");
      if (!out) {
        const pre = this.root.querySelector('.log-tail pre[data-key="log"]');
        if (!pre) return undefined;
        out = { code: pre.firstElementChild, pre, ansi: newAnsi(), chunks: [], length: 0 };
        this.outputs.set("log", out);
      }
      return out;
    }
    return this.outputs.get(key) ?? this.outputs.get("job");
  }

  append(key, text) {
    const out = this.output(key);
    if (!out || !text) return;
    this.pending.set(out, (this.pending.get(out) ?? "") + text);
    if (out.pre.closest(".job-output")) out.pre.closest(".job-output").hidden = false;
    if (!this.flushing) {
      this.flushing = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    this.flushing = false;
    const atBottom = innerHeight + scrollY >= document.documentElement.scrollHeight - 48;
    // An output scrolled to its end keeps following; one scrolled up stays where it is.
    const sticky = [...this.pending.keys()].map((out) => [out, atEnd(out.pre)]);
    for (const [out, text] of this.pending) this.write(out, text);
    this.pending.clear();
    for (const [out, stick] of sticky) if (stick) out.pre.scrollTop = out.pre.scrollHeight;
    if (atBottom) scrollTo(0, document.documentElement.scrollHeight);
  }

  /** Appends text as HTML; past the cap, the oldest chunks leave the page. */
  write(out, text) {
    const span = document.createElement("span");
    span.innerHTML = out.ansi.ansi_to_html(text);
    out.code.append(span);
    out.chunks.push({ node: span, length: text.length });
    out.length += text.length;
    let dropped = 0;
    while (out.length > MAX_OUTPUT_CHARS && out.chunks.length > 1) {
      const chunk = out.chunks.shift();
      chunk.node.remove();
      out.length -= chunk.length;
      dropped += chunk.length;
    }
    if (dropped > 0) {
      const start = Number(out.pre.dataset.start ?? 0) + dropped;
      out.pre.dataset.start = String(start);
      const key = out.pre.dataset.key;
      if (key === "log") return;
      const link = out.pre.previousElementSibling;
      const fresh = earlierLink(this.id, key, start);
      if (link?.classList.contains("earlier")) link.replaceWith(fresh);
      else out.pre.before(fresh);
    }
  }

  /** The command running now: where output without a command number belongs. */
  current() {
    const all = this.root.querySelectorAll(".cmd");
    const last = all[all.length - 1];
    return last && last.querySelector('[data-field="exit"]').textContent === "running"
      ? last.dataset.num
      : "job";
  }

  apply({ at, data: e }) {
    switch (e.event) {
      case "job:dispatched":
        this.render({
          job: {
            ...this.job,
            status: "dispatched",
            drone: e.drone,
            waiting: null,
            attempt: e.attempt,
            attempts: [
              ...this.job.attempts,
              { attempt: e.attempt, drone: e.drone, dispatchedAt: iso(e.timestamp), result: null },
            ],
            phases: Object.fromEntries(
              PHASES.map((p) => [p, { exitCode: null, finished: false, commands: [] }]),
            ),
            output: "",
          },
          complete: this.complete,
        });
        return;
      case "job:returned":
        // Back in the queen's queue before it started: the attempt is not charged or shown.
        this.render({
          job: {
            ...this.job,
            status: "queued",
            drone: null,
            attempts: this.job.attempts.filter((a) => a.attempt !== e.attempt || a.startedAt),
          },
          complete: this.complete,
        });
        return;
      case "job:started":
        this.job = {
          ...this.job,
          status: "started",
          startedAt: this.job.startedAt ?? iso(e.timestamp),
        };
        this.setState(this.job);
        this.setDuration(this.job.startedAt, null);
        return;
      case "job:cmd:start": {
        const section = this.phase(e.phase);
        section.hidden = false;
        const command = {
          num: e.num,
          command: e.screencmd,
          exitCode: null,
          startedAt: iso(e.timestamp ?? at),
          finishedAt: null,
          output: "",
        };
        section.append(this.command(command, true, 0));
        if (!this.complete) this.append("log", `$ ${e.screencmd}\n`);
        return;
      }
      case "job:cmd:done": {
        const el = this.root.querySelector(`.cmd[data-num="${e.num}"]`);
        if (!el) return;
        el.querySelector('[data-field="exit"]').replaceWith(exitBadge(e.exitCode));
        const time = el.querySelector(".cmd-time");
        time.dataset.end = iso(e.timestamp ?? at);
        time.textContent = elapsed(time.dataset.start, time.dataset.end);
        const phase = el.closest(".phase");
        const exit = phase.querySelector('h2 [data-field="exit"]');
        // As the queen folds it: the first failing command decides the phase's exit code.
        if (["", "running", "exit 0"].includes(exit.textContent)) {
          exit.replaceWith(exitBadge(e.exitCode));
        }
        return;
      }
      case "job:cmd:stdout":
      case "job:cmd:stderr":
        return this.append(String(e.num), e.text);
      case "job:stdout":
      case "job:stderr":
        return this.append(this.current(), e.text);
      case "job:done": {
        this.flush();
        const job = {
          ...this.job,
          status: "done",
          result: e.result,
          error: e.error ?? null,
          finishedAt: iso(e.timestamp),
          attempts: this.job.attempts.map((a) =>
            a.attempt === e.attempt ? { ...a, result: e.result } : a
          ),
        };
        this.job = job;
        this.setState(job);
        this.setText("error", job.error);
        this.setText("waiting", "");
        this.setDuration(job.startedAt, job.finishedAt);
        this.setAttempts(job.attempts);
        this.root.querySelectorAll('.cmd [data-field="exit"]').forEach((el) => {
          if (el.textContent === "running") el.textContent = "";
        });
        this.finish(job);
        return;
      }
    }
  }

  finish(job) {
    this.live.stop();
    this.root.querySelector("form.cancel")?.setAttribute("hidden", "");
    this.root.dataset.status = job.status;
    showMessage("");
  }
}

/** Whether an output box shows its last line. */
function atEnd(pre) {
  return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
}

// ---- Earlier output, loaded in place ----

async function loadEarlier(link) {
  const jobId = document.getElementById("job")?.dataset.id;
  const key = link.dataset.key;
  const pre = link.parentElement.querySelector(`pre[data-key="${CSS.escape(key)}"]`);
  if (!jobId || !pre) return false;
  let text;
  let start;
  if (key === "log") {
    const end = Number(link.dataset.byte);
    const from = Math.max(0, end - LOG_STEP_BYTES);
    const response = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/log`, {
      headers: { range: `bytes=${from}-${end - 1}` },
    });
    if (!response.ok) throw new Error(`the queen answered ${response.status}`);
    let bytes = new Uint8Array(await response.arrayBuffer());
    start = from;
    if (from > 0) {
      // Start at a whole line (and a whole character).
      const newline = bytes.indexOf(10);
      if (newline >= 0 && newline < bytes.length - 1) {
        bytes = bytes.subarray(newline + 1);
        start = from + newline + 1;
      }
    }
    text = new TextDecoder().decode(bytes);
    link.dataset.byte = String(start);
  } else {
    const params = new URLSearchParams({ key, end: link.dataset.end });
    const response = await fetch(`/jobs/${encodeURIComponent(jobId)}/output.json?${params}`);
    if (!response.ok) throw new Error(`the queen answered ${response.status}`);
    ({ start, text } = await response.json());
    link.dataset.end = String(start);
    link.href = `/jobs/${encodeURIComponent(jobId)}/output?${new URLSearchParams({
      key,
      end: String(start),
    })}`;
    link.textContent = `Show earlier output (${start.toLocaleString("en")} characters)`;
    pre.dataset.start = String(start);
  }
  const ansi = newAnsi();
  const span = document.createElement("span");
  span.innerHTML = ansi.ansi_to_html(text);
  const fromEnd = pre.scrollHeight - pre.scrollTop;
  pre.firstElementChild.prepend(span);
  pre.scrollTop = pre.scrollHeight - fromEnd;
  if (start === 0) link.remove();
  return true;
}

document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a.earlier") : null;
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  loadEarlier(link).then((done) => {
    if (!done) location.href = link.href;
  }).catch((error) => showMessage(`Could not load earlier output: ${error.message}`));
});

// ---- Cancel through the API ----

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api || !csrf) return;
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  fetch(form.dataset.api, { method: "POST", headers: { "x-csrf-token": csrf } })
    .then(async (response) => {
      if (response.ok) return showMessage("Cancelling: cleanup runs first.");
      const body = await response.json().catch(() => ({}));
      showMessage(body.error ?? `The queen answered ${response.status}`);
      button.disabled = false;
    })
    .catch((error) => {
      showMessage(`Could not reach the queen: ${error.message}`);
      button.disabled = false;
    });
});

// ---- Times that move ----

setInterval(() => {
  for (const el of document.querySelectorAll("time[data-ago]")) {
    el.textContent = ago(el.getAttribute("datetime"));
  }
  for (const el of document.querySelectorAll("[data-start]:not(pre)")) {
    if (!el.dataset.start || el.dataset.end) continue;
    const running = el.classList.contains("cmd-time")
      ? el.parentElement.querySelector('[data-field="exit"]')?.textContent === "running"
      : document.getElementById("job")?.dataset.status !== "done";
    if (running) el.textContent = elapsed(el.dataset.start, null);
  }
}, 1000);

// ---- Start ----

// The end of an output is what matters most (where a failure shows): start there.
for (const pre of document.querySelectorAll("pre.log")) pre.scrollTop = pre.scrollHeight;

const jobRoot = document.getElementById("job");
if (jobRoot && jobRoot.dataset.status !== "done") new JobFollower(jobRoot);
if (document.getElementById("overview")) followOverview();
