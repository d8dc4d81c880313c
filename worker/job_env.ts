/**
 * The environment a job's commands start from: cleared (nothing of the worker's own leaks in),
 * then what common test suites expect of a CI machine, the way GitLab Runner and GitHub's
 * runner provide it, then the variables the worker's `--env-pass` names.
 */
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import type { DispatchedJob } from "../protocol/mod.ts";
import { buildEnv } from "../protocol/mod.ts";
import type { RunAs } from "./sandbox.ts";

/** Where the job's private folders are. */
export interface JobPlaces {
  home: string;
  tmp: string;
}

/** The shell named by `SHELL`: bash where the machine has it (as GitHub's runner), else sh. */
export function jobShell(exists: (path: string) => boolean = existsSync): string {
  return exists("/bin/bash") ? "/bin/bash" : "/bin/sh";
}

/** The worker's user name, for `USER` and `LOGNAME`. */
export function workerUser(): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // No passwd entry (a container's arbitrary uid): fall back to what the worker was given.
  }
  return Deno.env.get("USER") ?? Deno.env.get("LOGNAME") ?? "strider";
}

/**
 * The name of the user a job runs as, for `USER` and `LOGNAME`: the `--run-as` user's (its uid
 * in digits when the passwd database has no name for it), else the worker's own.
 */
export function jobUser(runAs: RunAs | undefined, worker: () => string = workerUser): string {
  if (!runAs) return worker();
  return runAs.name ?? String(runAs.uid);
}

/**
 * The base environment of every command of `job` (attempt `attempt`), run as `user`. `pass` holds the
 * variables `--env-pass` names, read from the worker's environment: they may replace the
 * defaults (a site's own `TERM` or `LANG`), never `PATH`, `HOME`, `TMPDIR` or `STRIDER_*`;
 * plugins' variables and secrets come after them.
 */
export function jobBaseEnv(
  job: DispatchedJob,
  attempt: number,
  places: JobPlaces,
  pass: Record<string, string> = {},
  user: string = workerUser(),
): Record<string, string> {
  const ref = job.ref;
  return {
    LANG: "C.UTF-8",
    // Output goes to a log, not a terminal, but `tput` and curses-aware tools need a type.
    TERM: "xterm",
    SHELL: jobShell(),
    USER: user,
    LOGNAME: user,
    CI: "true",
    ...pass,
    // The job's own folders and strider's variables are not the site's to replace.
    PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: places.home,
    TMPDIR: places.tmp,
    STRIDER: "true",
    STRIDER_JOB_ID: job.job_id,
    STRIDER_ATTEMPT: String(attempt),
    STRIDER_BRANCH: "branch" in ref ? ref.branch : "",
    STRIDER_COMMIT: "branch" in ref ? ref.id ?? "" : "",
    STRIDER_REPO: job.repo.url,
    STRIDER_TRIGGER: job.trigger.type,
    ...buildEnv(job.build),
  };
}

/** Reads the `--env-pass` variables that are set in the worker's environment. */
export function passedEnv(names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = Deno.env.get(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}
