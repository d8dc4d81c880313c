/** How the dashboard words times, durations and states, on the queen and in the browser script. */
import type { JobStatus, JobSummary, JobView } from "../../protocol/mod.ts";

/** `1.2 s`, `3m 05s`, `2h 01m`. */
export function duration(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
}

/** The time from `start` to `end` (or now), or "" before it started. */
export function elapsed(start: string | null, end: string | null, now = Date.now()): string {
  if (!start) return "";
  return duration((end ? Date.parse(end) : now) - Date.parse(start));
}

/** `just now`, `5 s ago`, `3 min ago`, `2 h ago`, else the date. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return iso.slice(0, 10);
}

const STATUS_WORDS: Record<JobStatus, string> = {
  queued: "queued",
  dispatched: "dispatched",
  started: "running",
  done: "done",
};

/** One word for where a job is: its result once done, else its status. */
export function stateOf(job: Pick<JobSummary | JobView, "status" | "result">): string {
  return job.status === "done" && job.result ? job.result : STATUS_WORDS[job.status];
}
