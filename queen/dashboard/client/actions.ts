/// <reference lib="dom" />
/** Earlier output loaded in place, and Cancel through the API with the session's CSRF token. */
import { EarlierLink } from "../job_parts.tsx";
import { newAnsi } from "../output.ts";
import { csrf, replaceWith, showMessage } from "./dom.ts";

/** Bytes of the full log fetched per "earlier output" step. */
const LOG_STEP_BYTES = 256 * 1024;

/** Earlier bytes of the full log, from a whole line on, and the byte they start at. */
async function earlierLog(jobId: string, end: number): Promise<{ text: string; start: number }> {
  const from = Math.max(0, end - LOG_STEP_BYTES);
  const response = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/log`, {
    headers: { range: `bytes=${from}-${end - 1}` },
  });
  if (!response.ok) throw new Error(`the queen answered ${response.status}`);
  let bytes = new Uint8Array(await response.arrayBuffer());
  let start = from;
  if (from > 0) {
    // Start at a whole line (and a whole character).
    const newline = bytes.indexOf(10);
    if (newline >= 0 && newline < bytes.length - 1) {
      bytes = bytes.subarray(newline + 1);
      start = from + newline + 1;
    }
  }
  return { text: new TextDecoder().decode(bytes), start };
}

/** Loads the output before `link` into its `<pre>`; false when the page has no place for it. */
async function loadEarlier(link: HTMLAnchorElement): Promise<boolean> {
  const jobId = document.getElementById("job")?.dataset.id;
  const key = link.dataset.key ?? "";
  const pre = link.parentElement?.querySelector<HTMLElement>(`pre[data-key="${CSS.escape(key)}"]`);
  if (!jobId || !pre) return false;
  let text: string;
  let start: number;
  if (key === "log") {
    ({ text, start } = await earlierLog(jobId, Number(link.dataset.byte)));
    link.dataset.byte = String(start);
  } else {
    const params = new URLSearchParams({ key, end: link.dataset.end ?? "0" });
    const response = await fetch(`/jobs/${encodeURIComponent(jobId)}/output.json?${params}`);
    if (!response.ok) throw new Error(`the queen answered ${response.status}`);
    ({ start, text } = await response.json());
    pre.dataset.start = String(start);
  }
  const span = document.createElement("span");
  span.innerHTML = newAnsi().ansi_to_html(text);
  const fromEnd = pre.scrollHeight - pre.scrollTop;
  pre.firstElementChild?.prepend(span);
  pre.scrollTop = pre.scrollHeight - fromEnd;
  if (start === 0) link.remove();
  else if (key !== "log") replaceWith(link, EarlierLink({ jobId, outputKey: key, end: start }));
  return true;
}

/** Handles clicks on "Show earlier output" and submits of API forms (Cancel). */
export function handleActions(): void {
  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element
      ? event.target.closest<HTMLAnchorElement>("a.earlier")
      : null;
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    loadEarlier(link).then((done) => {
      if (!done) location.href = link.href;
    }).catch((error) => showMessage(`Could not load earlier output: ${error.message}`));
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api || !csrf) return;
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    const enable = () => {
      if (button) button.disabled = false;
    };
    fetch(form.dataset.api, { method: "POST", headers: { "x-csrf-token": csrf } })
      .then(async (response) => {
        if (response.ok) return showMessage("Cancelling: cleanup runs first.");
        const body = await response.json().catch(() => ({}));
        showMessage(body.error ?? `The queen answered ${response.status}`);
        enable();
      })
      .catch((error) => {
        showMessage(`Could not reach the queen: ${error.message}`);
        enable();
      });
  });
}
