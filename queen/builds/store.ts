/**
 * Where builds are kept: small, and apart from the job store, so that any store (SQLite here, a
 * server database elsewhere) can add it. A build row holds its jobs' ids and final results; the
 * jobs themselves stay in the job store. Also the per-file test timings `strider shard` balances
 * by.
 * @module
 */
import type {
  BuildResult,
  BuildStatus,
  Combination,
  JobResult,
  ShardTimings,
} from "../../protocol/mod.ts";
import { decodeCursor, encodeCursor } from "../store.ts";

/** One job of a build, as the build keeps it. */
export interface BuildJobEntry {
  id: string;
  name: string;
  matrix?: Combination;
  shard?: { index: number; total: number };
  allowFailure: boolean;
  /** Its result once final (kept here so a build's outcome never needs the job rows). */
  result: JobResult | null;
}

/** A build as stored. */
export interface BuildRecord {
  id: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  finishedAt: number | null;
  status: BuildStatus;
  result: BuildResult | null;
  repo: string;
  branch: string | null;
  failFast: boolean;
  /** A cancel of the whole build was asked for. */
  cancelled: boolean;
  rerunOf: string | null;
  axes: { name: string; values: string[] }[];
  jobs: BuildJobEntry[];
}

/** Filters for listing builds, newest first. */
export interface BuildFilter {
  repo?: string;
  status?: BuildStatus;
  limit: number;
  /** From a previous page's `next`. */
  cursor?: string;
}

export interface BuildPage {
  records: BuildRecord[];
  next: string | null;
}

/**
 * The builds' storage. Every method is one round trip on a server database; a build is written
 * whole (`saveBuild`), so no partial-update statements are needed.
 */
export interface BuildStore {
  /** Adds a build and the index of its jobs. Rejects with a `RangeError` when the id is taken. */
  createBuild(record: BuildRecord): Promise<void>;
  /** Replaces a build's state (status, result, job results), indexing jobs it gained. */
  saveBuild(record: BuildRecord): Promise<void>;
  getBuild(id: string): Promise<BuildRecord | undefined>;
  listBuilds(filter: BuildFilter): Promise<BuildPage>;
  /** Builds still running, oldest first: what a starting queen goes on tracking. */
  runningBuilds(): Promise<BuildRecord[]>;
  /** The build that made job `jobId`, if any. */
  buildOfJob(jobId: string): Promise<string | undefined>;
  /** Keeps the latest seconds per test file of a repository (replacing earlier ones). */
  recordTimings(repo: string, timings: ShardTimings, now: number): Promise<void>;
  /** A repository's recorded seconds per test file, the most recently updated first, up to `limit`. */
  timings(repo: string, limit: number): Promise<ShardTimings>;
  /**
   * Retention's second half, after the job store pruned jobs: removes every finished build none
   * of whose jobs is kept any more, with its index rows and its summary commit-status row, and
   * the test timings of repositories no kept build is of. Returns how many builds went.
   */
  prune(): Promise<number>;
}

/**
 * Which finished builds retention removes: those none of whose jobs `kept` still holds. A build
 * still running is kept whatever its jobs (they may not be submitted yet).
 */
export function prunable(builds: readonly BuildRecord[], kept: (job: string) => boolean): string[] {
  return builds.filter((b) => b.status === "done" && !b.jobs.some((j) => kept(j.id)))
    .map((b) => b.id);
}

/** Builds in memory, for tests and a core without a database. */
export class MemoryBuildStore implements BuildStore {
  /** Whether the job store keeps a job; without it, retention removes no build. */
  readonly #kept: ((job: string) => boolean) | undefined;
  #builds: BuildRecord[] = [];
  #byJob = new Map<string, string>();
  #timings = new Map<string, Map<string, { seconds: number; at: number }>>();

  constructor(kept?: (job: string) => boolean) {
    this.#kept = kept;
  }

  prune(): Promise<number> {
    if (!this.#kept) return Promise.resolve(0);
    const gone = new Set(prunable(this.#builds, this.#kept));
    this.#builds = this.#builds.filter((b) => !gone.has(b.id));
    for (const [job, build] of this.#byJob) if (gone.has(build)) this.#byJob.delete(job);
    const repos = new Set(this.#builds.map((b) => b.repo));
    for (const repo of this.#timings.keys()) if (!repos.has(repo)) this.#timings.delete(repo);
    return Promise.resolve(gone.size);
  }

  createBuild(record: BuildRecord): Promise<void> {
    if (this.#builds.some((b) => b.id === record.id)) {
      return Promise.reject(new RangeError(`build id '${record.id}' is taken`));
    }
    this.#builds.push(structuredClone(record));
    for (const job of record.jobs) if (!this.#byJob.has(job.id)) this.#byJob.set(job.id, record.id);
    return Promise.resolve();
  }

  saveBuild(record: BuildRecord): Promise<void> {
    const at = this.#builds.findIndex((b) => b.id === record.id);
    if (at >= 0) this.#builds[at] = structuredClone(record);
    for (const job of record.jobs) if (!this.#byJob.has(job.id)) this.#byJob.set(job.id, record.id);
    return Promise.resolve();
  }

  getBuild(id: string): Promise<BuildRecord | undefined> {
    const found = this.#builds.find((b) => b.id === id);
    return Promise.resolve(found && structuredClone(found));
  }

  listBuilds(filter: BuildFilter): Promise<BuildPage> {
    const start = filter.cursor ? decodeCursor(filter.cursor) : this.#builds.length;
    const out: BuildRecord[] = [];
    let i = start - 1;
    for (; i >= 0 && out.length < filter.limit; i--) {
      const b = this.#builds[i];
      if (filter.repo !== undefined && b.repo !== filter.repo) continue;
      if (filter.status !== undefined && b.status !== filter.status) continue;
      out.push(structuredClone(b));
    }
    return Promise.resolve({ records: out, next: i >= 0 ? encodeCursor(i + 1) : null });
  }

  runningBuilds(): Promise<BuildRecord[]> {
    return Promise.resolve(
      this.#builds.filter((b) => b.status === "running").map((b) => structuredClone(b)),
    );
  }

  buildOfJob(jobId: string): Promise<string | undefined> {
    return Promise.resolve(this.#byJob.get(jobId));
  }

  recordTimings(repo: string, timings: ShardTimings, now: number): Promise<void> {
    let files = this.#timings.get(repo);
    if (!files) this.#timings.set(repo, files = new Map());
    for (const [file, seconds] of Object.entries(timings)) files.set(file, { seconds, at: now });
    return Promise.resolve();
  }

  timings(repo: string, limit: number): Promise<ShardTimings> {
    const files = [...(this.#timings.get(repo) ?? new Map()).entries()]
      .sort((a, b) => b[1].at - a[1].at).slice(0, limit);
    return Promise.resolve(Object.fromEntries(files.map(([f, t]) => [f, t.seconds])));
  }
}
