/**
 * The phase rules (DESIGN.md, Job lifecycle) as pure functions: which phase comes next, and what
 * result a job has once its phases ran.
 */
import type { AttemptResult, JobType, Phase } from "../protocol/mod.ts";

/** How the phases so far went. */
export interface PhaseProgress {
  jobType: JobType;
  /** Exit code of each phase that ran (0 when it had no commands). */
  codes: Partial<Record<Phase, number>>;
  /** Set when the job was cancelled or timed out: everything but cleanup is skipped. */
  stopped?: "cancelled" | "timeout";
}

/**
 * Whether `phase` runs. A failing phase skips all later phases except `cleanup`, which always
 * runs; `deploy` runs only for DEPLOY and TEST&DEPLOY jobs, and only after a passing test.
 */
export function shouldRun(phase: Phase, progress: PhaseProgress): boolean {
  if (phase === "cleanup") return true;
  if (progress.stopped) return false;
  const failed = Object.entries(progress.codes).some(([p, code]) => p !== "cleanup" && code !== 0);
  if (failed) return false;
  if (phase === "deploy") {
    return progress.jobType !== "TEST" && progress.codes.test === 0;
  }
  return true;
}

/** The result of a job whose phases ran as `progress` says (cleanup's code does not count). */
export function resultOf(progress: PhaseProgress): AttemptResult {
  if (progress.stopped) return progress.stopped;
  const failed = Object.entries(progress.codes).some(([p, code]) => p !== "cleanup" && code !== 0);
  return failed ? "failed" : "passed";
}
