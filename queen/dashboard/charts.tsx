/**
 * Pictures the queen draws as SVG in the page (no chart library, no script): a project's
 * duration trend with pass/fail per run, and a drone's utilisation over the last hour.
 */
import type { AttemptView, JobSummary } from "../../protocol/mod.ts";
import { duration } from "./format.ts";

const W = 600;
const H = 120;

/** Duration of a finished run in ms, or 0. */
function runMs(job: JobSummary): number {
  if (!job.startedAt || !job.finishedAt) return 0;
  return Math.max(0, Date.parse(job.finishedAt) - Date.parse(job.startedAt));
}

/** Bars of the last runs (oldest left), height their duration, coloured by result. */
export function DurationTrend(props: { runs: JobSummary[] }) {
  const runs = props.runs.toReversed();
  if (runs.length === 0) return <p class="muted">No finished runs yet.</p>;
  const max = Math.max(1, ...runs.map(runMs));
  const step = W / Math.max(runs.length, 10);
  const passed = runs.filter((r) => r.result === "passed").length;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${W} ${H + 20}`}
        width="100%"
        role="img"
        aria-label={`Duration of the last ${runs.length} runs: ${passed} passed, ${
          runs.length - passed
        } did not; longest ${duration(max)}`}
      >
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        {runs.map((run, i) => {
          const h = Math.max(2, Math.round(runMs(run) / max * (H - 4)));
          return (
            <rect
              key={run.id}
              x={Math.round(i * step + 2)}
              y={H - h}
              width={Math.max(2, Math.round(step - 4))}
              height={h}
              class={`bar bar-${run.result === "passed" ? "passed" : "failed"}`}
              data-result={run.result ?? ""}
            >
              <title>{`${run.id}: ${run.result} in ${duration(runMs(run))}`}</title>
            </rect>
          );
        })}
        <text x="0" y={H + 16} class="chart-label">{`longest ${duration(max)}`}</text>
      </svg>
      <figcaption>
        Duration of the last {runs.length} runs, oldest first: green passed, red did not.
      </figcaption>
    </figure>
  );
}

/** Share of `buckets` intervals of the last hour (to `now`) the drone's slots were busy. */
export function utilisation(
  attempts: Pick<AttemptView, "startedAt" | "finishedAt">[],
  capacity: number,
  now: number,
  buckets = 12,
): number[] {
  const span = 3600_000 / buckets;
  const start = now - 3600_000;
  const busy = new Array<number>(buckets).fill(0);
  for (const a of attempts) {
    if (!a.startedAt) continue;
    const from = Math.max(start, Date.parse(a.startedAt));
    const to = Math.min(now, a.finishedAt ? Date.parse(a.finishedAt) : now);
    for (let b = 0; b < buckets; b++) {
      const lo = start + b * span;
      const overlap = Math.min(to, lo + span) - Math.max(from, lo);
      if (overlap > 0) busy[b] += overlap;
    }
  }
  return busy.map((ms) => Math.min(1, ms / (span * Math.max(1, capacity))));
}

/** Bars of utilisation per five minutes over the last hour. */
export function UtilisationChart(props: { shares: number[] }) {
  const { shares } = props;
  const step = W / shares.length;
  const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${W} ${H + 20}`}
        width="100%"
        role="img"
        aria-label={`Utilisation over the last hour: ${Math.round(mean * 100)}% on average`}
      >
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        {shares.map((share, i) => {
          const h = Math.round(share * (H - 4));
          return (
            <rect
              key={i}
              x={Math.round(i * step + 2)}
              y={H - h}
              width={Math.round(step - 4)}
              height={h}
              class="bar bar-busy"
            >
              <title>{`${60 - i * 5} to ${55 - i * 5} min ago: ${Math.round(share * 100)}%`}</title>
            </rect>
          );
        })}
        <text x="0" y={H + 16} class="chart-label">60 min ago</text>
        <text x={W} y={H + 16} class="chart-label" text-anchor="end">now</text>
      </svg>
      <figcaption>
        Busy share of its slots per five minutes over the last hour:{" "}
        {Math.round(mean * 100)}% on average.
      </figcaption>
    </figure>
  );
}
