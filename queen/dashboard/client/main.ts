/// <reference lib="dom" />
/**
 * The dashboard's browser script, bundled by `deno task bundle` into `client/app.js` (which
 * the queen serves). Pages are complete without it; with it, the overview and a running job's
 * page follow the queen live over /ws/browser, folding events with the queen's own fold and
 * rendering with its own components, earlier output loads in place, and Cancel goes through the
 * API with the session's CSRF token.
 * @module
 */
import { ago, elapsed } from "../format.ts";
import { handleActions } from "./actions.ts";
import { JobFollower } from "./job.ts";
import { followLogPage } from "./log.ts";
import { followOverview } from "./overview.ts";
import { followBuild } from "./build.ts";

document.documentElement.classList.add("js");
handleActions();

// Times that move: "5 s ago", and the durations of what is running.
setInterval(() => {
  for (const el of document.querySelectorAll("time[data-ago]")) {
    el.textContent = ago(el.getAttribute("datetime") ?? "");
  }
  for (const el of document.querySelectorAll<HTMLElement>("[data-start]:not(pre)")) {
    if (!el.dataset.start || el.dataset.end) continue;
    const running = el.classList.contains("cmd-time")
      ? el.parentElement?.querySelector('[data-field="exit"]')?.textContent === "running"
      : document.getElementById("job")?.dataset.status !== "done";
    if (running) el.textContent = elapsed(el.dataset.start, null);
  }
}, 1000);

// The end of an output is what matters most (where a failure shows): start there.
for (const pre of document.querySelectorAll("pre.log:not(.numbered)")) {
  pre.scrollTop = pre.scrollHeight;
}

const jobRoot = document.getElementById("job");
if (jobRoot && jobRoot.dataset.status !== "done") new JobFollower(jobRoot);
if (document.getElementById("overview")) followOverview();
followLogPage();
const buildRoot = document.getElementById("build");
if (buildRoot && buildRoot.dataset.status !== "done") followBuild(buildRoot);
